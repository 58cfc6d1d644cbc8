"""Resuming a build: whether an existing store is resumed or created again, and which of its
shards must be (re)rendered.

A store whose creation never finished (the ``creation`` attribute, see
:func:`tap3d.views.writer.create_dataset`) holds no rendered object and is created again; a
complete one is resumed when its settings and index arrays are this build's; anything else is
refused in one sentence naming the store. A storage failure while deciding is a
:class:`~tap3d.views.storage.StorageError` (re-run once the storage answers), never advice to
overwrite.
"""

from __future__ import annotations

import os

import numpy as np

from tap3d.buildconfig import resume_differences
from tap3d.views import schema
from tap3d.views.storage import StorageError, open_store

__all__ = ["RESUMED_NON_SETTINGS", "exists", "needs_creation", "pending_shards"]


def exists(store) -> bool:
    """True when a file or object exists at the local path or fsspec URL ``store``.

    Raises:
        StorageError: the storage failed to answer.
    """
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(os.fspath(store))
        return fs.exists(path)
    except Exception as error:  # noqa: BLE001 - any failure of the storage
        raise StorageError(f"{os.fspath(store)}: could not look it up "
                           f"({type(error).__name__}: {error})") from error


def _open_existing(store):
    """The group at an existing ``store``, or None when no group was ever written there (an
    empty folder: a build interrupted at its first write).

    Raises:
        StorageError: the storage failed to answer.
        ValueError: something else is there, or its metadata does not parse.
    """
    import zarr

    opened = open_store(store, "r")
    try:
        return zarr.open_group(opened, mode="r", zarr_format=3)
    except StorageError:
        raise
    except FileNotFoundError:
        from zarr.core.sync import sync

        async def empty():
            return await opened.is_empty("")

        if sync(empty()):
            return None
        raise ValueError(f"{store}: exists and holds no zarr group (no zarr.json); pass "
                         "--overwrite to replace it") from None
    except Exception as error:  # noqa: BLE001 - e.g. a zarr.json that does not parse
        raise ValueError(f"{store}: exists but its group metadata cannot be read "
                         f"({type(error).__name__}: {error}); pass --overwrite to replace "
                         "it") from None


def needs_creation(store) -> bool:
    """True when a build must create ``store`` (again): nothing is there, an empty folder, or
    a dataset whose creation never finished (``creation: incomplete``; no shard of it was
    written, so nothing is lost).

    Raises:
        StorageError: the storage failed to answer.
        ValueError: ``store`` holds something that is not a ``tap3d.views`` dataset.
    """
    if not exists(store):
        return True
    group = _open_existing(store)
    if group is None:
        return True
    attrs = group.attrs
    if attrs.get("format") != schema.FORMAT:
        raise ValueError(f"{store}: exists and is not a {schema.FORMAT} dataset; pass "
                         "--overwrite to replace it")
    return attrs.get(schema.CREATION, schema.CREATION_COMPLETE) != schema.CREATION_COMPLETE


#: Attributes compared on resume that are not settings (the settings' are read off
#: :class:`~tap3d.buildconfig.BuildConfig`): the objects' source and categories, and the layout
#: (recorded with its angles and distances).
RESUMED_NON_SETTINGS = ("layout", "source", "categories")


def pending_shards(store: str, attributes: dict, index: dict, ranges) -> list[int]:
    """Shards of an existing, completely created dataset that a resumed build must (re)render.

    A shard is complete when every object's ``status`` is set (``write_shard`` writes it last);
    a shard whose ``status`` chunk is missing, does not decode or is still pending is rendered
    again.

    Raises:
        ValueError: the existing dataset was made with other settings or objects, or its index
            arrays are not this build's (the message names each difference; nothing is
            written).
        StorageError: the storage failed to answer (nothing is written; run again).
    """
    group = _open_existing(store)
    if group is None:
        raise ValueError(f"{store}: holds no dataset; build it without --overwrite")
    existing = dict(group.attrs)
    if existing.get("format") != schema.FORMAT:
        raise ValueError(f"{store}: exists and is not a {schema.FORMAT} dataset; pass --overwrite "
                         "to replace it")
    differences = resume_differences(existing, attributes, also=RESUMED_NON_SETTINGS)
    stored = {}
    for name in schema.INDEX_ARRAYS:
        try:
            stored[name] = group[name][:]
        except StorageError:
            raise
        except Exception as error:  # noqa: BLE001 - missing array or chunk that does not decode
            raise ValueError(f"{store}: its index array {name} cannot be read "
                             f"({type(error).__name__}: {error}); pass --overwrite to start "
                             "over") from None
    ids = stored["object_id"]
    if len(ids) == len(index["object_id"]) and len(ids) and (ids == "").all():
        raise ValueError(f"{store}: its object_id array is empty (written by a version of "
                         "tap3d whose store creation was interrupted); pass --overwrite to "
                         "start over")
    if len(ids) != len(index["object_id"]) or (ids != index["object_id"]).any():
        differences.append(f"objects: existing {len(ids)}, this build "
                           f"{len(index['object_id'])}, first difference at object "
                           f"{_first_difference(ids, index['object_id'])} (the source or "
                           "--synsets/--limit changed)")
    if differences:
        raise ValueError(f"{store}: exists with different settings; pass --overwrite to start "
                         "over, or the original settings to resume:\n  " +
                         "\n  ".join(differences))
    wrong = [name for name in schema.INDEX_ARRAYS[1:]
             if (np.asarray(stored[name]) != np.asarray(index[name])).any()]
    if wrong:
        raise ValueError(f"{store}: its index arrays {', '.join(wrong)} differ from the "
                         "source's for the same objects (written by a version of tap3d whose "
                         "store creation was interrupted, or edited); pass --overwrite to start "
                         "over")
    try:
        status = group["status"][:]  # one read; shard by shard only when a chunk is torn
    except StorageError:
        raise
    except Exception:  # noqa: BLE001
        status = None
    pending = []
    for shard, (start, stop) in enumerate(ranges):
        try:
            part = status[start:stop] if status is not None else group["status"][start:stop]
            complete = bool((part != schema.STATUS_PENDING).all())
        except StorageError:
            raise
        except Exception:  # noqa: BLE001 - a torn status chunk means the shard is redone
            complete = False
        if not complete:
            pending.append(shard)
    return pending


def _first_difference(a, b) -> int:
    n = min(len(a), len(b))
    different = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(different[0]) if len(different) else n
