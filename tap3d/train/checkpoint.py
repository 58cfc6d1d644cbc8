"""Checkpoints of a training run (:mod:`tap3d.train.engine`): one dict (after nanoGPT),
written atomically.

A checkpoint holds ``model``, ``optimizer``, ``scheduler`` (state dicts), ``step`` (optimizer
steps done), ``epoch`` and ``batch_in_epoch`` (where the next step starts), ``rng`` (Python,
NumPy, torch and CUDA generator states: one dict from a single process, a list of every rank's
under torchrun), ``config`` (the task's settings as a dict), ``task`` (the task's own progress,
e.g. fine-tuning's best scores) and what the task adds: ``image_size`` and ``projection``
(pre-training; ``projection`` is the dataset's, absent before orthographic datasets:
perspective), ``classes`` (fine-tuning). ``RUN/checkpoints/`` holds ``step_N.pt`` and
``last.pt`` (a hard link to the newest).

Older checkpoints still load: pre-training ones hold rank 0's ``rng`` dict and no ``task``;
fine-tuning ones keep their progress (with ``batch_in_epoch``) under ``progress``; their NumPy
state is ``np.random.get_state()``'s tuple with its key as an array (new ones: a list of ints).

Checkpoints are read as data (:func:`tap3d.train.torchfile.load_torch_file`): a checkpoint
holds tensors, numbers, strings and containers only, so it loads with ``weights_only=True``;
one that names other types is refused unless ``trust``.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil

import numpy as np
import torch

from tap3d.train import distributed
from tap3d.train.torchfile import load_torch_file
from tap3d.train.config import TrainConfig

__all__ = ["rng_state", "set_rng_state", "gather_rng_states", "restore_rng_state",
           "save_checkpoint", "checkpoint_path", "load_checkpoint",
           "config_from_dict", "LEGACY_DEFAULTS"]


def rng_state() -> dict:
    """The Python, NumPy, torch and CUDA generator states of this process, in plain types and
    tensors (a checkpoint of them needs no numpy globals to load).

    Returns:
        ``{"python": random.getstate(), "numpy": (name, key as a list of ints, pos,
        has_gauss, gauss), "torch": tensor, "cuda": [tensor per device]}``.
    """
    name, key, pos, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": (name, key.tolist(), int(pos), int(has_gauss), float(gauss)),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned, or the form older checkpoints hold (the NumPy
    state as ``np.random.get_state()`` returns it, its key an array).

    Args:
        state: ``{"python", "numpy", "torch", "cuda"}``.
    """
    random.setstate(state["python"])
    name, key, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def gather_rng_states(process) -> dict | list[dict]:
    """This process's :func:`rng_state`, or every rank's (a list indexed by rank) under torchrun.

    A collective under torchrun: every rank calls it at the same step.
    """
    state = rng_state()
    return state if process.world == 1 else distributed.all_gather(state, process)


def restore_rng_state(states: dict | list[dict], rank: int) -> None:
    """Restore this rank's entry of what :func:`gather_rng_states` returned (a single dict, as
    single-process runs and older pre-training checkpoints hold it, restores on every rank)."""
    set_rng_state(states[rank] if isinstance(states, list) else states)


def save_checkpoint(folder: str, state: dict) -> str:
    """Write ``state`` to ``folder/step_{state['step']}.pt`` and point ``last.pt`` at it.

    Serialized once, renamed into place (:func:`tap3d.train.distributed.atomic_save`: a reader
    never sees half a file); ``last.pt`` is a hard link (a copy where the file system has
    none), swapped in atomically. The caller is the main process.

    Returns:
        The path of ``step_N.pt``.
    """
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"step_{state['step']}.pt")
    distributed.atomic_save(state, path)
    last = os.path.join(folder, "last.pt")
    if os.path.exists(last + ".tmp"):
        os.remove(last + ".tmp")
    try:
        os.link(path, last + ".tmp")
    except OSError:
        shutil.copyfile(path, last + ".tmp")
    os.replace(last + ".tmp", last)
    return path


def checkpoint_path(run_or_checkpoint: str) -> str:
    """The checkpoint file of a run folder (``checkpoints/last.pt``) or the file itself.

    Raises:
        FileNotFoundError: no checkpoint there.
    """
    path = os.fspath(run_or_checkpoint)
    if os.path.isdir(path):
        path = os.path.join(path, "checkpoints", "last.pt")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no checkpoint")
    return path


def load_checkpoint(run_or_checkpoint: str, device="cpu", *, trust: bool = False) -> dict:
    """The checkpoint dict of a run folder or checkpoint file (see :func:`checkpoint_path`),
    read as data (:func:`tap3d.train.torchfile.load_torch_file`).

    Args:
        run_or_checkpoint: a run folder (its ``checkpoints/last.pt``) or a checkpoint file.
        device: where the tensors go.
        trust: read a file that names other types than tensors and numpy values with the full
            unpickler, which runs any code it holds (``--trust-checkpoint``).

    Returns:
        The checkpoint dict.

    Raises:
        FileNotFoundError: no checkpoint there.
        CheckpointError: without ``trust``, the file names a type beyond tensors and numpy
            values (file and type named).
        WeightsError: the file cannot be read.
    """
    return load_torch_file(checkpoint_path(run_or_checkpoint), device, trust=trust)


#: Settings whose default changed when they were added: the value that checkpoints written
#: before then were trained with (``ray_frequencies``: raw rays before the encoding existed).
LEGACY_DEFAULTS = {"ray_frequencies": 0}


def config_from_dict(values: dict) -> TrainConfig:
    """The :class:`TrainConfig` a checkpoint's ``config`` dict records: settings it predates
    take :data:`LEGACY_DEFAULTS` (what it was trained with), unknown keys are ignored."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{**LEGACY_DEFAULTS, **{k: v for k, v in values.items() if k in known}})
