"""Classification fine-tuning settings (:mod:`tap3d.settings`: defaults < YAML file < options)."""

from __future__ import annotations

import dataclasses

from tap3d.clouds.labelled import SCANOBJECTNN_VARIANTS
from tap3d.clouds.pipeline import CLOUD_SAMPLINGS, ROTATIONS
from tap3d.settings import UpAxis, load_settings, one_of, settings
from tap3d.train.config import DownstreamSettings

__all__ = ["FinetuneConfig", "load_finetune_config"]


@settings
class FinetuneConfig(DownstreamSettings):
    """Classification fine-tuning settings. Defaults are TAP's public recipe
    (``cfgs/scanobjectnn/pointmlp_finetune.yaml`` and ``default.yaml`` of the authors' code).

    Attributes:
        backbone, embed_dim: backbone name (:data:`tap3d.models.BACKBONES`) and embedding width
            (PointMLP: 64); a ``backbone_checkpoint`` overrides both with what it holds.
        backbone_checkpoint: run folder, tap3d backbone file or the authors' checkpoint; empty
            for random initialization.
        epochs, max_steps: stop after ``epochs`` epochs or ``max_steps`` steps (0: no limit)
            (TAP: 300 epochs).
        batch_size, eval_batch_size: samples per step per process (TAP: 32) and per evaluation
            batch (TAP: 64).
        lr, min_lr, weight_decay, warmup_epochs: AdamW with linear warm-up then cosine decay per
            step (TAP: 5e-4 -> 1e-6, weight decay 0.05, 10 warm-up epochs).
        grad_clip: gradient-norm clip (TAP: 10).
        label_smoothing: ``eps`` of the smoothed cross-entropy: ``1 - eps`` on the label,
            ``eps / (classes - 1)`` on each other class (TAP: 0.3).
        points, presample: points per sample (1024) and farthest-point samples they are drawn
            from in training (0: ``points * 75 / 64``, 1200 for 1024).
        sampling: ``fps`` (the authors': farthest-point sampling in training and test) or
            ``random`` (uniform subsets; :mod:`tap3d.clouds.pipeline`).
        scale_low, scale_high, rotate, up_axis: anisotropic scaling per axis (TAP: U[0.9, 1.1]),
            rotation about the up axis (index 1: y-up).
        rotation: ``up`` (the authors') or ``so3``: training rotations drawn from all of SO(3)
            and voting copies too (:class:`~tap3d.clouds.pipeline.AugmentedClouds`).
        mix: probability that a training batch is mixed by PointCutMix-R
            (:func:`~tap3d.clouds.pipeline.mix_points`); 0: never (the authors').
        dropout, head: the head's dropout (0.5) and hidden widths ([512, 256]).
        votes: test-time voting of the final model (0: none): the test clouds' class from the
            mean softmax of ``votes`` rotated copies (``rotation``; results ``voted_oa``,
            ``voted_macc``; ``best_oa``/``last_oa`` stay single-view).
        variant, test_fraction: ScanObjectNN variant; test share of a tap3d dataset's seeded
            split (see :func:`tap3d.clouds.labelled.load_labelled`).
        seed, device, num_workers, log_every, checkpoint_every: as in ``TrainConfig``
            (``checkpoint_every`` in steps).
    """

    epochs: int = 300
    lr: float = 5e-4
    min_lr: float = 1e-6
    warmup_epochs: int = 10
    label_smoothing: float = 0.3
    presample: int = 0
    sampling: one_of(CLOUD_SAMPLINGS) = "fps"
    rotate: bool = True
    rotation: one_of(ROTATIONS) = "up"
    mix: float = 0.0
    up_axis: UpAxis = 1
    dropout: float = 0.5
    head: list[int] = dataclasses.field(default_factory=lambda: [512, 256])
    variant: one_of(SCANOBJECTNN_VARIANTS) = "pb_t50_rs"


def load_finetune_config(path: str | None = None, **overrides) -> FinetuneConfig:
    """A :class:`FinetuneConfig` from defaults, then a YAML file, then ``overrides`` (None
    values ignored).

    Raises:
        FileNotFoundError: no file at ``path``.
        SettingsError: unknown keys, wrong types or unknown choices (naming the file or
            ``options`` and the key).
    """
    return load_settings(FinetuneConfig, path, **overrides)
