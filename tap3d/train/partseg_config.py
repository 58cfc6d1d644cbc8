"""Part-segmentation fine-tuning settings (:mod:`tap3d.settings`: defaults < YAML file <
options)."""

from __future__ import annotations

import dataclasses

from tap3d.settings import load_settings, one_of, settings
from tap3d.train.config import DownstreamSettings
from tap3d.train.loss import SEGMENTATION_LOSSES

__all__ = ["PartSegConfig", "load_partseg_config"]


@settings
class PartSegConfig(DownstreamSettings):
    """Part-segmentation fine-tuning settings. Defaults are the TAP authors' ShapeNetPart recipe
    (``cfgs/shapenetpart/default.yaml`` and ``pointmlp_finetune.yaml`` of wangzy22/TAP).

    Attributes:
        backbone, embed_dim: backbone name (:data:`tap3d.models.BACKBONES`) and base width
            (64); its segmentation head is :func:`tap3d.models.segmentation.make_segmenter`'s.
        backbone_checkpoint: pre-trained backbone (run folder, tap3d backbone file or the
            authors' checkpoint) loaded non-strictly, every tensor not loaded reported by name;
            empty for random initialization.
        epochs, max_steps: 300 epochs; ``max_steps`` 0 for no step limit.
        batch_size, eval_batch_size: 16 shapes per step per process, 16 per evaluation pass.
        lr, weight_decay: AdamW 1e-3, weight decay 1e-4 (on weights, not biases and norms).
        milestones, decay: learning rate x ``decay`` (0.1) at each epoch of ``milestones``
            ([210, 270]), per epoch.
        grad_clip: gradient-norm clip (1).
        points: points per shape (2048): drawn with replacement for training, farthest-point
            samples for testing.
        normals: feed xyz + normals (6 channels, the authors') or xyz only.
        scale_low, scale_high: anisotropic scaling per axis, U[0.8, 1.2].
        jitter_sigma, jitter_clip: Gaussian jitter of xyz after centring and unit-sphere
            scaling (0.001, clipped at 0.005).
        normal_drop: probability that all normals of a training shape are set to 0 (0.2, the
            authors' ``ChromaticDropGPU`` on the non-xyz channels).
        loss: ``poly1_focal`` (the authors' ``Poly1FocalLoss``) or ``cross_entropy``.
        refine, refine_points, refine_neighbours: relabel doubtful points at evaluation
            (:func:`tap3d.metrics.refine_parts`; True, 10, 11).
        votes: test-time votes of the final evaluation of the best epoch's weights (10; 0 for
            none); every epoch is evaluated without votes, as the authors do.
        eval_every: epochs between evaluations (1; the last epoch is always evaluated).
        figure_shapes: test shapes drawn in ``RUN/parts.png`` (predicted against true parts).
        test_fraction: test share of a tap3d dataset's seeded split.
        seed, device, num_workers, log_every, checkpoint_every: as in ``FinetuneConfig``.
    """

    epochs: int = 300
    batch_size: int = 16
    eval_batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    milestones: list[int] = dataclasses.field(default_factory=lambda: [210, 270])
    decay: float = 0.1
    grad_clip: float = 1.0
    points: int = 2048
    normals: bool = True
    scale_low: float = 0.8
    scale_high: float = 1.2
    jitter_sigma: float = 0.001
    jitter_clip: float = 0.005
    normal_drop: float = 0.2
    loss: one_of(SEGMENTATION_LOSSES) = "poly1_focal"
    refine: bool = True
    refine_points: int = 10
    refine_neighbours: int = 11
    votes: int = 10
    eval_every: int = 1
    figure_shapes: int = 4


def load_partseg_config(path: str | None = None, **overrides) -> PartSegConfig:
    """A :class:`PartSegConfig` from defaults, then a YAML file, then ``overrides`` (None values
    ignored).

    Raises:
        ValueError: unknown keys in the file or the overrides.
    """
    return load_settings(PartSegConfig, path, **overrides)
