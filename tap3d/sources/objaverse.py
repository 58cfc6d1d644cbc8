"""Objaverse 1.0 as the ``objaverse`` package downloads it (``objaverse.load_objects``).

The layout, under ``hf-objaverse-v1/`` (``~/.objaverse/hf-objaverse-v1`` by default):

- ``object-paths.json.gz``: gzip JSON, uid -> ``glbs/<000-XXX>/<uid>.glb`` (about 800k uids);
- ``glbs/<000-XXX>/<uid>.glb``: the files of the subset downloaded;
- ``lvis-annotations.json.gz`` (optional): gzip JSON, LVIS category -> uids (1,156 categories,
  about 46k uids).

The objects are the uids listed whose file is present: the ``glbs/*/`` folders are listed once
and matched against the parsed list, nothing is stat'ed per uid (files not listed, such as the
downloader's ``.tmp`` files, are ignored). The object id is the uid; the category is its LVIS
category when the annotations exist and list it, the first in sorted order when they list it
under several, else :data:`UNCATEGORIZED`. ``--synsets`` takes LVIS names (and
``uncategorized``); objects have no split. The other files (``metadata/``) are not read.
"""

from __future__ import annotations

import gzip
import json
import os

from tap3d.sources.base import ObjectSpec, Source, SourceError, unknown_category

__all__ = ["FOLDER", "UNCATEGORIZED", "detect_objaverse", "objaverse"]

#: The folder that the ``objaverse`` package downloads Objaverse 1.0 into.
FOLDER = "hf-objaverse-v1"
#: The category of an object that ``lvis-annotations.json.gz`` does not list (of every object
#: when that file is absent).
UNCATEGORIZED = "uncategorized"
_PATHS, _LVIS = "object-paths.json.gz", "lvis-annotations.json.gz"


def detect_objaverse(root: str) -> str | None:
    """The ``hf-objaverse-v1`` folder when ``root`` is it or holds it, else None. A folder of
    that name, or one holding ``object-paths.json.gz``, counts as one."""
    for base in (root, os.path.join(root, FOLDER)):
        if os.path.isfile(os.path.join(base, _PATHS)) or (
                os.path.basename(base) == FOLDER and os.path.isdir(base)):
            return base
    return None


def _gzip_json(path: str) -> dict:
    """A gzip JSON object, parsed once."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, EOFError, ValueError) as error:  # not gzip, truncated, not JSON
        raise SourceError(f"{path}: cannot be read as gzip JSON ({error})") from None
    if not isinstance(data, dict):
        raise SourceError(f"{path}: not a JSON object")
    return data


def _lvis_categories(path: str) -> tuple[list[str], dict[str, str]]:
    """The LVIS category names, and uid -> category (the first in sorted order)."""
    lvis = _gzip_json(path)
    category: dict[str, str] = {}
    for name in sorted(lvis):
        if not isinstance(lvis[name], list):
            raise SourceError(f"{path}: {name!r} does not map to a list of uids")
        for uid in lvis[name]:
            category.setdefault(uid, name)
    return sorted(lvis), category


def objaverse(base: str, synsets) -> Source:
    """The uids of ``base/object-paths.json.gz`` whose file is present, in their categories.

    Raises:
        SourceError: ``object-paths.json.gz`` is missing or unreadable, the annotations are
            unreadable, or ``synsets`` names a category that the annotations do not have.
    """
    paths_file, lvis_file = os.path.join(base, _PATHS), os.path.join(base, _LVIS)
    if not os.path.isfile(paths_file):
        raise SourceError(f"{base}: an Objaverse folder without {_PATHS} (the objaverse "
                          "package writes it first: objaverse.load_uids())")
    names, category = _lvis_categories(lvis_file) if os.path.isfile(lvis_file) else ([], {})
    for item in synsets or ():
        if item != UNCATEGORIZED and item not in names:
            raise unknown_category(item, [*names, UNCATEGORIZED], "not an LVIS category" + (
                "" if names else f" ({lvis_file} does not exist: every object is "
                                 f"{UNCATEGORIZED!r})"))
    paths = _gzip_json(paths_file)  # uid -> glbs/<folder>/<uid>.glb
    glbs, found = os.path.join(base, "glbs"), []
    folders = [e.name for e in os.scandir(glbs) if e.is_dir()] if os.path.isdir(glbs) else []
    for folder in folders:
        for name in os.listdir(os.path.join(glbs, folder)):
            uid = name[:-4]
            if name.endswith(".glb") and paths.get(uid) == f"glbs/{folder}/{name}":
                found.append(ObjectSpec(uid, category.get(uid, UNCATEGORIZED),
                                        os.path.join(glbs, folder, name)))
    if synsets:
        found = [o for o in found if o.category in set(synsets)]
    return Source("objaverse", base, found)
