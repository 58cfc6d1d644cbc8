"""Backbone weights (:mod:`tap3d.train.weights`): one loader for fine-tuning, the probe and
``tap-cli export-backbone``, in tap3d's naming and the authors' (openpoints)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from tap3d.models.backbones import REGISTRY, Backbone, make_backbone
from tap3d.models.openpoints import (NamingError, backbone_from_openpoints, backbone_to_openpoints,
                                     identify_backbone)
from tap3d.train.torchfile import WeightsError, as_data
from tap3d.train.weights.files import (BACKBONE_FORMAT, BACKBONE_VERSION, load_strictly,
                                       named_state, read_weights)

__all__ = ["BACKBONE_FORMAT", "EXPORT_FORMATS", "to_openpoints", "from_openpoints",
           "BackboneWeights", "backbone_kwargs", "load_backbone_weights", "load_backbone",
           "export_backbone"]


#: The namings :func:`export_backbone` writes: tap3d's, or the TAP authors' (openpoints).
EXPORT_FORMATS = ("tap3d", "openpoints")


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
        load_strictly(model, self.state_dict, f"{self.path}: does not fit {self.backbone} "
                                               f"{self.kwargs}")
        return model


def backbone_kwargs(name: str, state: dict, path: str) -> dict:
    """Constructor arguments read off the tensors of a tap3d state dict of backbone ``name``
    (its registry entry's ``kwargs_from_state``). What the weights do not hold (neighbours,
    radii, group counts, drop-path rate) keeps the defaults, which are the authors' configs.

    Raises:
        WeightsError: the state dict lacks a tensor the backbone has (names ``path``).
    """
    try:
        return REGISTRY[name].kwargs_from_state(state)
    except KeyError as error:
        raise WeightsError(f"{path}: no {error.args[0]}, not a {name} state dict") from None


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
        found = named_state(inner)
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
    state, meta = read_weights(path, trust)
    name, state, naming, dropped = _backbone_part(state, meta, path)
    if backbone and backbone != name:
        raise WeightsError(f"{path}: holds a {name} backbone, not {backbone}")
    origin = "openpoints" if naming == "openpoints" else meta["origin"]
    kwargs = dict(meta["kwargs"]) if meta["kwargs"] is not None else \
        backbone_kwargs(name, state, path)
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
    if format not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    model, weights = load_backbone(source, expect=backbone, trust=trust)
    weights.state_dict = model.state_dict()
    if format == "openpoints":
        torch.save({"model": to_openpoints(weights.state_dict, weights.backbone)}, output)
    else:
        torch.save({"format": BACKBONE_FORMAT, "version": BACKBONE_VERSION,
                    "backbone": weights.backbone, "backbone_args": as_data(weights.kwargs), "state_dict": weights.state_dict,
                    "config": as_data(weights.config or {"backbone": weights.backbone}),
                    "step": as_data(weights.step)}, output)
    return weights
