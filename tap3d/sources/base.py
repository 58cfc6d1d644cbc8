"""What every source shares: the object and source records, the error, the per-category
limit, and the error for an unknown ``--synsets`` name."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from operator import attrgetter

__all__ = ["MESH_SUFFIXES", "ObjectSpec", "Source", "SourceError", "finish", "unknown_category"]

#: File suffixes that a mesh-folder source picks up (and :func:`tap3d.render.meshes.load_mesh`
#: reads: ``.obj`` with tinyobjloader, the others with trimesh).
MESH_SUFFIXES = (".obj", ".off", ".ply", ".stl", ".glb", ".gltf")


class SourceError(Exception):
    """A source that does not exist, cannot be read or holds no meshes."""


@dataclass(frozen=True)
class ObjectSpec:
    """One object to render.

    Attributes:
        object_id: ``<synset>/<model>`` for ShapeNetCore, the uid for Objaverse, the POSIX
            relative path otherwise.
        category: synset id, LVIS category (Objaverse), or the parent folder's name.
        path: absolute path of the mesh file (it may not exist: the build records that).
        split: ``train``/``test`` where the source defines one (ModelNet), else empty.
    """

    object_id: str
    category: str
    path: str
    split: str = ""


@dataclass
class Source:
    """The objects of a source, sorted by ``object_id``.

    Attributes:
        kind: ``shapenet_v2``, ``shapenet_v1``, ``modelnet``, ``objaverse``, ``mesh_folder`` or
            ``pybullet``.
        root: the source root (absolute).
        objects: the objects to render, sorted by ``(category, object_id)``.
        categories: sorted distinct categories; ``label = categories.index(category)``.
        category_names: category -> human-readable name (taxonomy.json's first name for
            ShapeNetCore, the category itself otherwise).
    """

    kind: str
    root: str
    objects: list[ObjectSpec]
    categories: list[str] = field(default_factory=list)
    category_names: dict[str, str] = field(default_factory=dict)

    def label(self, category: str) -> int:
        return self.categories.index(category)


def finish(source: Source, limit) -> Source:
    """Sort, apply the per-category (per category and split, where there are splits) limit and
    fill in the categories and their names."""
    objects = sorted(source.objects, key=attrgetter("category", "object_id"))
    if limit is not None:
        per_group: dict[tuple[str, str], int] = {}
        kept = []
        for obj in objects:
            group = (obj.category, obj.split)
            if per_group.get(group, 0) < limit:
                per_group[group] = per_group.get(group, 0) + 1
                kept.append(obj)
        objects = kept
    source.objects = objects
    source.categories = sorted({obj.category for obj in objects})
    source.category_names = {c: source.category_names.get(c, c) for c in source.categories}
    return source


def unknown_category(item: str, known, what: str) -> SourceError:
    """``--synsets`` names ``item``, which is ``what`` (``"not an LVIS category"``): the error,
    with up to five close matches among ``known``."""
    close = difflib.get_close_matches(item, sorted(set(known)), n=5)
    return SourceError(f"synsets: {item!r} is {what}"
                       + (f" (close matches: {', '.join(close)})" if close else ""))
