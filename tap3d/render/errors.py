"""The error of a mesh that cannot be loaded, validated or rendered: one type for every reader
(OBJ, glTF, trimesh's formats) and every check, so that a build records it as the object's
failure."""

from __future__ import annotations

import os

__all__ = ["MeshError"]


class MeshError(Exception):
    """A mesh file that cannot be loaded, validated or rendered.

    ``str(error)`` is ``"<path>: <reason>"``, the text recorded in the dataset's ``error`` array.
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
