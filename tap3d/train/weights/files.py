"""Reading weights files: the dict a ``.pt``/``.pth`` file holds (as data, through
:func:`tap3d.train.torchfile.load_torch_file`), its wrappers unwrapped, which naming its
backbone entries use, and strict loading into a module."""

from __future__ import annotations

import os
import re

import torch

from tap3d.models.openpoints import NamingError, identify_backbone
from tap3d.train.checkpoint import CHECKPOINT_FORMAT, check_version, load_checkpoint
from tap3d.train.torchfile import WeightsError, load_torch_file

__all__ = ["BACKBONE_FORMAT", "BACKBONE_VERSION", "load_strictly", "torch_dict", "WRAPPERS",
           "read_weights", "named_state"]


def load_strictly(model: torch.nn.Module, state: dict, what: str) -> None:
    """``model.load_state_dict(state)`` with every unknown key, missing key and shape listed
    in one :class:`WeightsError`."""
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


def torch_dict(path: str, trust: bool = False) -> dict:
    """The dict a ``.pt``/``.pth`` file holds (:func:`load_torch_file`)."""
    obj = load_torch_file(path, trust=trust)
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: holds a {type(obj).__name__}, not a dict")
    return obj


#: ``format`` and ``version`` of a tap3d backbone file (:func:`tap3d.train.weights.
#: export_backbone`).
BACKBONE_FORMAT = "tap3d.backbone"
BACKBONE_VERSION = 1

#: What the authors' ``load_checkpoint`` unwraps (``openpoints/utils/ckpt_util.py``).
WRAPPERS = ("model", "net", "network", "state_dict", "base_model")


def read_weights(path: str, trust: bool = False) -> tuple[dict, dict]:
    """``(state dict with its prefixes, module. removed; meta)`` of a run folder or file;
    ``meta``: ``config`` (dict or None), ``origin``, ``step``, ``kwargs`` (constructor
    arguments a tap3d backbone file records, or None), ``model_args`` (what a tap3d
    pre-training checkpoint records, or None). ``trust``: :func:`load_torch_file`'s.

    Raises:
        WeightsError: unreadable; a tap3d checkpoint or backbone file of another version than
            this tap3d's (the message names both); no tensors.
    """
    meta = {"config": None, "origin": "openpoints", "step": None, "kwargs": None,
            "model_args": None}
    if os.path.isdir(path):
        try:
            obj = load_checkpoint(path, trust=trust)
        except FileNotFoundError as error:
            raise WeightsError(str(error)) from None
    elif os.path.isfile(path):
        obj = torch_dict(path, trust)
    else:
        raise WeightsError(f"{path}: no such file or run folder")
    if isinstance(obj.get("state_dict"), dict) and "backbone" in obj:  # tap3d backbone file
        if (obj.get("format"), obj.get("version")) != (BACKBONE_FORMAT, BACKBONE_VERSION):
            found = obj.get("version") if obj.get("format") == BACKBONE_FORMAT else \
                "none (a development version of tap3d 0.1.0 wrote it)"
            raise WeightsError(f"{path}: tap3d backbone file version {found}; this tap3d reads "
                               f"version {BACKBONE_VERSION} only: export it again")
        meta.update(config={**(obj.get("config") or {}), "backbone": obj["backbone"]},
                    origin="tap3d backbone", step=obj.get("step"), kwargs=obj.get("backbone_args"))
        state = obj["state_dict"]
    else:
        config = obj.get("config") if isinstance(obj.get("config"), dict) else None
        tap3d_run = obj.get("format") == CHECKPOINT_FORMAT or bool(config and "backbone" in config)
        if tap3d_run:
            check_version(obj, path)
        meta.update(config=config, step=obj.get("step", obj.get("epoch")),
                    model_args=obj.get("model_args"),
                    origin="tap3d run" if tap3d_run else "openpoints")
        state = obj
        while (key := next((k for k in WRAPPERS if isinstance(state.get(k), dict)), None)):
            state = state[key]
        if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise WeightsError(f"{path}: no model, state_dict or tensors in the checkpoint "
                               f"(keys: {', '.join(map(str, obj))})")
    return {re.sub(r"^(module\.)+", "", k): v for k, v in state.items()}, meta


def named_state(state: dict) -> tuple[str, str] | None:
    """``(backbone, naming)`` when every key of ``state`` is one backbone's, else None."""
    for naming in ("tap3d", "openpoints"):
        try:
            return identify_backbone(state, naming), naming
        except NamingError:
            continue
    return None
