"""Weights from files: tap3d runs, tap3d backbone files and the TAP authors' checkpoints.

One backbone loader (:func:`load_backbone`, over :func:`load_backbone_weights`) serves
fine-tuning, the linear probe and :func:`export_backbone`; one whole-model loader
(:func:`load_model_weights`) serves ``tap-cli train --init`` and ``tap-cli generate``.

Sources:

- a tap3d run folder (``tap-cli train`` or ``tap-cli finetune``; ``checkpoints/last.pt``) or
  one of its checkpoint files: the ``backbone.*`` entries of ``model``, and its ``config``;
- a tap3d backbone file, the one backbone format (:func:`export_backbone` ``tap3d``):
  ``{"format": "tap3d.backbone", "version": 1, "backbone", "backbone_args", "state_dict",
  "config", "step"}``; files written before ``format``/``version`` and ``backbone_args``
  existed read the same (the constructor arguments then come from the tensors' shapes);
- a checkpoint of the authors' code (openpoints, GitHub wangzy22/TAP): their pre-training
  ``*_ckpt_latest.pth`` / ``*_ckpt_best.pth`` (``{model, optimizer, scheduler, epoch,
  best_val}``, ``model`` = ``encoder.`` backbone, ``generator.`` Photograph module, ``decoder.``
  2D generator), ``*_clean.pth`` (``{model}``: the encoder, prefix removed), a fine-tuning
  checkpoint (``encoder.`` and ``prediction.``), or a bare state dict; like their
  ``load_checkpoint``, ``model``, ``net``, ``network``, ``state_dict`` or ``base_model`` is
  unwrapped and ``module.`` removed. Names: :mod:`tap3d.models.openpoints` (all four
  backbones, the Photograph module, the generator).

Where a checkpoint holds a whole model, :func:`load_backbone_weights` leaves the other modules
out and lists them in ``dropped``. Every remaining entry must be a backbone entry of the right
shape: a key that matches nothing is an error listing it (openpoints loads with
``strict=False`` and skips such keys silently).

Files are read as data by :func:`tap3d.train.torchfile.load_torch_file`.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

import torch

from tap3d.models.backbones import Backbone, make_backbone
from tap3d.models.tap import TAPModel
from tap3d.train.checkpoint import config_from_dict, load_checkpoint, load_model
from tap3d.train.config import load_config, resolve_up_axis
from tap3d.train.torchfile import (SAFE_GLOBALS, CheckpointError, WeightsError, as_data,
                                   load_torch_file)
from tap3d.models.segmentation import PartSegmenter
from tap3d.models.openpoints import (AUTHORS_PREFIXES, NamingError, backbone_from_openpoints,
                                     backbone_to_openpoints, identify_backbone,
                                     model_from_openpoints, model_to_openpoints)

__all__ = ["BackboneWeights", "WeightsError", "CheckpointError", "SAFE_GLOBALS",
           "load_torch_file", "to_openpoints", "from_openpoints",
           "load_backbone_weights", "load_backbone", "export_backbone", "ModelWeights",
           "load_model_weights", "init_model", "build_model", "export_model", "authors_config",
           "BACKBONE_FORMAT", "LoadReport", "load_pretrained_backbone"]

#: ``format`` of a tap3d backbone file (``version`` 1).
BACKBONE_FORMAT = "tap3d.backbone"


def to_openpoints(state: dict, backbone: str = "pointmlp") -> dict:
    """tap3d backbone state dict -> the authors' names (:mod:`tap3d.models.openpoints`).

    Raises:
        WeightsError: keys that are not ``backbone`` entries (all listed).
    """
    try:
        return backbone_to_openpoints(backbone, state)
    except NamingError as error:
        raise WeightsError(str(error)) from None


def from_openpoints(state: dict, backbone: str | None = None) -> dict:
    """The authors' backbone state dict -> tap3d names (the backbone identified by its keys
    unless given).

    Raises:
        WeightsError: keys that are not entries of the backbone (all listed).
    """
    try:
        return backbone_from_openpoints(state, backbone)[1]
    except NamingError as error:
        raise WeightsError(str(error)) from None


@dataclass
class BackboneWeights:
    """A backbone's weights in tap3d naming, with what is needed to build it.

    Attributes:
        backbone: registry name (:data:`tap3d.models.BACKBONES`).
        state_dict: tap3d names -> tensors.
        kwargs: constructor arguments (``embed_dim``, ...) that fit the tensors.
        path: the source.
        origin: ``tap3d run``, ``tap3d backbone`` or ``openpoints``.
        step: training step (epoch for the authors' files) of the checkpoint, when known.
        dropped: top-level modules of the checkpoint that are not the backbone.
        config: the training config the checkpoint records (tap3d), else None.
    """

    backbone: str
    state_dict: dict
    kwargs: dict
    path: str
    origin: str
    step: int | None = None
    dropped: list[str] = field(default_factory=list)
    config: dict | None = None

    def build(self) -> Backbone:
        """The backbone with these weights (strict: every entry, every shape).

        Raises:
            WeightsError: missing or unexpected entries, or shapes that differ (all listed).
        """
        try:
            model = make_backbone(self.backbone, **self.kwargs)
        except (ValueError, TypeError) as error:
            raise WeightsError(f"{self.path}: cannot build {self.backbone} {self.kwargs}: "
                               f"{error}") from None
        _load_strictly(model, self.state_dict, f"{self.path}: does not fit {self.backbone} "
                                               f"{self.kwargs}")
        return model


def _load_strictly(model: torch.nn.Module, state: dict, what: str) -> None:
    """``model.load_state_dict(state)`` with every unknown key, missing key and shape listed
    in one :class:`WeightsError` (load hooks, such as legacy defaults, apply first)."""
    expected = model.state_dict()
    shapes = [f"{k} {tuple(v.shape)} vs {tuple(expected[k].shape)}" for k, v in state.items()
              if k in expected and v.shape != expected[k].shape]
    if shapes:
        raise WeightsError(f"{what}: shapes (checkpoint vs model): {'; '.join(shapes)}")
    result = model.load_state_dict(state, strict=False)
    problems = [f"unknown keys: {', '.join(sorted(result.unexpected_keys))}"
                if result.unexpected_keys else "",
                f"missing keys: {', '.join(sorted(result.missing_keys))}"
                if result.missing_keys else ""]
    if any(problems):
        raise WeightsError(f"{what}: " + "; ".join(p for p in problems if p))


def _count(state: dict, pattern: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def _backbone_kwargs(name: str, state: dict, path: str) -> dict:
    """Constructor arguments read off the tensors' shapes (tap3d names). What the weights do
    not hold (neighbours, radii, group counts, drop-path rate) keeps the defaults, which are
    the authors' configs."""
    first = {"pointmlp": "embedding.0.weight", "dgcnn": "edges.0.linear.weight",
             "pointnet2": "stages.0.mlp.0.linear.weight", "transformer": "pos_embed.0.weight"}
    weight = state.get(first[name])
    if weight is None:
        raise WeightsError(f"{path}: no {first[name]}, not a {name} state dict")
    if name == "pointmlp":
        return {"in_channels": int(weight.shape[1]), "embed_dim": int(weight.shape[0]),
                "stages": _count(state, r"stages\.(\d+)\."),
                "pre_blocks": _count(state, r"stages\.0\.pre\.(\d+)\."),
                "pos_blocks": _count(state, r"stages\.0\.pos\.(\d+)\.")}
    if name == "dgcnn":
        return {"in_channels": int(weight.shape[1]) // 2, "embed_dim": int(weight.shape[0])}
    if name == "pointnet2":
        return {"in_channels": int(weight.shape[1]) - 3, "embed_dim": int(weight.shape[0])}
    embed = int(weight.shape[0]) // 2  # the position MLP's hidden width is 2 embed_dim
    return {"embed_dim": embed, "heads": int(state["reduce.weight"].shape[0]) // embed,
            "depth": _count(state, r"blocks\.(\d+)\.")}


def _torch_file(path: str, trust: bool = False) -> dict:
    """The dict a ``.pt``/``.pth`` file holds (:func:`load_torch_file`)."""
    obj = load_torch_file(path, trust=trust)
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: holds a {type(obj).__name__}, not a dict")
    return obj


#: What the authors' ``load_checkpoint`` unwraps (``openpoints/utils/ckpt_util.py``).
_WRAPPERS = ("model", "net", "network", "state_dict", "base_model")


def _read(path: str, trust: bool = False) -> tuple[dict, dict]:
    """``(state dict with its prefixes, module. removed; meta)`` of a run folder or file;
    ``meta``: ``config`` (dict or None), ``origin``, ``step``, ``kwargs`` (constructor
    arguments a tap3d backbone file records, or None), ``image_size`` (tap3d pre-training).
    ``trust``: :func:`load_torch_file`'s."""
    meta = {"config": None, "origin": "openpoints", "step": None, "kwargs": None,
            "image_size": None}
    if os.path.isdir(path):
        try:
            obj = load_checkpoint(path, trust=trust)
        except FileNotFoundError as error:
            raise WeightsError(str(error)) from None
    elif os.path.isfile(path):
        obj = _torch_file(path, trust)
    else:
        raise WeightsError(f"{path}: no such file or run folder")
    if isinstance(obj.get("state_dict"), dict) and "backbone" in obj:  # tap3d backbone file
        meta.update(config={**(obj.get("config") or {}), "backbone": obj["backbone"]},
                    origin="tap3d backbone", step=obj.get("step"), kwargs=obj.get("backbone_args"))
        state = obj["state_dict"]
    else:
        config = obj.get("config") if isinstance(obj.get("config"), dict) else None
        meta.update(config=config, step=obj.get("step", obj.get("epoch")),
                    image_size=obj.get("image_size"),
                    origin="tap3d run" if config and "backbone" in config else "openpoints")
        state = obj
        while (key := next((k for k in _WRAPPERS if isinstance(state.get(k), dict)), None)):
            state = state[key]
        if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise WeightsError(f"{path}: no model, state_dict or tensors in the checkpoint "
                               f"(keys: {', '.join(map(str, obj))})")
    return {re.sub(r"^(module\.)+", "", k): v for k, v in state.items()}, meta


def _named(state: dict) -> tuple[str, str] | None:
    """``(backbone, naming)`` when every key of ``state`` is one backbone's, else None."""
    for naming in ("tap3d", "openpoints"):
        try:
            return identify_backbone(state, naming), naming
        except NamingError:
            continue
    return None


def _backbone_part(state: dict, meta: dict, path: str) -> tuple[str, dict, str, list[str]]:
    """``(backbone, tap3d state dict, naming, dropped modules)`` of a checkpoint's state."""
    recorded = (meta["config"] or {}).get("backbone")
    if recorded and meta["origin"] == "tap3d backbone":
        return recorded, state, "tap3d", []
    if recorded and meta["origin"] == "tap3d run":
        inner = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        return recorded, inner, "tap3d", sorted({k.split(".")[0] for k in state} - {"backbone"})
    candidates = [(state, [])]
    for prefix in ("encoder.", "backbone."):
        if any(k.startswith(prefix) for k in state):
            inner = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            dropped = sorted({k.split(".")[0] for k in state if not k.startswith(prefix)})
            candidates.insert(0 if dropped else 1, (inner, dropped))
    for inner, dropped in candidates:
        found = _named(inner)
        if found:
            name, naming = found
            if naming == "openpoints":
                inner = from_openpoints(inner, name)
            return name, inner, naming, dropped
    try:
        identify_backbone(candidates[0][0], "openpoints")  # raises: no backbone has every key
    except NamingError as error:
        raise WeightsError(f"{path}: {error}") from None
    raise WeightsError(f"{path}: not a backbone state dict")


def load_backbone_weights(path: str | os.PathLike, backbone: str | None = None, *,
                          trust: bool = False) -> BackboneWeights:
    """Read a backbone's weights from any of the sources (module docstring).

    Args:
        path: run folder, checkpoint, tap3d backbone file or the authors' checkpoint.
        backbone: registry name the source must hold, or None for what its keys name.
        trust: read a file that names other types than tensors and numpy values with the full
            unpickler, which runs any code it holds (:func:`load_torch_file`).

    Returns:
        :class:`BackboneWeights` in tap3d naming (not yet checked against the backbone: call
        :meth:`BackboneWeights.build`).

    Raises:
        CheckpointError: without ``trust``, the file names a type beyond tensors and numpy
            values (file and type named).
        WeightsError: unreadable, keys that match no entry (all listed), or another backbone
            than ``backbone``.
    """
    path = os.fspath(path)
    state, meta = _read(path, trust)
    name, state, naming, dropped = _backbone_part(state, meta, path)
    if backbone and backbone != name:
        raise WeightsError(f"{path}: holds a {name} backbone, not {backbone}")
    origin = "openpoints" if naming == "openpoints" else meta["origin"]
    kwargs = dict(meta["kwargs"]) if meta["kwargs"] is not None else \
        _backbone_kwargs(name, state, path)
    return BackboneWeights(name, state, kwargs, path, origin, meta["step"], dropped,
                           meta["config"])


def load_backbone(path: str | os.PathLike | None, backbone: str = "pointmlp",
                  embed_dim: int = 64, expect: str | None = None, *, trust: bool = False
                  ) -> tuple[Backbone, BackboneWeights | None]:
    """The backbone that fine-tuning, the probe and export start from.

    Args:
        path: any source of :func:`load_backbone_weights`; empty or None for a randomly
            initialized ``backbone`` of width ``embed_dim`` (from torch's global generator:
            seed it first).
        backbone, embed_dim: the random backbone (without ``path``).
        expect: with ``path``, the backbone the file must hold (None: whatever it holds).
        trust: see :func:`load_backbone_weights`.

    Returns:
        ``(backbone module, its weights or None)``; the weights' ``backbone`` and ``kwargs``
        say what was built.

    Raises:
        CheckpointError: without ``trust``, the file names a type beyond tensors and numpy
            values.
        WeightsError: the file cannot be read or does not fit (names the file).
    """
    if not path:
        return make_backbone(backbone, embed_dim=embed_dim), None
    weights = load_backbone_weights(path, expect, trust=trust)
    return weights.build(), weights


def export_backbone(source: str | os.PathLike, output: str | os.PathLike,
                    format: str = "tap3d", backbone: str | None = None, *,
                    trust: bool = False) -> BackboneWeights:
    """Write the backbone of ``source`` alone, in tap3d's backbone format or the authors'.

    Args:
        source: see :func:`load_backbone_weights`.
        output: file to write. ``tap3d``: the backbone format (module docstring);
            ``openpoints``: ``{"model": state dict}`` in the authors' names, which their
            ``load_checkpoint(model.encoder, path)`` reads (the layout of their ``*_clean.pth``).
        format: ``tap3d`` or ``openpoints``.
        backbone: registry name ``source`` must hold (None: whatever it holds).
        trust: see :func:`load_backbone_weights`.

    Returns:
        The weights read (checked strictly against the backbone). The file written is data
        (:func:`load_torch_file` reads it without ``trust``): objects of a trusted ``source``
        that are not tensors, numbers, strings or containers are written as their ``repr``.

    Raises:
        CheckpointError: without ``trust``, ``source`` names a type beyond tensors and numpy
            values.
        WeightsError: unreadable source, keys that match nothing, shapes that do not fit.
        ValueError: unknown ``format``.
    """
    if format not in ("tap3d", "openpoints"):
        raise ValueError(f"format must be tap3d or openpoints, got {format!r}")
    model, weights = load_backbone(source, expect=backbone, trust=trust)
    weights.state_dict = model.state_dict()  # legacy defaults (zero biases of old files) in
    if format == "openpoints":
        torch.save({"model": to_openpoints(weights.state_dict, weights.backbone)}, output)
    else:
        torch.save({"format": BACKBONE_FORMAT, "version": 1, "backbone": weights.backbone,
                    "backbone_args": as_data(weights.kwargs), "state_dict": weights.state_dict,
                    "config": as_data(weights.config or {"backbone": weights.backbone}),
                    "step": as_data(weights.step)}, output)
    return weights


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
        image_size: generated view side recorded by a tap3d checkpoint, else None.
        path, origin, step: as :class:`BackboneWeights`.
    """

    state_dict: dict
    backbone: str
    backbone_only: bool
    config: dict | None
    image_size: int | None
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
    state, meta = _read(path, trust)
    tops = {k.split(".")[0] for k in state}
    if tops == {"backbone", "photograph", "generator"}:  # a tap3d pre-training checkpoint
        inner = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        found = _named(inner)
        name = (meta["config"] or {}).get("backbone") or (found[0] if found else "pointmlp")
        return ModelWeights(state, name, False, meta["config"], meta["image_size"], path,
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
    _load_strictly(target, state, f"{weights.path}: does not fit the model")
    return weights


def build_model(weights: ModelWeights, image_size: int | None = None, config=None,
                projection: str = "perspective", attributes=None):
    """The :class:`~tap3d.models.TAPModel` of whole-model ``weights``, in eval mode.

    Args:
        weights: from :func:`load_model_weights`.
        image_size: generated view side; a tap3d checkpoint records its own (they must agree).
        config: a :class:`~tap3d.train.TrainConfig`; default: what a tap3d checkpoint records,
            or :func:`authors_config` for the authors' checkpoints.
        projection: how the cameras the model is given project (the dataset's ``projection``,
            :mod:`tap3d.views.projection`).
        attributes: the dataset's group attributes, for a config whose ``up_axis`` is -1
            (:func:`tap3d.train.config.resolve_up_axis`; none: y-up).

    Returns:
        ``(model, config)``.

    Raises:
        WeightsError: a backbone-only source, image sizes that disagree, or weights that do not
            fit the model (all entries listed).
    """

    if weights.backbone_only:
        raise WeightsError(f"{weights.path}: holds a backbone only, not a whole TAP model")
    if image_size and weights.image_size and image_size != weights.image_size:
        raise WeightsError(f"{weights.path}: generates {weights.image_size} px views, not "
                           f"{image_size} px")
    size = weights.image_size or image_size
    if not size:
        raise WeightsError(f"{weights.path}: records no image size; give one")
    if config is None:
        config = config_from_dict(weights.config) if weights.config else \
            load_config(None, **authors_config(weights))
    config = resolve_up_axis(config, attributes or {})
    model = TAPModel(config, size, projection)
    _load_strictly(model, weights.state_dict, f"{weights.path}: does not fit the model")
    return model.eval(), config


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

    The model must have the authors' structure (``configs/tap-public.yaml`` and the other
    ``configs/tap-*.yaml``: ``query: tap``, no extra LayerNorms, no q/k/v bias, factor 32).

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
    if weights.origin == "tap3d run":  # through the model: legacy defaults filled in
        weights.state_dict = load_model(os.fspath(source), trust=trust)[0].state_dict()
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
    """TrainConfig model settings that fit the authors' checkpoint ``weights`` (tap3d names):
    their Photograph module (``query`` ``tap``, no extra LayerNorms, no q/k/v bias,
    ``channels_per_head`` heads of as many channels), widths from the tensors' shapes."""
    state = weights.state_dict
    inner = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    kwargs = _backbone_kwargs(weights.backbone, inner, weights.path)
    inner_width = state["photograph.blocks.0.self_attention.to_q.weight"].shape[0]
    heads = math.isqrt(inner_width)
    return {"backbone": weights.backbone, "embed_dim": kwargs["embed_dim"],
            "photograph_dim": int(state["photograph.memory.2.weight"].shape[0]),
            "photograph_depth": _count(state, r"photograph\.blocks\.(\d+)\."),
            "photograph_heads": heads, "photograph_head_dim": inner_width // heads,
            "photograph_qkv_bias": False,
            "photograph_memory_hidden": int(state["photograph.memory.0.weight"].shape[0]),
            "photograph_memory_norm": False, "photograph_output_norm": False, "query": "tap",
            "generator_factor": 32}


@dataclass
class LoadReport:
    """What :func:`load_pretrained_backbone` did.

    Attributes:
        path: the checkpoint.
        loaded: backbone entries copied from it.
        skipped: entry -> why it was not (``shape (64, 4, 1) in the checkpoint, (64, 6, 1) here``,
            ``not in the checkpoint``, ``in the checkpoint only``).
    """

    path: str
    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def format(self) -> str:
        """Lines for the log: the count loaded, then every entry skipped and why."""
        lines = [f"{self.path}: {len(self.loaded)} backbone entries loaded, "
                 f"{len(self.skipped)} not:"]
        lines += [f"  {name}: {why}" for name, why in sorted(self.skipped.items())]
        return "\n".join(lines)


def load_pretrained_backbone(model: PartSegmenter, path: str, backbone: str | None = None, *,
                             trust: bool = False) -> LoadReport:
    """Copy a pre-trained backbone into ``model.backbone``, every tensor that fits, and report
    by name every one that does not and why; nothing is skipped silently.

    The TAP authors do the same for ShapeNetPart: the backbone pre-trained on xyz + height (4
    channels) meets a 6-channel embedding, they skip ``embedding.net.0.weight`` (here
    ``embedding.0.weight``) and load the rest with ``strict=False``
    (``examples/shapenetpart/main.py``). Reads any source :func:`tap3d.train.weights.
    load_backbone_weights` reads (run folder, tap3d backbone file, the authors' checkpoint).

    Args:
        model: the segmenter whose backbone is filled.
        path: the checkpoint.
        backbone: registry name the checkpoint must hold (None: whatever it holds).
        trust: read a checkpoint that names types beyond tensors and numpy values with the
            full unpickler, which runs any code it holds
            (:func:`tap3d.train.torchfile.load_torch_file`).

    Returns:
        What was loaded and what was skipped, and why.

    Raises:
        CheckpointError: without ``trust``, the checkpoint names other types.
        WeightsError: the checkpoint cannot be read (names the file).
    """
    weights = load_backbone_weights(path, backbone, trust=trust)
    ours = model.backbone.state_dict()
    report = LoadReport(str(path))

    def name(key):
        if weights.backbone != "pointmlp":
            return key
        try:
            value = ours[key] if key in ours else weights.state_dict[key]
            return f"{key} (openpoints {next(iter(to_openpoints({key: value})))})"
        except ValueError:
            return key

    fitting = {}
    for key, value in weights.state_dict.items():
        if key not in ours:
            report.skipped[name(key)] = "in the checkpoint only"
        elif tuple(value.shape) != tuple(ours[key].shape):
            report.skipped[name(key)] = (f"shape {tuple(value.shape)} in the checkpoint, "
                                         f"{tuple(ours[key].shape)} here")
        else:
            fitting[key] = value
    for key in ours:
        if key not in weights.state_dict:
            report.skipped[name(key)] = "not in the checkpoint"
    model.backbone.load_state_dict(fitting, strict=False)
    report.loaded = sorted(fitting)
    return report
