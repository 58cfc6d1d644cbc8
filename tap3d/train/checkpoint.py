"""Checkpoints of a training run (:mod:`tap3d.train.engine`): one dict (after nanoGPT),
written atomically.

A checkpoint holds ``model``, ``optimizer``, ``scheduler`` (state dicts), ``step`` (optimizer
steps done), ``epoch`` and ``batch_in_epoch`` (where the next step starts), ``rng`` (Python,
NumPy, torch and CUDA generator states: one dict from a single process, a list of every rank's
under torchrun), ``config`` (the task's settings as a dict), ``task`` (the task's own progress,
e.g. fine-tuning's best scores), ``format`` (:data:`CHECKPOINT_FORMAT`) and ``version``
(:data:`CHECKPOINT_VERSION`), and what the task adds: ``model_args`` (pre-training: the
:class:`~tap3d.models.TAPModelConfig` the model is rebuilt from), ``classes`` (fine-tuning).
``RUN/checkpoints/`` holds ``step_N.pt``, ``last.pt`` (a hard link to the newest) and, for the
downstream tasks, ``best.pt``.

Checkpoints of other versions (tap3d 0.1.0's development versions wrote none) are refused with
a :class:`~tap3d.train.torchfile.WeightsError` naming the version found and the one read.

Checkpoints are read as data (:func:`tap3d.train.torchfile.load_torch_file`): a checkpoint
holds tensors, numbers, strings and containers only, so it loads with ``weights_only=True``;
one that names other types is refused unless ``trust``.
"""

from __future__ import annotations

import os
import random
import shutil

import numpy as np
import torch

from tap3d.train import distributed
from tap3d.train.torchfile import WeightsError, load_torch_file

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "rng_state", "set_rng_state",
           "gather_rng_states", "restore_rng_state", "stamped", "check_version",
           "save_checkpoint", "checkpoint_path", "load_checkpoint"]

#: ``format`` of tap3d's training checkpoints (``last.pt``, ``step_N.pt``, ``best.pt``).
CHECKPOINT_FORMAT = "tap3d.checkpoint"
#: The one ``version`` of them this tap3d writes and reads.
CHECKPOINT_VERSION = 1


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
    """Restore what :func:`rng_state` returned.

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
    a single process writes it, restores on every rank)."""
    set_rng_state(states[rank] if isinstance(states, list) else states)


def stamped(state: dict) -> dict:
    """``state`` with this tap3d's checkpoint ``format`` and ``version``."""
    return {**state, "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION}


def check_version(state: dict, path: str) -> dict:
    """``state``, a checkpoint dict read from ``path``, when it is of :data:`CHECKPOINT_VERSION`.

    Raises:
        WeightsError: another version, or none (written by a development version of tap3d
            0.1.0); the message names the file and both versions.
    """
    if state.get("format") == CHECKPOINT_FORMAT and state.get("version") == CHECKPOINT_VERSION:
        return state
    found = state.get("version") if state.get("format") == CHECKPOINT_FORMAT else \
        "none (a development version of tap3d 0.1.0 wrote it)"
    raise WeightsError(f"{path}: tap3d checkpoint version {found}; this tap3d reads version "
                       f"{CHECKPOINT_VERSION} only: train the run again")


def save_checkpoint(folder: str, state: dict) -> str:
    """Write ``state`` (:func:`stamped` with the format and version) to
    ``folder/step_{state['step']}.pt`` and point ``last.pt`` at it.

    Serialized once, renamed into place (:func:`tap3d.train.distributed.atomic_save`: a reader
    never sees half a file); ``last.pt`` is a hard link (a copy where the file system has
    none), swapped in atomically. The caller is the main process.

    Returns:
        The path of ``step_N.pt``.
    """
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"step_{state['step']}.pt")
    distributed.atomic_save(stamped(state), path)
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
        WeightsError: the file cannot be read, or is a checkpoint of another version than
            :data:`CHECKPOINT_VERSION` (:func:`check_version`).
    """
    path = checkpoint_path(run_or_checkpoint)
    return check_version(load_torch_file(path, device, trust=trust), path)
