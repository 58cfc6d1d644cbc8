"""The errors of point-cloud data that is not rendered: one per kind of set, each a
``ValueError`` whose message names the file and what is wrong."""

from __future__ import annotations

__all__ = ["LabelledDataError", "PartDataError"]


class LabelledDataError(ValueError):
    """A path that is not a readable labelled point-cloud dataset; the message names the path
    and what is missing."""


class PartDataError(ValueError):
    """A path that is not a readable part-labelled dataset; the message names the file (and the
    line, for a point file) and the reason."""
