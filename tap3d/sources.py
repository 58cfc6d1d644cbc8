"""Mesh sources: which objects a build renders, with their ids and categories.

Four on-disk layouts are recognised, plus the built-in ``pybullet`` demo source:

- ModelNet10/40 meshes: ``<root>/<class>/{train,test}/<name>.off``; the category is the class
  folder and each object carries its ``split`` (``train``/``test``).
- ShapeNetCore v2: ``<root>/taxonomy.json`` (optional) and
  ``<root>/<synset>/<model>/models/model_normalized.obj`` with its ``.mtl`` and ``../images/``.
- ShapeNetCore v1: ``<root>/<synset>/<model>/model.obj``.
- A mesh folder: every file with a suffix in :data:`MESH_SUFFIXES`, searched
  recursively; the category is the parent folder's name and the object id the relative path.

A ShapeNetCore model folder that lacks its OBJ is still listed (with the expected path), so that the
build records it as failed instead of silently dropping it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

__all__ = ["MESH_SUFFIXES", "ObjectSpec", "Source", "SourceError", "discover", "PYBULLET_DEMO"]

#: File suffixes that a mesh-folder source picks up (and :func:`tap3d.render.meshes.load_mesh`
#: reads: ``.obj`` with tinyobjloader, the others with trimesh).
MESH_SUFFIXES = (".obj", ".off", ".ply", ".stl", ".glb", ".gltf")

_SYNSET = re.compile(r"^\d{8}$")


class SourceError(Exception):
    """A source that does not exist, cannot be read or holds no meshes."""


@dataclass(frozen=True)
class ObjectSpec:
    """One object to render.

    Attributes:
        object_id: ``<synset>/<model>`` for ShapeNetCore, the POSIX relative path otherwise.
        category: synset id, or the parent folder's name.
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
        kind: ``shapenet_v2``, ``shapenet_v1``, ``modelnet``, ``mesh_folder`` or ``pybullet``.
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


def _read_taxonomy(root: str) -> dict[str, str]:
    """synset id -> first name in taxonomy.json (empty when there is none)."""
    path = os.path.join(root, "taxonomy.json")
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as f:
            entries = json.load(f)
        return {e["synsetId"]: e["name"] for e in entries}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SourceError(f"{path}: not a ShapeNetCore taxonomy ({error})") from None


def _synset_dirs(root: str) -> list[str]:
    return sorted(d for d in os.listdir(root)
                  if _SYNSET.match(d) and os.path.isdir(os.path.join(root, d)))


def _detect_shapenet(root: str) -> str | None:
    """``shapenet_v2``/``shapenet_v1`` when the root looks like ShapeNetCore, else None."""
    synsets = _synset_dirs(root)
    if not synsets:
        return None
    for synset in synsets:
        for model in sorted(os.listdir(os.path.join(root, synset))):
            model_dir = os.path.join(root, synset, model)
            if os.path.isdir(os.path.join(model_dir, "models")):
                return "shapenet_v2"
            if os.path.isfile(os.path.join(model_dir, "model.obj")):
                return "shapenet_v1"
    return "shapenet_v2" if os.path.isfile(os.path.join(root, "taxonomy.json")) else None


def _select_synsets(selected: list[str] | None, available: list[str],
                    names: dict[str, str]) -> list[str]:
    """Resolve ``--synsets`` (ids or names from taxonomy.json) against the synsets present."""
    if not selected:
        return available
    out = []
    for item in selected:
        if item in available:
            out.append(item)
            continue
        matches = [s for s in available
                   if item.lower() in [n.strip().lower() for n in names.get(s, "").split(",")]]
        if not matches:
            raise SourceError(f"synsets: {item!r} is neither a synset id nor a category name "
                              f"present in the source")
        out.extend(matches)
    return sorted(set(out))


def _shapenet(root: str, kind: str, synsets, limit) -> Source:
    names = _read_taxonomy(root)
    chosen = _select_synsets(synsets, _synset_dirs(root), names)
    relative = ("models", "model_normalized.obj") if kind == "shapenet_v2" else ("model.obj",)
    objects = []
    for synset in chosen:
        models = sorted(m for m in os.listdir(os.path.join(root, synset))
                        if os.path.isdir(os.path.join(root, synset, m)))
        for model in models[:limit]:
            objects.append(ObjectSpec(f"{synset}/{model}", synset,
                                      os.path.join(root, synset, model, *relative)))
    categories = sorted({o.category for o in objects})
    return Source(kind, root, objects, categories,
                  {c: names.get(c, c).split(",")[0] for c in categories})


def _mesh_folder(root: str, synsets, limit) -> Source:
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        for name in sorted(files):
            if os.path.splitext(name)[1].lower() in MESH_SUFFIXES:
                path = os.path.join(directory, name)
                rel = os.path.relpath(path, root).replace(os.sep, "/")
                category = os.path.basename(directory) if directory != root else \
                    os.path.basename(os.path.abspath(root))
                found.append(ObjectSpec(rel, category, path))
    if synsets:
        found = [o for o in found if o.category in set(synsets)]
    return _finish(Source("mesh_folder", root, found), limit)


_MODELNET_SPLITS = ("train", "test")


def _detect_modelnet(root: str) -> bool:
    """True when some ``<root>/<class>/{train,test}/`` folder holds ``.off`` files."""
    for name in sorted(os.listdir(root)):
        for split in _MODELNET_SPLITS:
            folder = os.path.join(root, name, split)
            if os.path.isdir(folder) and any(f.lower().endswith(".off")
                                             for f in os.listdir(folder)):
                return True
    return False


def _modelnet(root: str, synsets, limit) -> Source:
    """ModelNet10/40: ``<class>/{train,test}/<name>.off``; ``limit`` applies per class and split."""
    found = []
    for category in sorted(os.listdir(root)):
        if synsets and category not in set(synsets):
            continue
        for split in _MODELNET_SPLITS:
            folder = os.path.join(root, category, split)
            if not os.path.isdir(folder):
                continue
            for name in sorted(f for f in os.listdir(folder) if f.lower().endswith(".off")):
                found.append(ObjectSpec(f"{category}/{split}/{name}", category,
                                        os.path.join(folder, name), split))
    return _finish(Source("modelnet", root, found), limit)


def _finish(source: Source, limit) -> Source:
    """Sort, apply the per-category (per category and split, where there are splits) limit and
    fill in the categories."""
    per_group: dict[tuple[str, str], int] = {}
    objects = []
    for obj in sorted(source.objects, key=lambda o: (o.category, o.object_id)):
        group = (obj.category, obj.split)
        if limit is not None and per_group.get(group, 0) >= limit:
            continue
        per_group[group] = per_group.get(group, 0) + 1
        objects.append(obj)
    source.objects = objects
    source.categories = sorted({category for category, _ in per_group})
    source.category_names = source.category_names or {c: c for c in source.categories}
    return source


#: The built-in demo: real meshes shipped by the ``pybullet`` package (``pybullet_data``),
#: chosen to cover textured OBJs (duck, table, tray, soccer ball), material colours (toys) and
#: untextured shapes (teddy, bunny, mug, random objects), and to render in a few minutes on 2
#: CPU cores. Entries are (category, path relative to pybullet_data).
PYBULLET_DEMO = [
    ("duck", "duck.obj"),
    ("teddy", "teddy2_VHACD_CHs.obj"),
    ("bunny", "bunny.obj"),
    ("mug", "objects/mug.obj"),
    ("table", "table/table.obj"),
    ("tray", "tray/tray_textured2.obj"),
    ("ball", "soccerball.obj"),
    ("toy", "toys/concave_box.obj"),
    ("toy", "toys/cylinder.obj"),
    ("toy", "toys/prism.obj"),
    ("toy", "toys/shape_sorter.obj"),
    ("sphere", "textured_sphere_smooth.obj"),
] + [("random_object", f"random_urdfs/{i:03d}/{i:03d}.obj") for i in range(0, 200, 5)]


def _pybullet(synsets, limit) -> Source:
    try:
        import pybullet_data
    except ImportError:
        raise SourceError("the 'pybullet' source needs the pybullet package: "
                          "pip install 'tap3d[demo]'") from None
    root = pybullet_data.getDataPath()
    objects = [ObjectSpec(rel, category, os.path.join(root, rel))
               for category, rel in PYBULLET_DEMO]
    if synsets:
        objects = [o for o in objects if o.category in set(synsets)]
    return _finish(Source("pybullet", root, objects), limit)


def discover(source: str | os.PathLike, synsets: list[str] | None = None,
             limit: int | None = None) -> Source:
    """List the objects of a source.

    Args:
        source: a ShapeNetCore v2 or v1 root, a ModelNet10/40 mesh root, a folder of meshes,
            or ``"pybullet"`` for the built-in demo meshes.
        synsets: keep only these categories: synset ids or taxonomy names for ShapeNetCore,
            folder names for mesh folders.
        limit: keep at most this many objects per category (the first in sorted order); for
            ModelNet, per category and split.

    Returns:
        A :class:`Source` with at least one object.

    Raises:
        SourceError: the source does not exist, is not a folder, or holds no meshes.
    """
    if os.fspath(source) == "pybullet":
        found = _pybullet(synsets, limit)
    else:
        root = os.path.abspath(os.fspath(source))
        if not os.path.exists(root):
            raise SourceError(f"{source}: source does not exist")
        if not os.path.isdir(root):
            raise SourceError(f"{source}: source is not a folder")
        kind = _detect_shapenet(root)
        if kind:
            found = _shapenet(root, kind, synsets, limit)
        elif _detect_modelnet(root):
            found = _modelnet(root, synsets, limit)
        else:
            found = _mesh_folder(root, synsets, limit)
    if not found.objects:
        raise SourceError(f"{source}: no meshes found (looked for ShapeNetCore v1/v2 models and "
                          f"{' '.join(MESH_SUFFIXES)} files)")
    return found
