"""Resuming a build: which shards of an existing dataset must be (re)rendered."""

from __future__ import annotations

import os

from tap3d.views import schema

__all__ = ["RESUME_SETTINGS", "exists", "pending_shards"]


def exists(store) -> bool:
    """True when a file or object exists at the local path or fsspec URL ``store``."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(os.fspath(store))
    return fs.exists(path)


#: Attributes that must match for a build to continue an existing dataset: the resolved settings
#: (``auto`` layout and backend resolved, see :func:`tap3d.builder.plan.make_plan`), not how
#: they were spelled. ``preset`` is recorded but not compared: ``--preset clip2point`` and the
#: same settings without it render the same views. ``device`` is not recorded.
RESUME_SETTINGS = ("views", "layout", "image_size", "fov", "points_per_object", "shard_size",
                   "seed", "backend", "background", "texture_atlas_size", "shading", "textures",
                   "shader", "obj_loader", "source", "categories", "projection", "fit")


#: Values of settings that datasets written before the setting existed were built with.
RESUME_DEFAULTS = {"projection": "perspective", "fit": None}


def pending_shards(store: str, attributes: dict, index: dict, ranges) -> list[int]:
    """Shards of an existing dataset that a resumed build must (re)render.

    A shard is complete when every object's ``status`` is set (``write_shard`` writes it last);
    a shard whose ``status`` chunk is missing, unreadable or still pending is rendered again.

    Raises:
        ValueError: the existing dataset was made with other settings or objects (the
            message names each difference; nothing is written).
    """
    import zarr

    try:
        group = zarr.open_group(store, mode="r")
        existing = dict(group.attrs)
    except Exception as error:  # noqa: BLE001
        raise ValueError(f"{store}: exists but is not a readable tap3d dataset ({error}); "
                         "pass --overwrite to replace it") from None
    if existing.get("format") != schema.FORMAT:
        raise ValueError(f"{store}: exists and is not a {schema.FORMAT} dataset; pass --overwrite "
                         "to replace it")
    existing = {**RESUME_DEFAULTS, **existing}
    differences = [f"{key}: existing {existing.get(key)!r}, this build {attributes[key]!r}"
                   for key in RESUME_SETTINGS if existing.get(key) != attributes[key]]
    ids = group["object_id"][:]
    if len(ids) != len(index["object_id"]) or (ids != index["object_id"]).any():
        differences.append(f"objects: existing {len(ids)}, this build {len(index['object_id'])}"
                           " (the source or --synsets/--limit changed)")
    if differences:
        raise ValueError(f"{store}: exists with different settings; pass --overwrite to start "
                         "over, or the original settings to resume:\n  " +
                         "\n  ".join(differences))
    try:
        status = group["status"][:]  # one read; shard by shard only when a chunk is torn
    except Exception:  # noqa: BLE001
        status = None
    pending = []
    for shard, (start, stop) in enumerate(ranges):
        try:
            part = status[start:stop] if status is not None else group["status"][start:stop]
            complete = bool((part != schema.STATUS_PENDING).all())
        except Exception:  # noqa: BLE001 - a torn status chunk means the shard is redone
            complete = False
        if not complete:
            pending.append(shard)
    return pending


