"""Pre-training settings: one dataclass of defaults that a YAML file and the command line override
(after nanoGPT's ``train.py``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["TrainConfig", "load_config", "load_dataclass"]


@dataclass
class TrainConfig:
    """Training settings. Defaults follow TAP's public config (DESIGN.md).

    Attributes:
        epochs, max_steps: stop after ``epochs`` epochs or ``max_steps`` optimizer steps
            (whichever comes first; ``max_steps`` 0 means no step limit).
        batch_size: samples per step per process (TAP: 32).
        lr, min_lr, weight_decay, warmup_steps: AdamW with linear warm-up then cosine decay to
            ``min_lr`` (TAP: 2e-3 -> 1e-5, weight decay 0.05).
        grad_clip: gradient-norm clip (TAP: 10).
        points, views_per_sample, sampling, scale_low, scale_high: the stream's samples
            (TAP: 1024 points, 6 of 12 views, scaling U[0.9, 1.1)). ``views_per_sample`` 0 means
            half the stored views.
        backbone, embed_dim: backbone name (``pointmlp``, ``dgcnn``, ``pointnet2``,
            ``transformer``: :data:`tap3d.models.backbones.BACKBONES`) and its base width (64 in
            the authors' configuration of every one; every other width is a multiple of it).
        photograph_dim, photograph_depth, photograph_heads, query: Photograph module
            (TAP supplement Table 1a: 128 channels, 2 layers).
        w_fg, w_bg: loss weights (TAP supplement Table 1b: 20 : 1).
        seed, device, num_workers, log_every, checkpoint_every, sample_every.
        log_objects: append each step's object indices to ``RUN_DIR/objects/rank_R.jsonl``
            (which objects each rank trained on, for debugging data order).
    """

    epochs: int = 100
    max_steps: int = 0
    batch_size: int = 32
    lr: float = 2e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    warmup_steps: int = 0
    grad_clip: float = 10.0
    points: int = 1024
    views_per_sample: int = 0
    sampling: str = "random"
    scale_low: float = 0.9
    scale_high: float = 1.1
    backbone: str = "pointmlp"
    embed_dim: int = 64
    photograph_dim: int = 128
    photograph_depth: int = 2
    photograph_heads: int = 4
    query: str = "ray"
    w_fg: float = 20.0
    w_bg: float = 1.0
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    log_every: int = 10
    checkpoint_every: int = 500
    sample_every: int = 500
    log_objects: bool = False


def load_dataclass(cls, path: str | None = None, **overrides):
    """An instance of the dataclass ``cls`` from its defaults, then a YAML file, then
    ``overrides`` (None values ignored).

    Raises:
        ValueError: unknown keys in the file or the overrides (the message names the file).
    """
    import yaml

    values: dict = {}
    if path:
        with open(path) as f:
            values.update(yaml.safe_load(f) or {})
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{path or 'options'}: unknown config keys: {', '.join(unknown)}")
    return cls(**values)


def load_config(path: str | None = None, **overrides) -> TrainConfig:
    """A :class:`TrainConfig` from defaults, then a YAML file, then ``overrides`` (None values
    ignored).

    Raises:
        ValueError: unknown keys in the file or the overrides.
    """
    return load_dataclass(TrainConfig, path, **overrides)
