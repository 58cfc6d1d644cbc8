"""The folder layouts: ShapeNetCore v1/v2, ModelNet10/40, any folder of meshes, and the
built-in ``pybullet`` demo (:data:`PYBULLET_DEMO`). :func:`tap3d.sources.discover` says which
layout a root is; each function here lists its objects before the object list and the limit."""

from __future__ import annotations

import json
import os
import re

from tap3d.sources.base import MESH_SUFFIXES, ObjectSpec, Source, SourceError, unknown_category

__all__ = ["PYBULLET_DEMO", "detect_modelnet", "detect_shapenet", "mesh_folder", "modelnet",
           "pybullet", "shapenet"]

_SYNSET = re.compile(r"^\d{8}$")


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


def detect_shapenet(root: str) -> str | None:
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
            known = available + [n.strip() for s in available for n in names.get(s, "").split(",")]
            raise unknown_category(item, known, "neither a synset id nor a category name "
                                                "present in the source")
        out.extend(matches)
    return sorted(set(out))


def shapenet(root: str, kind: str, synsets) -> Source:
    """ShapeNetCore v2 or v1 (``kind``): every model folder of the synsets chosen."""
    names = _read_taxonomy(root)
    chosen = _select_synsets(synsets, _synset_dirs(root), names)
    relative = ("models", "model_normalized.obj") if kind == "shapenet_v2" else ("model.obj",)
    objects = []
    for synset in chosen:
        models = sorted(m for m in os.listdir(os.path.join(root, synset))
                        if os.path.isdir(os.path.join(root, synset, m)))
        objects += [ObjectSpec(f"{synset}/{model}", synset,
                               os.path.join(root, synset, model, *relative)) for model in models]
    return Source(kind, root, objects, category_names={s: names.get(s, s).split(",")[0]
                                                       for s in chosen})


def mesh_folder(root: str, synsets) -> Source:
    """Every file with a suffix in :data:`MESH_SUFFIXES` under ``root``, recursively."""
    found = []
    wanted = set(synsets) if synsets else None
    # paths, relative paths and categories per folder, not per file (os.path.relpath per file
    # was most of planning a folder of 10k meshes); a name's suffix as os.path.splitext
    # sees it (leading dots are not a suffix)
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        category = os.path.basename(directory) if directory != root else \
            os.path.basename(os.path.abspath(root))
        if wanted is not None and category not in wanted:
            continue
        folder = os.path.relpath(directory, root).replace(os.sep, "/")
        prefix = "" if folder == "." else folder + "/"
        for name in sorted(files):
            if name.lstrip(".").lower().endswith(MESH_SUFFIXES):
                found.append(ObjectSpec(prefix + name, category, os.path.join(directory, name)))
    return Source("mesh_folder", root, found)


_MODELNET_SPLITS = ("train", "test")


def detect_modelnet(root: str) -> bool:
    """True when some ``<root>/<class>/{train,test}/`` folder holds ``.off`` files."""
    for name in sorted(os.listdir(root)):
        for split in _MODELNET_SPLITS:
            folder = os.path.join(root, name, split)
            if os.path.isdir(folder) and any(f.lower().endswith(".off")
                                             for f in os.listdir(folder)):
                return True
    return False


def modelnet(root: str, synsets) -> Source:
    """ModelNet10/40: ``<class>/{train,test}/<name>.off`` (``limit`` is per class and split)."""
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
    return Source("modelnet", root, found)


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


def pybullet(synsets) -> Source:
    """The meshes of :data:`PYBULLET_DEMO` in the installed ``pybullet_data``."""
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
    return Source("pybullet", root, objects)
