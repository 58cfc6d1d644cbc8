"""Part-segmentation fine-tuning settings (:mod:`tap3d.settings`: defaults < YAML file <
options)."""

from __future__ import annotations

from tap3d.settings import inherit, load_settings, one_of, setting, settings
from tap3d.train.config import DownstreamSettings, RunSettings
from tap3d.train.loss import SEGMENTATION_LOSSES

__all__ = ["PartSegConfig", "load_partseg_config"]


@settings
class PartSegConfig(DownstreamSettings):
    """Part-segmentation fine-tuning settings. Defaults are the TAP authors' ShapeNetPart recipe;
    docs/partseg.md ("Settings") gives each one's source."""

    epochs: int = inherit(RunSettings, "epochs", 300)
    batch_size: int = inherit(RunSettings, "batch_size", 16)
    eval_batch_size: int = inherit(DownstreamSettings, "eval_batch_size", 16)
    lr: float = inherit(RunSettings, "lr", 1e-3)
    weight_decay: float = setting(1e-4, "AdamW's weight decay (on weights, not biases and norms).")
    milestones: list[int] = setting(help="Epochs at which the learning rate is multiplied by "
                                         "decay.", default_factory=lambda: [210, 270])
    decay: float = setting(0.1, "Learning-rate factor at each milestone.")
    grad_clip: float = inherit(RunSettings, "grad_clip", 1.0)
    points: int = setting(
        2048, "Points per shape: drawn with replacement in training, farthest points in tests.")
    normals: bool = setting(True, "Feed xyz + normals (6 channels), else xyz only.")
    scale_low: float = inherit(DownstreamSettings, "scale_low", 0.8)
    scale_high: float = inherit(DownstreamSettings, "scale_high", 1.2)
    jitter_sigma: float = setting(0.001, "Gaussian jitter of xyz after unit-sphere scaling.")
    jitter_clip: float = setting(0.005, "Clip of the jitter.")
    normal_drop: float = setting(0.2, "Probability that a training shape's normals are zeroed.")
    loss: one_of(SEGMENTATION_LOSSES) = setting(
        "poly1_focal", "poly1_focal (the authors' Poly1FocalLoss) or cross_entropy.")
    refine: bool = setting(True, "Relabel doubtful points at evaluation (refine_parts).")
    refine_points: int = setting(10, "refine: a part with fewer points is doubtful.")
    refine_neighbours: int = setting(11, "refine: nearest points that vote, the point included.")
    votes: int = setting(
        10, "Test-time votes of the final evaluation of the best epoch's weights (0: none).")
    eval_every: int = setting(1, "Epochs between evaluations (the last is always evaluated).")
    figure_shapes: int = setting(4, "Test shapes drawn in RUN/parts.png.")


def load_partseg_config(path: str | None = None, **overrides) -> PartSegConfig:
    """A :class:`PartSegConfig` from defaults, then a YAML file, then ``overrides`` (None values
    ignored).

    Raises:
        ValueError: unknown keys in the file or the overrides.
    """
    return load_settings(PartSegConfig, path, **overrides)
