"""The training commands' settings (:mod:`tap3d.settings`): the fields every run shares
(:class:`RunSettings`), those of the downstream tasks (:class:`DownstreamSettings`) and
pre-training's :class:`TrainConfig`."""

from __future__ import annotations

import dataclasses

from tap3d.models.backbones import BACKBONES
from tap3d.models.generator import FACTORS
from tap3d.models.photograph import QUERIES
from tap3d.settings import Device, load_settings, one_of, settings
from tap3d.stream import NORMALIZATIONS, POINT_SAMPLINGS
from tap3d.train.perceptual import VGG16_LAYERS

__all__ = ["BackboneName", "RunSettings", "DownstreamSettings", "TrainConfig", "load_config",
           "resolve_up_axis"]

#: A backbone name: a key of :data:`tap3d.models.backbones.BACKBONES`.
BackboneName = one_of(BACKBONES)


@settings
class RunSettings:
    """What every training run has (pre-training, classification, part segmentation); each
    command's class sets its own defaults.

    Attributes:
        backbone, embed_dim: backbone name (:data:`tap3d.models.backbones.BACKBONES`) and its
            base width (64 in the authors' configuration of every one).
        epochs, max_steps: stop after ``epochs`` epochs or ``max_steps`` optimizer steps
            (whichever comes first; ``max_steps`` 0 means no step limit).
        batch_size: samples per step per process.
        lr, weight_decay, grad_clip: AdamW's peak learning rate and weight decay; gradient-norm
            clip.
        points: points per sample.
        seed: every random draw of the run derives from it.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
        num_workers: DataLoader worker processes (0: in the main process).
        log_every, checkpoint_every: steps between log lines and between checkpoints.
    """

    backbone: BackboneName = "pointmlp"
    embed_dim: int = 64
    epochs: int = 100
    max_steps: int = 0
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    grad_clip: float = 10.0
    points: int = 1024
    seed: int = 0
    device: Device = "auto"
    num_workers: int = 0
    log_every: int = 10
    checkpoint_every: int = 1000


@settings
class DownstreamSettings(RunSettings):
    """What the downstream tasks (classification, part segmentation) add.

    Attributes:
        backbone_checkpoint: the pre-trained backbone: a run folder, a tap3d backbone file or
            the authors' checkpoint; empty for random initialization.
        eval_batch_size: samples per evaluation batch.
        scale_low, scale_high: anisotropic training scaling per axis, U[low, high).
        votes: test-time votes of the final model (0: none).
        test_fraction: test share of a tap3d dataset's seeded split.
    """

    backbone_checkpoint: str = ""
    eval_batch_size: int = 64
    scale_low: float = 0.9
    scale_high: float = 1.1
    votes: int = 0
    test_fraction: float = 0.2


@settings
class TrainConfig(RunSettings):
    """Training settings. Defaults follow TAP (docs/pretraining.md), with the supplement's 2 x 128
    Photograph module.

    Attributes:
        epochs, max_steps: stop after ``epochs`` epochs or ``max_steps`` optimizer steps
            (whichever comes first; ``max_steps`` 0 means no step limit).
        batch_size: samples per step per process (TAP: 32).
        lr, min_lr, weight_decay, warmup_steps: AdamW with linear warm-up then cosine decay to
            ``min_lr`` (TAP: 2e-3 -> 1e-5, weight decay 0.05).
        grad_clip: gradient-norm clip (TAP: 10).
        grad_accumulation: micro-batches of ``batch_size`` per optimizer step (1: none); the
            effective batch is ``batch_size x grad_accumulation x processes``.
        points, views_per_sample, sampling, scale_low, scale_high: the stream's samples
            (TAP: 1024 points, 6 of 12 views, scaling U[0.9, 1.1)). ``views_per_sample`` 0 means
            half the stored views. ``sampling``: ``random``, ``fps`` or ``fixed`` (the same
            points every epoch, as TAP's fixed 1024-point clouds). Scaling is isotropic unless
            ``scale_anisotropic``.
        scale_anisotropic: the authors' per-axis scaling before centring and normalizing, with
            each view refitted to the sample's points (``anisotropic`` of
            :class:`tap3d.stream.ViewStream`; orthographic datasets with a fit only; the
            authors' configs: ``configs/tap-public.yaml``, ``tap-dgcnn.yaml``, ``tap-pointnet2.yaml``,
            ``tap-transformer.yaml``).
        normalize: ``unit_sphere`` (centre the sample on its centroid, scale it to unit radius,
            as TAP and fine-tuning do; cameras follow) or ``none`` (the stored frame: bounding
            box centred, farthest vertex at 1).
        up_axis: world up axis for the height feature and TAP's queries (1: y-up); -1 (the
            default): the dataset's ``up_axis`` attribute (:func:`resolve_up_axis`), so that
            tap3d builds (y-up) and the authors' imported data (z-up, their ``gravity_dim`` 2)
            both train without it.
        backbone, embed_dim: backbone name (``pointmlp``, ``dgcnn``, ``pointnet2``,
            ``transformer``: :data:`tap3d.models.backbones.BACKBONES`) and its base width (64 in
            the authors' configuration of every one; every other width is a multiple of it).
        photograph_dim, photograph_depth, photograph_heads, photograph_head_dim,
            photograph_dropout, photograph_qkv_bias, photograph_memory_hidden, query: the
            Photograph module (:class:`tap3d.models.PhotographModule`; ``head_dim`` 0 means
            ``dim / heads``, ``memory_hidden`` 0 means ``dim``). Supplement Table 1a: 2 layers x
            128 channels; the public config: 6 x 256, 32 heads of 32, dropout 0.1, no q/k/v
            bias, memory hidden 1027 (``configs/tap.yaml``, ``configs/tap-public.yaml``).
        photograph_memory_norm, photograph_output_norm: tap3d's LayerNorms on the memory in
            each cross-attention and after the last block (on by default, as tap3d always had
            them; off in the configs that are the authors', ``configs/tap-public.yaml`` etc.,
            whose Photograph module has neither).
        ray_frequencies: frequencies of the ``ray`` queries' positional encoding (tap3d's, not
            TAP's; see :mod:`tap3d.models.photograph`); 0 feeds the raw rays.
        generator_factor: generator upsampling, 8, 16 or 32 (TAP: 32); the query grid is
            ``image_size / generator_factor`` cells per side.
        w_fg, w_bg: loss weights (TAP supplement Table 1b: 20 : 1).
        w_feat, feat_layers, feat_weights: the perceptual loss (TAP supplement eq. 2-3, Table
            1b H1/H2; :mod:`tap3d.train.perceptual`): its weight (0: off, the default and G4;
            2 in H1 and H2), the VGG-16 layers it averages over (all 13 ReLU outputs, eq. 2's
            N layers; Johnson et al. used relu1_2 relu2_2 relu3_3 relu4_3), and a local file of
            VGG-16 ImageNet weights (empty: torchvision's cache; nothing is downloaded).
        eval_fraction: fraction of the done objects held out from pre-training (seeded by
            ``seed``) to measure whether the model takes photos of unseen objects.
        eval_objects: objects evaluated per split (training, held out); 0 turns evaluation off.
        eval_every: steps between evaluations (0: at the end only); see
            :mod:`tap3d.train.quality`.
        init: a checkpoint whose weights the model starts from (weights only: the optimizer,
            schedule and step start fresh; ignored on resume): a tap3d run or checkpoint, the
            authors' ``*_ckpt_latest.pth`` / ``*_ckpt_best.pth`` (the whole model, strictly),
            or any backbone source such as their ``*_clean.pth`` (the backbone alone;
            :func:`tap3d.train.weights.init_model`). Empty: random initialization.
        seed, device, num_workers, log_every, checkpoint_every: see :class:`RunSettings`.
        sample_every: steps between the generated-vs-target grids of the run folder.
        log_objects: append each step's object indices to ``RUN_DIR/objects/rank_R.jsonl``
            (which objects each rank trained on, for debugging data order).
    """

    min_lr: float = 1e-5
    warmup_steps: int = 0
    grad_accumulation: int = 1
    views_per_sample: int = 0
    sampling: one_of(POINT_SAMPLINGS) = "random"
    scale_low: float = 0.9
    scale_high: float = 1.1
    scale_anisotropic: bool = False
    normalize: one_of(NORMALIZATIONS) = "unit_sphere"
    up_axis: one_of((-1, 0, 1, 2)) = -1
    photograph_dim: int = 128
    photograph_depth: int = 2
    photograph_heads: int = 4
    photograph_head_dim: int = 0
    photograph_dropout: float = 0.0
    photograph_qkv_bias: bool = True
    photograph_memory_hidden: int = 0
    photograph_memory_norm: bool = True
    photograph_output_norm: bool = True
    query: one_of(QUERIES) = "ray"
    ray_frequencies: int = 4
    generator_factor: one_of(FACTORS) = 32
    w_fg: float = 20.0
    w_bg: float = 1.0
    w_feat: float = 0.0
    feat_layers: list[one_of(VGG16_LAYERS)] = dataclasses.field(
        default_factory=lambda: list(VGG16_LAYERS))
    feat_weights: str = ""
    eval_fraction: float = 0.0
    eval_objects: int = 16
    eval_every: int = 0
    init: str = ""
    checkpoint_every: int = 500
    sample_every: int = 500
    log_objects: bool = False


def resolve_up_axis(config: TrainConfig, attributes) -> TrainConfig:
    """``config`` with ``up_axis`` -1 replaced by the dataset's (group ``attributes``,
    :func:`tap3d.views.schema.up_axis_of`); any other value is kept.

    Raises:
        ValueError: an ``up_axis`` that is not -1, 0, 1 or 2.
        FormatError: a dataset attribute that is not 0, 1 or 2.
    """
    from tap3d.views.schema import up_axis_of

    if config.up_axis not in (-1, 0, 1, 2):
        raise ValueError(f"up_axis must be -1 (the dataset's), 0, 1 or 2, got {config.up_axis}")
    if config.up_axis >= 0:
        return config
    return dataclasses.replace(config, up_axis=up_axis_of(attributes))


def load_config(path: str | None = None, **overrides) -> TrainConfig:
    """A :class:`TrainConfig` from defaults, then a YAML file, then ``overrides`` (None values
    ignored).

    Raises:
        FileNotFoundError: no file at ``path``.
        SettingsError: unknown keys, wrong types or unknown choices, naming the file (or
            ``options``) and the key.
    """
    return load_settings(TrainConfig, path, **overrides)
