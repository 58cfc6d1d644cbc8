"""Reading pickles of numpy arrays without running code: the one restricted unpickler of tap3d.

The field ships some downstream files as Python pickles: Point-BERT's, Point-MAE's and
PointMLP's preprocessed ModelNet40 (``modelnet40_{train,test}_{1024,8192}pts_fps.dat``) and
Point-BERT's few-shot folds (``ModelNetFewshot/<N>way_<K>shot/<fold>.pkl``). ``pickle.load``
on such a file imports and calls whatever globals the file names (``os.system``, ``eval``, ...):
reading a downloaded file would run its code. :func:`load_numpy_pickle` reads them with a
:class:`pickle.Unpickler` whose ``find_class`` returns only the numpy functions that rebuild
arrays and scalars (:data:`ALLOWED_GLOBALS`) and refuses every other global before anything is
called, so a pickle can only produce containers (lists, tuples, dicts), numbers, strings, bytes
and numpy arrays / scalars.
"""

from __future__ import annotations

import importlib
import os
import pickle

import numpy as np

__all__ = ["ALLOWED_GLOBALS", "UnsafePickleError", "NumpyUnpickler", "load_numpy_pickle"]

#: ``(module, name)`` globals a numpy pickle needs, and nothing else: ``_reconstruct`` with
#: ``ndarray`` and ``dtype`` rebuild an array (protocols 2-4), ``_frombuffer`` one pickled with
#: protocol 5, ``scalar`` a numpy scalar (``np.int32(3)``); ``numpy.core`` is numpy 1's name of
#: ``numpy._core`` (files written with numpy 1 name it). ``_codecs.encode`` turns a str into
#: bytes: protocol 2 stores an array's bytes that way (it only encodes text).
ALLOWED_GLOBALS = frozenset({
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
})


class UnsafePickleError(ValueError):
    """A pickle that names a global outside :data:`ALLOWED_GLOBALS` (the message names the file
    and the global), or that is not a readable pickle."""


class NumpyUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that resolves only :data:`ALLOWED_GLOBALS`.

    Args:
        file: a binary file object.
        name: the file's name, for the error message.
    """

    def __init__(self, file, name: str = "<pickle>"):
        super().__init__(file, encoding="latin1")  # latin1: arrays pickled by Python 2
        self.name = name

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"{self.name}: refused to load the global {module}.{name}: only numpy arrays and "
                "scalars are read from pickles (a pickle that names other globals can run code "
                "when it is loaded)")
        if module.startswith("numpy.core.") and int(np.__version__.split(".")[0]) >= 2:
            module = "numpy._core." + module[len("numpy.core."):]  # no deprecation warning
        elif module.startswith("numpy._core.") and int(np.__version__.split(".")[0]) < 2:
            module = "numpy.core." + module[len("numpy._core."):]
        return getattr(importlib.import_module(module), name)


def load_numpy_pickle(path: str | os.PathLike):
    """Load a pickle of numpy arrays without running code.

    Args:
        path: the pickle file, e.g. ``modelnet40_train_8192pts_fps.dat`` (a pickle of
            ``[list_of_points, list_of_labels]``, Point-BERT / PointMLP / Point-MAE) or a
            few-shot fold ``0.pkl`` (``{"train": [(points, label, class), ...], "test": ...}``,
            Point-BERT).

    Returns:
        The unpickled object: containers, numbers, strings and numpy arrays / scalars only.

    Raises:
        UnsafePickleError: the file names any global outside :data:`ALLOWED_GLOBALS` (file and
            global named; nothing it names is imported or called), or it is truncated or not a
            pickle.
        FileNotFoundError: no such file.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        try:
            return NumpyUnpickler(f, path).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                IndexError, KeyError, MemoryError) as error:
            raise UnsafePickleError(f"{path}: not a readable pickle of numpy arrays "
                                    f"({type(error).__name__}: {error})") from None
