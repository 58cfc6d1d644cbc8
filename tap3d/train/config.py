"""The training commands' settings (:mod:`tap3d.settings`): the fields every run shares
(:class:`RunSettings`), those of the downstream tasks (:class:`DownstreamSettings`) and
pre-training's :class:`TrainConfig`."""

from __future__ import annotations

import dataclasses

from tap3d.models.backbones import BackboneSettings
from tap3d.models.tap import TAPModelConfig, TAPModelSettings
from tap3d.settings import Device, UpAxis, inherit, load_settings, one_of, setting, settings
from tap3d.stream import NORMALIZATIONS, POINT_SAMPLINGS, StreamSettings
from tap3d.train.perceptual import VGG16_LAYERS

__all__ = ["RunSettings", "DownstreamSettings", "TrainConfig", "load_config",
           "resolve_up_axis", "model_config", "stream_settings"]


@settings
class RunSettings(BackboneSettings):
    """What every training run has (pre-training, classification, part segmentation); each
    command's class sets its own defaults."""

    epochs: int = setting(100, "Stop after this many epochs.")
    max_steps: int = setting(0, "Stop after this many optimizer steps, if sooner (0: no limit).")
    batch_size: int = setting(32, "Samples per step per process.")
    lr: float = setting(2e-3, "AdamW's peak learning rate.")
    weight_decay: float = setting(0.05, "AdamW's weight decay.")
    grad_clip: float = setting(10.0, "Gradient-norm clip.")
    points: int = setting(1024, "Points per sample.")
    seed: int = setting(0, "Seed of every random draw of the run.")
    device: Device = setting("auto", "auto (CUDA when present), cpu, cuda or cuda:N.")
    num_workers: int = setting(0, "DataLoader worker processes (0: in the main process).")
    log_every: int = setting(10, "Steps between log lines.")
    checkpoint_every: int = setting(1000, "Steps between checkpoints.")


@settings
class DownstreamSettings(RunSettings):
    """What the downstream tasks (classification, part segmentation) add."""

    backbone_checkpoint: str = setting(
        "", "Pre-trained backbone (run folder, tap3d backbone file or the authors' checkpoint; "
        "it sets backbone and embed_dim); empty: random initialization.")
    eval_batch_size: int = setting(64, "Samples per evaluation batch.")
    scale_low: float = setting(0.9, "Lower end of the training scaling per axis, U[low, high).")
    scale_high: float = setting(1.1, "Upper end of the training scaling per axis.")
    votes: int = setting(0, "Test-time votes of the final model (0: none).")
    test_fraction: float = setting(0.2, "Test share of a tap3d dataset's seeded split.")


@settings
class TrainConfig(RunSettings, TAPModelSettings):
    """Pre-training settings. Defaults follow TAP with the supplement's 2 x 128 Photograph
    module; docs/pretraining.md ("Settings") gives each one's source."""

    min_lr: float = setting(1e-5, "Learning rate at the end of the cosine decay.")
    warmup_steps: int = setting(0, "Steps of linear warm-up before the cosine decay.")
    grad_accumulation: int = setting(
        1, "Micro-batches per optimizer step (batch: batch_size x this x processes).")
    views_per_sample: int = setting(0, "Views per sample (0: half the stored views).")
    sampling: one_of(POINT_SAMPLINGS) = setting(
        "random", "Point subsets: random, fps or fixed (the same points every epoch).")
    scale_low: float = setting(0.9, "Lower end of the scaling U[low, high) of each sample.")
    scale_high: float = setting(1.1, "Upper end of the scaling of each sample.")
    scale_anisotropic: bool = setting(
        False, "The authors' per-axis scaling, each view refitted (orthographic data, a fit).")
    normalize: one_of(NORMALIZATIONS) = setting(
        "unit_sphere", "unit_sphere: samples centred at unit radius; none: the stored frame.")
    up_axis: UpAxis | None = setting(
        None, "World up axis of the height feature and the queries; none: the dataset's.")
    w_fg: float = setting(20.0, "Loss weight of the foreground (mask) pixels.")
    w_bg: float = setting(1.0, "Loss weight of the background pixels.")
    w_feat: float = setting(0.0, "Weight of the perceptual loss (0: off).")
    feat_layers: list[one_of(VGG16_LAYERS)] = setting(
        help="VGG-16 layers the perceptual loss averages over.",
        default_factory=lambda: list(VGG16_LAYERS))
    feat_weights: str = setting(
        "", "Local file of VGG-16 ImageNet weights (empty: torchvision's cache; no download).")
    eval_fraction: float = setting(
        0.0, "Share of the done objects held out from pre-training (seeded) for evaluation.")
    eval_objects: int = setting(
        16, "Objects evaluated per split (training, held out); 0: no evaluation.")
    eval_every: int = setting(0, "Steps between evaluations (0: at the end only).")
    init: str = setting(
        "", "Checkpoint whose weights the model starts from (ignored on resume); empty: none.")
    checkpoint_every: int = inherit(RunSettings, "checkpoint_every", 500)
    sample_every: int = setting(500, "Steps between generated-vs-target grids.")
    log_objects: bool = setting(
        False, "Record each step's object indices in RUN/objects/rank_R.jsonl.")


def stream_settings(config: TrainConfig, **changes) -> StreamSettings:
    """The :class:`~tap3d.stream.StreamSettings` of a pre-training ``config``, with
    ``changes``."""
    return dataclasses.replace(StreamSettings(
        points=config.points, views_per_sample=config.views_per_sample,
        sampling=config.sampling, scale_range=(config.scale_low, config.scale_high),
        anisotropic=config.scale_anisotropic, normalize=config.normalize,
        up_axis=config.up_axis, seed=config.seed), **changes)


def resolve_up_axis(config: TrainConfig, attributes) -> TrainConfig:
    """``config`` with ``up_axis`` None replaced by the dataset's (group ``attributes``,
    :func:`tap3d.views.schema.up_axis_of`); any other value is kept.

    Raises:
        FormatError: a dataset attribute that is not 0, 1 or 2.
    """
    from tap3d.views.schema import up_axis_of

    if config.up_axis is not None:
        return config
    return dataclasses.replace(config, up_axis=up_axis_of(attributes))


def model_config(config: TrainConfig, image_size: int, projection: str,
                 attributes=None) -> TAPModelConfig:
    """The :class:`~tap3d.models.TAPModelConfig` of a pre-training ``config`` on data of
    ``image_size`` px views whose cameras project by ``projection``; an ``up_axis`` of None is
    the dataset's (its group ``attributes``), or 1 (y-up, tap3d's builds) without them.

    Raises:
        FormatError: a dataset attribute that is not 0, 1 or 2.
    """
    up_axis = config.up_axis
    if up_axis is None:
        up_axis = resolve_up_axis(config, attributes).up_axis if attributes is not None else 1
    return TAPModelConfig.from_settings(config, image_size=image_size, projection=projection,
                                        up_axis=up_axis)


def load_config(path: str | None = None, **overrides) -> TrainConfig:
    """A :class:`TrainConfig` from defaults, then a YAML file, then ``overrides`` (None values
    ignored).

    Raises:
        FileNotFoundError: no file at ``path``.
        SettingsError: unknown keys, wrong types or unknown choices, naming the file (or
            ``options``) and the key.
    """
    return load_settings(TrainConfig, path, **overrides)
