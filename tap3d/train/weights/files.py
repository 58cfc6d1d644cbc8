"""Reading weights files: the dict a ``.pt``/``.pth`` file holds (as data, through
:func:`tap3d.train.torchfile.load_torch_file`), its wrappers unwrapped, which naming its
backbone entries use, and strict loading into a module."""

from __future__ import annotations

import os
import re

import torch

from tap3d.models.openpoints import NamingError, identify_backbone
from tap3d.train.checkpoint import load_checkpoint
from tap3d.train.torchfile import WeightsError, load_torch_file

__all__ = ["load_strictly", "torch_dict", "WRAPPERS", "read_weights",
           "named_state"]


def load_strictly(model: torch.nn.Module, state: dict, what: str) -> None:
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


def torch_dict(path: str, trust: bool = False) -> dict:
    """The dict a ``.pt``/``.pth`` file holds (:func:`load_torch_file`)."""
    obj = load_torch_file(path, trust=trust)
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: holds a {type(obj).__name__}, not a dict")
    return obj


#: What the authors' ``load_checkpoint`` unwraps (``openpoints/utils/ckpt_util.py``).
WRAPPERS = ("model", "net", "network", "state_dict", "base_model")


def read_weights(path: str, trust: bool = False) -> tuple[dict, dict]:
    """``(state dict with its prefixes, module. removed; meta)`` of a run folder or file;
    ``meta``: ``config`` (dict or None), ``origin``, ``step``, ``kwargs`` (constructor
    arguments a tap3d backbone file records, or None), ``image_size`` and ``projection``
    (tap3d pre-training; ``projection`` absent before orthographic datasets: perspective).
    ``trust``: :func:`load_torch_file`'s."""
    meta = {"config": None, "origin": "openpoints", "step": None, "kwargs": None,
            "image_size": None, "projection": "perspective"}
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
        meta.update(config={**(obj.get("config") or {}), "backbone": obj["backbone"]},
                    origin="tap3d backbone", step=obj.get("step"), kwargs=obj.get("backbone_args"))
        state = obj["state_dict"]
    else:
        config = obj.get("config") if isinstance(obj.get("config"), dict) else None
        meta.update(config=config, step=obj.get("step", obj.get("epoch")),
                    image_size=obj.get("image_size"),
                    projection=obj.get("projection", "perspective"),
                    origin="tap3d run" if config and "backbone" in config else "openpoints")
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
