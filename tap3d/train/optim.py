"""Optimizer and learning-rate schedules of the training engine (:mod:`tap3d.train.engine`).

A schedule is a function ``step -> factor`` for ``torch.optim.lr_scheduler.LambdaLR``: the
learning rate of optimizer step ``step`` (0-based) is ``lr * factor(step)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["make_optimizer", "cosine_schedule", "step_schedule", "multistep_schedule"]


def make_optimizer(model: nn.Module, config) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices and kernels only (not on biases and norms), as TAP's
    recipes (openpoints ``optim`` with ``filter_bias_and_bn``).

    Args:
        model: the parameters to optimize (every one, in ``model.parameters()`` order).
        config: anything with ``lr`` and ``weight_decay`` (TrainConfig, FinetuneConfig).
    """
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)


def cosine_schedule(total: int, warmup: int, lr: float, min_lr: float):
    """Linear warm-up over ``warmup`` steps, then cosine from ``lr`` down to ``min_lr`` at
    step ``total`` (TAP's pre-training and fine-tuning, per step).

    Returns:
        ``factor(step) -> float``, the multiplier of ``lr``.
    """
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        floor = min_lr / lr
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def step_schedule(every: int, gamma: float, lr: float = 1.0, min_lr: float = 0.0,
                  warmup: int = 0):
    """Step decay: ``lr x gamma^(step // every)``, not below ``min_lr``, after an optional linear
    warm-up over ``warmup`` steps (PointNet++/PointMLP part segmentation: x 0.5 every 20 epochs,
    given here in steps).

    Args:
        every: steps between decays (> 0).
        gamma: decay factor per ``every`` steps.
        lr, min_lr: the base learning rate and the floor (both in the optimizer's units).
        warmup: warm-up steps.

    Returns:
        ``factor(step) -> float``, the multiplier of ``lr``.

    Raises:
        ValueError: ``every`` < 1.
    """
    if every < 1:
        raise ValueError(f"step_schedule: every must be >= 1, got {every}")

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(gamma ** ((step - warmup) // every), min_lr / lr)

    return factor


def multistep_schedule(milestones, gamma: float):
    """Multi-step decay: ``lr x gamma^k`` from the ``k``-th of ``milestones`` (steps) on (the
    TAP authors' ShapeNetPart recipe: x 0.1 at epochs 210 and 270, ``sched: multistep``, given
    here in steps).

    Returns:
        ``factor(step) -> float``, the multiplier of ``lr``.
    """
    milestones = sorted(int(m) for m in milestones)

    def factor(step: int) -> float:
        return gamma ** sum(step >= m for m in milestones)

    return factor
