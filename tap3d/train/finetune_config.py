"""Classification fine-tuning settings (:mod:`tap3d.settings`: defaults < YAML file < options)."""

from __future__ import annotations

from tap3d.clouds.labelled import SCANOBJECTNN_VARIANTS
from tap3d.clouds.pipeline import CLOUD_SAMPLINGS, ROTATIONS
from tap3d.settings import UpAxis, inherit, load_settings, one_of, setting, settings
from tap3d.train.config import DownstreamSettings, RunSettings

__all__ = ["FinetuneConfig", "load_finetune_config"]


@settings
class FinetuneConfig(DownstreamSettings):
    """Classification fine-tuning settings. Defaults are TAP's public recipe; docs/evaluation.md
    ("Fine-tuning settings") gives each one's source."""

    epochs: int = inherit(RunSettings, "epochs", 300)
    lr: float = inherit(RunSettings, "lr", 5e-4)
    min_lr: float = setting(1e-6, "Learning rate at the end of the cosine decay (per step).")
    warmup_epochs: int = setting(10, "Epochs of linear warm-up before the cosine decay.")
    label_smoothing: float = setting(
        0.3, "eps of the smoothed cross-entropy: 1 - eps on the label, the rest shared.")
    presample: int = setting(
        0, "Farthest-point samples the training points are drawn from (0: points * 75 / 64).")
    sampling: one_of(CLOUD_SAMPLINGS) = setting(
        "fps", "fps: farthest-point samples in training and test; random: uniform subsets.")
    rotate: bool = setting(True, "Rotate training samples (rotation).")
    rotation: one_of(ROTATIONS) = setting(
        "up", "Training and voting rotations: about the up axis, or from all of SO(3).")
    mix: float = setting(0.0, "Share of the training batches mixed by PointCutMix-R (0: none).")
    up_axis: UpAxis = setting(1, "World up axis of the height feature and rotations (1: y-up).")
    dropout: float = setting(0.5, "Dropout of the classification head.")
    head: list[int] = setting(help="Hidden widths of the classification head.",
                              default_factory=lambda: [512, 256])
    variant: one_of(SCANOBJECTNN_VARIANTS) = setting("pb_t50_rs", "ScanObjectNN variant.")


def load_finetune_config(path: str | None = None, **overrides) -> FinetuneConfig:
    """A :class:`FinetuneConfig` from defaults, then a YAML file, then ``overrides`` (None
    values ignored).

    Raises:
        FileNotFoundError: no file at ``path``.
        SettingsError: unknown keys, wrong types or unknown choices (naming the file or
            ``options`` and the key).
    """
    return load_settings(FinetuneConfig, path, **overrides)
