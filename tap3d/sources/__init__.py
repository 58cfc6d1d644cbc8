"""Mesh sources: which objects a build renders, with their ids and categories.

Five on-disk layouts are recognised, plus the built-in ``pybullet`` demo source:

- Objaverse 1.0 as the ``objaverse`` package downloads it (:mod:`tap3d.sources.objaverse`):
  ``hf-objaverse-v1/object-paths.json.gz`` and the ``glbs/<000-XXX>/<uid>.glb`` files of the
  subset downloaded, the root being ``hf-objaverse-v1`` or a folder holding it
  (``~/.objaverse``); the object id is the uid, the category its LVIS category
  (``lvis-annotations.json.gz``; the first in sorted order for a uid listed under several), else
  :data:`UNCATEGORIZED`.
- ModelNet10/40 meshes: ``<root>/<class>/{train,test}/<name>.off``; the category is the class
  folder and each object carries its ``split`` (``train``/``test``).
- ShapeNetCore v2: ``<root>/taxonomy.json`` (optional) and
  ``<root>/<synset>/<model>/models/model_normalized.obj`` with its ``.mtl`` and ``../images/``.
- ShapeNetCore v1: ``<root>/<synset>/<model>/model.obj``.
- A mesh folder: every file with a suffix in :data:`MESH_SUFFIXES`, searched
  recursively; the category is the parent folder's name and the object id the relative path
  (Objaverse-XL's local files, mixed formats in plain folders, build as one).

A ShapeNetCore model folder that lacks its OBJ is still listed (with the expected path), so that the
build records it as failed instead of silently dropping it. An object list (``--objects FILE``,
:func:`read_object_ids`) keeps the objects it names, before the per-category limit.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from tap3d.sources.base import MESH_SUFFIXES, ObjectSpec, Source, SourceError, finish
from tap3d.sources.folders import (PYBULLET_DEMO, detect_modelnet, detect_shapenet, mesh_folder,
                                   modelnet, pybullet, shapenet)
from tap3d.sources.objaverse import UNCATEGORIZED, detect_objaverse, objaverse

__all__ = ["MESH_SUFFIXES", "ObjectSpec", "Source", "SourceError", "discover", "PYBULLET_DEMO",
           "UNCATEGORIZED", "read_object_ids"]


def read_object_ids(path: str | os.PathLike) -> list[str]:
    """The object ids of an object list (``--objects``), in order, each once: one per line;
    blank lines and ``#`` comments (from a ``#`` that starts a line or follows a space) are
    skipped.

    Raises:
        SourceError: the file cannot be read or names no object.
    """
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise SourceError(f"{os.fspath(path)}: cannot read the object list ({error})") from None
    ids = [i for i in (re.sub(r"(^|\s)#.*", "", line).strip() for line in lines) if i]
    if not ids:
        raise SourceError(f"{os.fspath(path)}: the object list names no object")
    return list(dict.fromkeys(ids))


def _keep_objects(found: Source, objects, source, synsets) -> None:
    """Keep the objects that ``objects`` (an object list file, or ids) names: an id that
    ``found`` does not have is an error naming the file and the first five such ids."""
    if isinstance(objects, (str, os.PathLike)):
        named, ids = os.fspath(objects), read_object_ids(objects)
    else:
        named, ids = "objects", list(dict.fromkeys(objects))
    have = {o.object_id for o in found.objects}
    missing = [i for i in ids if i not in have]
    if missing:
        where = " (in the categories that --synsets selects)" if synsets else ""
        raise SourceError(f"{named}: {len(missing)} of its {len(ids)} object ids are not in "
                          f"{source}{where}: " + ", ".join(missing[:5])
                          + (", ..." if len(missing) > 5 else ""))
    keep = set(ids)
    found.objects = [o for o in found.objects if o.object_id in keep]


def discover(source: str | os.PathLike, synsets: list[str] | None = None,
             limit: int | None = None,
             objects: str | os.PathLike | Iterable[str] | None = None) -> Source:
    """List the objects of a source.

    Args:
        source: an Objaverse 1.0 folder (``hf-objaverse-v1`` or one holding it), a ShapeNetCore
            v2 or v1 root, a ModelNet10/40 mesh root, a folder of meshes, or ``"pybullet"`` for
            the built-in demo meshes.
        synsets: keep only these categories: synset ids or taxonomy names for ShapeNetCore,
            LVIS names (or ``uncategorized``) for Objaverse, folder names for mesh folders.
        limit: keep at most this many objects per category (the first in sorted order); for
            ModelNet, per category and split.
        objects: keep only these objects: the path of an object list (:func:`read_object_ids`)
            or the object ids themselves; applied before ``limit``.

    Returns:
        A :class:`Source` with at least one object.

    Raises:
        SourceError: the source does not exist, is not a folder, holds no meshes, or lacks
            an object that ``objects`` names; ``synsets`` names an unknown category
            (ShapeNetCore, Objaverse).
    """
    if os.fspath(source) == "pybullet":
        found = pybullet(synsets)
    else:
        root = os.path.abspath(os.fspath(source))
        if not os.path.exists(root):
            raise SourceError(f"{source}: source does not exist")
        if not os.path.isdir(root):
            raise SourceError(f"{source}: source is not a folder")
        base = detect_objaverse(root)
        kind = None if base else detect_shapenet(root)
        if base:
            found = objaverse(base, synsets)
        elif kind:
            found = shapenet(root, kind, synsets)
        elif detect_modelnet(root):
            found = modelnet(root, synsets)
        else:
            found = mesh_folder(root, synsets)
    if objects is not None:
        _keep_objects(found, objects, source, synsets)
    found = finish(found, limit)
    if not found.objects and found.kind == "objaverse":
        raise SourceError(f"{source}: no Objaverse objects found (no uid of object-paths.json.gz "
                          f"has its .glb under {os.path.join(found.root, 'glbs')}"
                          + (" in the categories that --synsets selects)" if synsets else ")"))
    if not found.objects:
        raise SourceError(f"{source}: no meshes found (looked for ShapeNetCore v1/v2 models and "
                          f"{' '.join(MESH_SUFFIXES)} files)")
    return found
