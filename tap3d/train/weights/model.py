"""Whole TAP models from weights files (:mod:`tap3d.train.weights`): tap3d runs and the
authors' pre-training checkpoints, for ``tap-cli train --init``, ``generate`` and
``export-model``."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass

import torch

from tap3d.models.naming import count_indices
from tap3d.models.openpoints import (AUTHORS_PREFIXES, NamingError, model_from_openpoints,
                                     model_to_openpoints)
from tap3d.models.tap import TAPModel, TAPModelConfig
from tap3d.train.checkpoint import load_checkpoint
from tap3d.train.config import TrainConfig, load_config, model_config, resolve_up_axis
from tap3d.train.torchfile import WeightsError, as_data
from tap3d.train.weights.backbone import backbone_kwargs, load_backbone_weights
from tap3d.train.weights.files import load_strictly, named_state, read_weights

__all__ = ["ModelWeights", "load_model_weights", "init_model", "build_model", "export_model",
           "authors_config"]


@dataclass
class ModelWeights:
    """Weights of a whole TAP model (or of its backbone alone) in tap3d naming.

    Attributes:
        state_dict: :class:`~tap3d.models.TAPModel` names (``backbone.*``, and unless
            ``backbone_only`` ``photograph.*`` and ``generator.*``) -> tensors.
        backbone: the backbone's registry name.
        backbone_only: the source holds a backbone and nothing else (the authors'
            ``*_clean.pth``, a tap3d backbone file).
        config: the tap3d training config recorded (dict), else None.
        model_args: the :class:`~tap3d.models.TAPModelConfig` a tap3d pre-training checkpoint
            records (dict), else None.
        path, origin, step: as :class:`BackboneWeights`.
    """

    state_dict: dict
    backbone: str
    backbone_only: bool
    config: dict | None
    model_args: dict | None
    path: str
    origin: str
    step: int | None


def load_model_weights(path: str | os.PathLike, *, trust: bool = False) -> ModelWeights:
    """Read a TAP model's weights: a tap3d pre-training run or checkpoint, the authors'
    ``*_ckpt_latest.pth`` / ``*_ckpt_best.pth``, or any backbone source (then
    ``backbone_only``).

    Args:
        path: the run folder or file.
        trust: see :func:`load_backbone_weights`.

    Returns:
        :class:`ModelWeights` in tap3d naming.

    Raises:
        CheckpointError: without ``trust``, the file names a type beyond tensors and numpy
            values (file and type named).
        WeightsError: unreadable, or keys that map nowhere (all listed).
    """
    path = os.fspath(path)
    state, meta = read_weights(path, trust)
    tops = {k.split(".")[0] for k in state}
    if tops == {"backbone", "photograph", "generator"}:  # a tap3d pre-training checkpoint
        inner = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        found = named_state(inner)
        name = (meta["config"] or {}).get("backbone") or (found[0] if found else "pointmlp")
        return ModelWeights(state, name, False, meta["config"], meta["model_args"], path,
                            "tap3d run", meta["step"])
    if tops & set(AUTHORS_PREFIXES) - {"encoder"}:  # the authors' ViewGenBase
        try:
            name, converted = model_from_openpoints(state)
        except NamingError as error:
            raise WeightsError(f"{path}: {error}") from None
        return ModelWeights(converted, name, False, None, None, path, "openpoints", meta["step"])
    weights = load_backbone_weights(path, trust=trust)
    return ModelWeights({f"backbone.{k}": v for k, v in weights.state_dict.items()},
                        weights.backbone, True, weights.config, None, path, weights.origin,
                        weights.step)


def init_model(model: torch.nn.Module, path: str | os.PathLike, *,
               trust: bool = False) -> ModelWeights:
    """Load a checkpoint's weights into a :class:`~tap3d.models.TAPModel` (``tap-cli train
    --init``): all of it strictly, or the backbone alone (strictly) from a backbone-only
    source, the rest keeping its initialization.

    Args:
        model: the model to load into.
        path: any source of :func:`load_model_weights`.
        trust: see :func:`load_backbone_weights`.

    Returns:
        The weights read.

    Raises:
        CheckpointError: without ``trust``, the file names a type beyond tensors and numpy
            values.
        WeightsError: unreadable, keys that map nowhere, or entries and shapes that do not fit
            the model (all listed).
    """
    weights = load_model_weights(path, trust=trust)
    target = model.backbone if weights.backbone_only else model
    state = {k[len("backbone."):]: v for k, v in weights.state_dict.items()} \
        if weights.backbone_only else weights.state_dict
    load_strictly(target, state, f"{weights.path}: does not fit the model")
    return weights


def build_model(weights: ModelWeights, image_size: int | None = None, config=None,
                projection: str | None = None, attributes=None):
    """The :class:`~tap3d.models.TAPModel` of whole-model ``weights``, in eval mode: a tap3d
    checkpoint's from the :class:`~tap3d.models.TAPModelConfig` it records, the authors' from
    ``config`` (default: :func:`authors_config`) and the data's size and projection.

    Args:
        weights: from :func:`load_model_weights`.
        image_size: generated view side; a tap3d checkpoint records its own (they must agree).
        config: a :class:`~tap3d.train.TrainConfig` of the inputs (and of the architecture of
            the authors' checkpoints); default: what a tap3d checkpoint records, or
            :func:`authors_config` for the authors'.
        projection: how the cameras the model is given project (the dataset's ``projection``,
            :mod:`tap3d.views.projection`); None: what a tap3d checkpoint records, else
            ``perspective``.
        attributes: the dataset's group attributes, for an ``up_axis`` of None
            (:func:`tap3d.train.config.resolve_up_axis`); None: y-up.

    Returns:
        ``(model, config)``: the model and the :class:`~tap3d.train.TrainConfig` of its inputs.

    Raises:
        WeightsError: a backbone-only source, image sizes that disagree, no image size for the
            authors' model, or weights that do not fit the model (all entries listed).
    """
    if weights.backbone_only:
        raise WeightsError(f"{weights.path}: holds a backbone only, not a whole TAP model")
    if config is None:
        config = TrainConfig(**weights.config) if weights.config else \
            load_config(None, **authors_config(weights))
    if attributes is not None:
        config = resolve_up_axis(config, attributes)
    if weights.model_args:
        built = TAPModelConfig(**weights.model_args)
        if image_size and image_size != built.image_size:
            raise WeightsError(f"{weights.path}: generates {built.image_size} px views, not "
                               f"{image_size} px")
        if projection is not None:  # the cameras of the data it is given
            built = dataclasses.replace(built, projection=projection)
    elif not image_size:
        raise WeightsError(f"{weights.path}: records no image size; give one")
    else:
        built = model_config(config, image_size, projection or "perspective", attributes)
    model = TAPModel(built)
    load_strictly(model, weights.state_dict, f"{weights.path}: does not fit the model")
    return model.eval(), config


def load_model(run_or_checkpoint: str | os.PathLike, device: str = "cpu", *,
               trust: bool = False) -> tuple[TAPModel, object]:
    """The TAP model of a tap3d pre-training run or checkpoint, in eval mode on ``device``,
    and its :class:`~tap3d.train.TrainConfig`: :func:`load_model_weights`, then
    :func:`build_model` from the :class:`~tap3d.models.TAPModelConfig` it records.

    Args:
        run_or_checkpoint: a run folder (its ``checkpoints/last.pt``) or a checkpoint file.
        device: where to load it.
        trust: see :func:`load_backbone_weights`.

    Returns:
        ``(model, config)``.

    Raises:
        CheckpointError: without ``trust``, the file names a type beyond tensors and numpy
            values.
        WeightsError: no checkpoint there, not a tap3d pre-training checkpoint, or weights
            that do not fit the model (all entries listed).
    """
    weights = load_model_weights(run_or_checkpoint, trust=trust)
    if weights.origin != "tap3d run":
        raise WeightsError(f"{weights.path}: not a tap3d pre-training checkpoint "
                           f"({weights.origin}); load_model_weights and build_model read it")
    model, config = build_model(weights)
    return model.to(device), config


def export_model(source: str | os.PathLike, output: str | os.PathLike, *,
                 trust: bool = False) -> ModelWeights:
    """Write a tap3d pre-training checkpoint as the authors' ``*_ckpt_latest.pth``:
    ``{"model", "optimizer": {}, "scheduler": {}, "epoch", "best_val": inf}``, ``model`` in
    ``ViewGenBase`` names, every entry of theirs (``pad_memory`` zeros): their
    ``load_checkpoint`` reads it, and so does their ``resume_checkpoint`` (which loads the model
    strictly and reports the empty optimizer and scheduler states as not matching, as for the
    files their ``save_checkpoint`` writes without an optimizer). ``epoch``: the epochs the
    run had finished (their resume starts at ``epoch + 1``); ``best_val``: their initial value
    (no validation loss yet).

    The model must have the authors' structure (``configs/tap-public.yaml`` and its
    ``tap-dgcnn``, ``tap-pointnet2``, ``tap-transformer`` versions: ``query: tap``, no extra LayerNorms, no q/k/v bias, factor 32).

    Args:
        source: a tap3d pre-training run folder or checkpoint (or the authors' file).
        output: the ``.pth`` file to write.
        trust: see :func:`load_backbone_weights`.

    Returns:
        The weights read.

    Raises:
        CheckpointError: without ``trust``, ``source`` names a type beyond tensors and numpy
            values.
        WeightsError: unreadable source, or a model whose keys map nowhere (all listed).
    """
    weights = load_model_weights(source, trust=trust)
    if weights.backbone_only:
        raise WeightsError(f"{weights.path}: holds a backbone only; export-backbone writes it")
    epoch = weights.step if weights.step is not None else 0  # the authors' files: their epoch
    if weights.origin == "tap3d run":  # through the model: its entries, strictly checked
        weights.state_dict = build_model(weights)[0].state_dict()
        # their epoch counts finished epochs (resume starts at epoch + 1); tap3d's "epoch" is
        # the 0-based epoch in progress, i.e. the epochs finished before it
        epoch = int(load_checkpoint(os.fspath(source), trust=trust).get("epoch", 0))
    try:
        state = model_to_openpoints(weights.state_dict, weights.backbone)
    except NamingError as error:
        raise WeightsError(f"{weights.path}: {error}") from None
    torch.save({"model": state, "optimizer": {}, "scheduler": {}, "epoch": as_data(epoch),
                "best_val": math.inf}, output)
    return weights


def authors_config(weights: ModelWeights) -> dict:
    """The :class:`~tap3d.models.TAPModelSettings` that fit the authors' checkpoint ``weights``
    (tap3d names), as a dict:
    their Photograph module (``query`` ``tap``, no extra LayerNorms, no q/k/v bias,
    ``channels_per_head`` heads of as many channels), widths from the tensors' shapes."""
    state = weights.state_dict
    inner = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    kwargs = backbone_kwargs(weights.backbone, inner, weights.path)
    inner_width = state["photograph.blocks.0.self_attention.to_q.weight"].shape[0]
    heads = math.isqrt(inner_width)
    return {"backbone": weights.backbone, "embed_dim": kwargs["embed_dim"],
            "photograph_dim": int(state["photograph.memory.2.weight"].shape[0]),
            "photograph_depth": count_indices(state, r"photograph\.blocks\.(\d+)\."),
            "photograph_heads": heads, "photograph_head_dim": inner_width // heads,
            "photograph_qkv_bias": False,
            "photograph_memory_hidden": int(state["photograph.memory.0.weight"].shape[0]),
            "photograph_memory_norm": False, "photograph_output_norm": False, "query": "tap",
            "generator_factor": 32}
