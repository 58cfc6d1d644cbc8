"""Backbone weights from tap3d runs, tap3d backbone files and the TAP authors' checkpoints.

Three sources, one loader (:func:`load_backbone_weights`):

- a tap3d run folder (``tap-cli train`` or ``tap-cli finetune``; ``checkpoints/last.pt``) or
  one of its checkpoint files: the ``backbone.*`` entries of ``model``;
- a tap3d backbone file (``tap-cli export-backbone --format tap3d``):
  ``{"backbone", "state_dict", "config", "step"}``;
- a checkpoint of the authors' code (openpoints): a dict with ``model``, or ``state_dict``, or a
  bare state dict; ``module.`` (DistributedDataParallel) and ``encoder.`` (``BaseCls`` /
  ``ViewGenBase``) prefixes; PointMLP entries named as in their ``PointMLPEncoder``
  (``embedding.net.0.weight``, ``local_grouper_list.0.affine_alpha``,
  ``pre_blocks_list.0.transfer.net.0.weight``, ``pre_blocks_list.0.operation.1.net2.1.bias``,
  ``pos_blocks_list.3.operation.0.net1.0.weight``, ...).

Where a checkpoint holds a whole model, the other modules (TAP's Photograph module and
generator, the authors' ``generator``/``decoder``, a classification head) are left out and
listed in ``dropped``. Every remaining entry must be a backbone entry of the right shape: a key
that matches nothing is an error listing it (openpoints loads with ``strict=False`` and skips
such keys silently).
"""

from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass, field

import torch

from tap3d.models.backbones import Backbone, make_backbone

__all__ = ["BackboneWeights", "WeightsError", "to_openpoints", "from_openpoints",
           "load_backbone_weights", "export_backbone"]


class WeightsError(ValueError):
    """Backbone weights that cannot be read or do not fit the backbone; names the file."""


def _pairs() -> list[tuple[str, str]]:
    """(tap3d, openpoints) name templates of PointMLP; ``{i}`` stage, ``{j}`` block,
    ``{rest}`` the parameter or buffer (``weight``, ``running_mean``, ...)."""
    pairs = [("embedding.0.{rest}", "embedding.net.0.{rest}"),
             ("embedding.1.{rest}", "embedding.net.1.{rest}"),
             ("stages.{i}.alpha", "local_grouper_list.{i}.affine_alpha"),
             ("stages.{i}.beta", "local_grouper_list.{i}.affine_beta"),
             ("stages.{i}.transfer.0.{rest}", "pre_blocks_list.{i}.transfer.net.0.{rest}"),
             ("stages.{i}.transfer.1.{rest}", "pre_blocks_list.{i}.transfer.net.1.{rest}")]
    # tap3d's residual block is one Sequential (conv, BN, ReLU, conv, BN); theirs is net1
    # (conv, BN, ReLU) and net2 (conv, BN)
    for ours, theirs in (("pre", "pre_blocks_list"), ("pos", "pos_blocks_list")):
        for layer, their_layer in (("0", "net1.0"), ("1", "net1.1"), ("3", "net2.0"),
                                   ("4", "net2.1")):
            pairs.append((f"stages.{{i}}.{ours}.{{j}}.net.{layer}.{{rest}}",
                          f"{theirs}.{{i}}.operation.{{j}}.{their_layer}.{{rest}}"))
    return pairs


def _regex(template: str) -> re.Pattern:
    pattern = re.escape(template)
    for name, group in (("i", r"\d+"), ("j", r"\d+"), ("rest", r"[A-Za-z_]+")):
        pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>{group})")
    return re.compile(pattern)


_RULES = [(_regex(a), a, _regex(b), b) for a, b in _pairs()]
_OPENPOINTS_ROOTS = ("embedding.net.", "local_grouper_list.", "pre_blocks_list.",
                     "pos_blocks_list.")


def _rename(state: dict, to_openpoints: bool) -> dict:
    out, unknown = {}, []
    for key, value in state.items():
        for ours, our_template, theirs, their_template in _RULES:
            match = (ours if to_openpoints else theirs).fullmatch(key)
            if match:
                out[(their_template if to_openpoints else our_template).format(
                    **match.groupdict())] = value
                break
        else:
            unknown.append(key)
    if unknown:
        naming = "tap3d" if to_openpoints else "openpoints"
        raise WeightsError(f"{len(unknown)} keys are not PointMLP entries in {naming} naming: "
                           f"{', '.join(unknown)}")
    return out


def to_openpoints(state: dict) -> dict:
    """tap3d PointMLP state dict -> the authors' ``PointMLPEncoder`` names (same tensors).

    Raises:
        WeightsError: keys that are not PointMLP entries (all listed).
    """
    return _rename(state, to_openpoints=True)


def from_openpoints(state: dict) -> dict:
    """The authors' ``PointMLPEncoder`` state dict -> tap3d PointMLP names (same tensors).

    Raises:
        WeightsError: keys that are not ``PointMLPEncoder`` entries (all listed).
    """
    return _rename(state, to_openpoints=False)


@dataclass
class BackboneWeights:
    """A backbone's weights in tap3d naming, with what is needed to build it.

    Attributes:
        backbone: registry name (:data:`tap3d.models.BACKBONES`).
        state_dict: tap3d names -> tensors.
        kwargs: constructor arguments (``embed_dim``, ...) that fit the tensors.
        path: the source.
        origin: ``tap3d run``, ``tap3d backbone`` or ``openpoints``.
        step: training step of the checkpoint, when known.
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
        expected = model.state_dict()
        unexpected = sorted(set(self.state_dict) - set(expected))
        missing = sorted(set(expected) - set(self.state_dict))
        shapes = [f"{k} {tuple(self.state_dict[k].shape)} vs {tuple(v.shape)}"
                  for k, v in expected.items()
                  if k in self.state_dict and self.state_dict[k].shape != v.shape]
        problems = [f"unknown keys: {', '.join(unexpected)}" if unexpected else "",
                    f"missing keys: {', '.join(missing)}" if missing else "",
                    f"shapes (checkpoint vs {self.backbone}): {'; '.join(shapes)}" if shapes
                    else ""]
        if any(problems):
            raise WeightsError(f"{self.path}: does not fit {self.backbone} {self.kwargs}: " +
                               "; ".join(p for p in problems if p))
        model.load_state_dict(self.state_dict, strict=True)
        return model


def _pointmlp_kwargs(state: dict, path: str) -> dict:
    """PointMLP constructor arguments read off the tensors' shapes (k and reducer are not in
    the weights: the defaults)."""
    def count(pattern):
        found = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
        return max(found) + 1 if found else 0

    weight = state.get("embedding.0.weight")
    if weight is None:
        keys = list(state)
        raise WeightsError(f"{path}: no embedding.0.weight, not a PointMLP state dict in tap3d "
                           f"or openpoints naming ({len(keys)} keys: {', '.join(keys[:10])}"
                           f"{', ...' if len(keys) > 10 else ''})")
    return {"in_channels": int(weight.shape[1]), "embed_dim": int(weight.shape[0]),
            "stages": count(r"stages\.(\d+)\."), "pre_blocks": count(r"stages\.0\.pre\.(\d+)\."),
            "pos_blocks": count(r"stages\.0\.pos\.(\d+)\.")}


def _read(path: str) -> tuple[dict, dict]:
    """``(state dict with its prefixes, meta)`` of a run folder or file; ``meta`` has
    ``config`` (dict or None), ``origin``, ``step`` and ``kwargs`` (constructor arguments a
    tap3d backbone file records, or None)."""
    if os.path.isdir(path):
        from tap3d.train.checkpoint import load_checkpoint

        state = load_checkpoint(path)
        return state["model"], {"config": state.get("config"), "origin": "tap3d run",
                                "step": state.get("step"), "kwargs": None}
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: no such file or run folder")
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:  # checkpoints that pickle configs or numpy objects
            obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001 - any failure to read is this file's failure
        raise WeightsError(f"{path}: not a torch checkpoint ({type(error).__name__}: "
                           f"{error})") from None
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: holds a {type(obj).__name__}, not a dict")
    if isinstance(obj.get("state_dict"), dict) and "backbone" in obj:
        config = {**(obj.get("config") or {}), "backbone": obj["backbone"]}
        return obj["state_dict"], {"config": config, "origin": "tap3d backbone",
                                   "step": obj.get("step"), "kwargs": obj.get("backbone_args")}
    for key in ("model", "state_dict"):
        if isinstance(obj.get(key), dict):
            config = obj.get("config") if isinstance(obj.get("config"), dict) else None
            origin = "tap3d run" if config and "backbone" in config else "openpoints"
            return obj[key], {"config": config, "origin": origin, "kwargs": None,
                              "step": obj.get("step", obj.get("epoch"))}
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, {"config": None, "origin": "openpoints", "step": None, "kwargs": None}
    raise WeightsError(f"{path}: no model, state_dict or tensors in the checkpoint "
                       f"(keys: {', '.join(map(str, obj))})")


def load_backbone_weights(path: str | os.PathLike, backbone: str | None = None) -> BackboneWeights:
    """Read a backbone's weights from any of the three sources (module docstring).

    Args:
        path: run folder, checkpoint, tap3d backbone file or the authors' checkpoint.
        backbone: registry name when the source does not say (default ``pointmlp``).

    Returns:
        :class:`BackboneWeights` in tap3d naming (not yet checked against the backbone: call
        :meth:`BackboneWeights.build`).

    Raises:
        WeightsError: unreadable, or keys that match no entry (all listed).
    """
    path = os.fspath(path)
    state, meta = _read(path)
    config, origin = meta["config"], meta["origin"]
    state = {re.sub(r"^(module\.)+", "", k): v for k, v in state.items()}
    dropped: list[str] = []
    for prefix in ("encoder.", "backbone."):
        if any(k.startswith(prefix) for k in state):
            dropped = sorted({k.split(".")[0] for k in state if not k.startswith(prefix)})
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            break
    name = (config or {}).get("backbone") or backbone or "pointmlp"
    if any(k.startswith(_OPENPOINTS_ROOTS) for k in state):
        try:
            state, origin, name = from_openpoints(state), "openpoints", "pointmlp"
        except WeightsError as error:
            raise WeightsError(f"{path}: {error}") from None
    if meta["kwargs"] is not None:
        kwargs = dict(meta["kwargs"])
    elif name == "pointmlp":
        kwargs = _pointmlp_kwargs(state, path)
    else:
        kwargs = {"embed_dim": config["embed_dim"]} if config and "embed_dim" in config else {}
    return BackboneWeights(name, state, kwargs, path, origin, meta["step"], dropped, config)


def export_backbone(source: str | os.PathLike, output: str | os.PathLike,
                    format: str = "tap3d", backbone: str | None = None) -> BackboneWeights:
    """Convert a backbone checkpoint to tap3d or the authors' (openpoints) naming.

    Args:
        source: see :func:`load_backbone_weights`.
        output: ``.pt`` file to write. ``tap3d``: ``{"backbone", "backbone_args", "state_dict",
            "config", "step"}``; ``openpoints``: ``{"model": state dict}``, which the authors'
            ``load_checkpoint(model.encoder, path)`` reads.
        format: ``tap3d`` or ``openpoints`` (PointMLP only).
        backbone: registry name when the source does not say.

    Returns:
        The weights read (checked strictly against the backbone).

    Raises:
        WeightsError: unreadable source, keys that match nothing, shapes that do not fit, or
            ``openpoints`` for a backbone other than PointMLP.
        ValueError: unknown ``format``.
    """
    if format not in ("tap3d", "openpoints"):
        raise ValueError(f"format must be tap3d or openpoints, got {format!r}")
    weights = load_backbone_weights(source, backbone)
    if format == "openpoints" and weights.backbone != "pointmlp":
        raise WeightsError(f"{source}: openpoints naming is known for pointmlp only, not "
                           f"{weights.backbone}")
    weights.build()
    if format == "openpoints":
        torch.save({"model": to_openpoints(weights.state_dict)}, output)
    else:
        torch.save({"backbone": weights.backbone, "backbone_args": weights.kwargs,
                    "state_dict": weights.state_dict,
                    "config": weights.config or {"backbone": weights.backbone},
                    "step": weights.step}, output)
    return weights
