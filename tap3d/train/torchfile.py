"""Checkpoint files read as data: the one ``torch.load`` of tap3d.

Files are data: every ``torch.load`` of tap3d goes through :func:`load_torch_file`, which
unpickles with ``weights_only=True`` and allows, besides what torch allows (tensors, numbers,
strings, containers, ``OrderedDict``), only numpy arrays, dtypes and scalars
(:data:`SAFE_GLOBALS`: the authors' and other code's checkpoints hold numpy numbers). A file that names any other type or function is refused with a
:class:`CheckpointError` that names the file and the global, before anything it names is
called: unpickling it could run code (an object whose ``__reduce__`` returns ``os.system``).
``trust=True`` (``--trust-checkpoint``) reads such a file with the full unpickler.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile

import numpy as np
import torch

__all__ = ["WeightsError", "CheckpointError", "SAFE_GLOBALS", "load_torch_file", "as_data"]


class WeightsError(ValueError):
    """Weights that cannot be read or do not fit the model; names the file."""


class CheckpointError(WeightsError):
    """A file whose pickle names a type or function outside :data:`SAFE_GLOBALS`, or that
    torch's ``weights_only`` unpickler refuses otherwise; one line naming the file, what was
    refused and the opt-in (``--trust-checkpoint``, ``trust=True``)."""


def _numpy_globals() -> list:
    """What unpickles numpy arrays, dtypes and scalars: ``_reconstruct`` with ``ndarray`` and
    ``dtype`` (arrays), ``scalar`` (``np.float64(0.5)``), each dtype's class (a dtype's state
    is set on an instance of it); the functions also under numpy 1's module name
    ``numpy.core.multiarray`` (files written with numpy 1 name it, numpy 2 ``numpy._core``).
    Not the object, void (structured) or datetime dtypes."""
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    found = [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        found += [(multiarray._reconstruct, f"{module}._reconstruct"),
                  (multiarray.scalar, f"{module}.scalar")]
    dtypes = {type(np.dtype(code)) for code in "?bhilqpBHILQPefdgFDGUS"}
    return found + sorted(dtypes, key=lambda t: t.__name__)


#: The globals a checkpoint may name beyond torch's ``weights_only`` allowlist (tensors,
#: numbers, strings, containers, ``OrderedDict``, ``torch.Size``, dtypes): numpy arrays,
#: dtypes and scalars only (:func:`_numpy_globals`), as the authors' and other code's
#: checkpoints hold numpy numbers.
SAFE_GLOBALS = _numpy_globals()


def _refused(error: Exception) -> str:
    """What torch's ``weights_only`` unpickler refused, read off its message: the global
    (``posix.system``; torch leaves ``builtins.`` off, put back here) or type it names, else
    its own words (``Unsupported operand 149``)."""
    text = str(error)
    if match := re.search(r"GLOBAL (\S+)", text):
        name = match.group(1)
        return name if "." in name else f"builtins.{name}"
    for pattern in (r"but got <class '([^']+)'>", r"unrecognized function (.+?)(?: which |$)"):
        if match := re.search(pattern, text, re.MULTILINE):
            return match.group(1)
    words = text.split("WeightsUnpickler error:")[-1]
    lines = [line.strip() for line in words.splitlines() if line.strip()
             and not line.startswith("Check the documentation")]
    words = lines[0] if lines else type(error).__name__
    if words.startswith("Unsupported operand"):  # FRAME, STACK_GLOBAL, ...: protocol 4 on
        words += " (a pickle opcode torch's weights-only unpickler does not read)"
    return words


#: How a file of ``torch.save``'s format before 1.6 begins: the pickled magic number.
_LEGACY_MAGIC = b"\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def _is_torch_file(path: str) -> bool:
    """Whether ``path`` is in a format of ``torch.save`` (a zip archive, or the older format
    that begins with its magic number): a refusal is then the contents', not the format's."""
    with open(path, "rb") as f:
        head = f.read(16)
    return _LEGACY_MAGIC in head or zipfile.is_zipfile(path)


def load_torch_file(path: str | os.PathLike, map_location="cpu", *, trust: bool = False):
    """What a ``.pt``/``.pth`` file holds, read as data: the one ``torch.load`` of tap3d.

    Without ``trust`` the file is unpickled with ``weights_only=True`` and :data:`SAFE_GLOBALS`
    (numpy arrays, dtypes and scalars) added to torch's allowlist for this call only: tensors,
    numbers, strings, containers and numpy values load; a file that names any other type or
    function is refused before anything it names is imported or called. tap3d's checkpoints
    and run folders and the TAP authors' checkpoints load this way.

    Args:
        path: the file.
        map_location: as ``torch.load`` (where the tensors go).
        trust: read a file you trust with the full unpickler (``weights_only=False``):
            whatever objects it holds are rebuilt, and a malicious file runs its code. This is
            the one place tap3d does so (``--trust-checkpoint`` on the commands).

    Returns:
        The unpickled object (for checkpoints, a dict).

    Raises:
        CheckpointError: without ``trust``, the file names a global outside the allowlist
            (file and global named, with the opt-in).
        WeightsError: the file cannot be read as a torch file (truncated, not one).
        FileNotFoundError: no such file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        if trust:  # deliberate opt-in: the caller vouches for the file, which may run code
            return torch.load(path, map_location=map_location, weights_only=False)
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if not trust and _is_torch_file(path):
            raise CheckpointError(
                f"{path}: refused to load {_refused(error)}: checkpoints are read as data "
                "(tensors, numbers, strings, containers, numpy arrays), and loading this could "
                "run code; if you trust the file, pass --trust-checkpoint (trust=True)") from None
        raise WeightsError(f"{path}: not a torch checkpoint ({_refused(error)})") from None
    except Exception as error:  # noqa: BLE001 - any failure to read is this file's failure
        raise WeightsError(f"{path}: not a torch checkpoint ({type(error).__name__}: "
                           f"{error})") from None


def as_data(value):
    """``value`` as data that :func:`load_torch_file` reads without ``trust``: tensors, numbers,
    strings, bytes, None, numpy values and containers of them stay; any other object (which a
    trusted file may hold) becomes its ``repr``. What tap3d writes stays data."""
    if type(value) in (bool, int, float, complex, str, bytes, type(None), torch.Tensor):
        return value
    if isinstance(value, torch.Tensor):
        return value.as_subclass(torch.Tensor)
    if isinstance(value, np.ndarray) and value.dtype.kind not in "OVMm" or \
            isinstance(value, np.generic) and value.dtype.kind not in "OVMm":
        return value
    if isinstance(value, dict):
        return {as_data(k): as_data(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(as_data(v) for v in value)
    return repr(value)
