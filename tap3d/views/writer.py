"""Writing a ``tap3d.views`` dataset: the group with its empty arrays, then whole shards.

Concurrent writes into one Zarr shard lose data (zarr-python #3682), so the builder writes whole
shards only, one task per shard; ``status`` is written last so that a shard whose ``status`` is
set is complete.
"""

from __future__ import annotations

import warnings

import numpy as np

from tap3d.views.schema import (CREATION, CREATION_COMPLETE, CREATION_INCOMPLETE, FORMAT,
                                INDEX_ARRAYS, SHARD_ARRAYS, ArraySpec, format_version)
from tap3d.views.storage import open_store

__all__ = ["create_dataset", "write_shard"]


def _compressor(dtype):
    import zarr

    # Byte-wise shuffle groups the high and low bytes of float16/float32 values. One-byte
    # types are left alone: on the demo renders bit-shuffle made RGB larger (ratio 11.2 vs
    # 19.3) and twice as slow to decode (1.09 vs 0.51 ms per object of 10 views at 224 px).
    shuffle = "noshuffle" if dtype in ("bool", "uint8") else "shuffle"
    # LZ4HC (level 5) rather than zstd: on the demo renders RGB decodes 4.7x faster (0.23 vs
    # 1.07 ms per object of 10 views at 224 px; decoding is what the training stream spends
    # its time on) and encodes as fast, for 40% more bytes (ratio 0.067 vs 0.048); depth 2x
    # faster for 18% more, points 4x faster for 1% more (benchmarks/loader.py, docs/format.md).
    # A CRC-32C of every compressed chunk: Blosc decodes some corrupted chunks without error,
    # the checksum turns them into a read error that `tap-cli verify` reports.
    return (zarr.codecs.BloscCodec(cname="lz4hc", clevel=5, shuffle=shuffle),
            zarr.codecs.Crc32cCodec())


def create_dataset(store, specs: dict[str, ArraySpec], shard_size: int, attributes: dict,
                   index: dict[str, np.ndarray], overwrite: bool = False):
    """Create the group and every (empty) array, and write the index arrays.

    Creation either finishes or is seen unfinished: the group is written first with the
    attribute ``creation: "incomplete"``, then the arrays, the index arrays and the consolidated
    metadata, and last (one write of the group's ``zarr.json``, which keeps the consolidated
    metadata) ``creation: "complete"``. A store still marked incomplete was interrupted before
    any shard was written, and a build creates it again (:mod:`tap3d.builder.resume`).

    Args:
        store: a local path, an fsspec URL or a zarr store.
        specs: from :func:`array_specs`.
        shard_size: objects per shard.
        attributes: the group attributes (``docs/format.md``); ``format``, ``format_version``
            (:func:`~tap3d.views.schema.format_version`) and ``creation`` are added.
        index: ``object_id``, ``category`` and ``split`` (str) and ``label`` (int32) arrays of
            length ``N`` (:data:`INDEX_ARRAYS`).
        overwrite: replace an existing group at ``store``.

    Returns:
        The open ``zarr.Group``.

    Raises:
        StorageError: a write failed (the message names the store and the key); the store
            stays marked incomplete.
        zarr.errors.ContainsGroupError: ``store`` exists and ``overwrite`` is false.
    """
    import zarr

    store = open_store(store, "w" if overwrite else "w-")
    group = zarr.open_group(store, mode="w" if overwrite else "w-", zarr_format=3,
                            attributes={"format": FORMAT,
                                        "format_version": format_version(attributes),
                                        **attributes, CREATION: CREATION_INCOMPLETE})
    for name, spec in specs.items():
        parent, _, leaf = name.rpartition("/")
        target = group.require_group(parent) if parent else group
        num = spec.shape[0]
        if spec.sharded:
            chunks = (1,) + spec.shape[1:]
            shards = (max(1, min(shard_size, num)),) + spec.shape[1:]
        else:
            chunks, shards = (max(1, min(shard_size, num)),) + spec.shape[1:], None
        kwargs = {} if spec.dtype is str else {"compressors": _compressor(spec.dtype)}
        coordinates = spec.dims[:2] in (("object", "view"), ("object", "point"))
        target.create_array(
            leaf, shape=spec.shape, chunks=chunks, shards=shards, dtype=spec.dtype,
            dimension_names=spec.dims, fill_value=spec.fill_value,
            attributes={"coordinates": "object_id category label"} if coordinates else None,
            **kwargs)
    for name in INDEX_ARRAYS:
        group[name][:] = index[name]
    with warnings.catch_warnings():
        # zarr warns that consolidated metadata is not in the v3 spec yet; xarray and zarr both
        # read it, and it saves one request per array when opening a remote dataset.
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(store)
    group = zarr.open_group(store, mode="r+", zarr_format=3)
    group.attrs[CREATION] = CREATION_COMPLETE
    return group


def write_shard(group, start: int, arrays: dict[str, np.ndarray]) -> None:
    """Write one shard's objects ``[start, start + n)`` into every array, ``status`` last.

    Args:
        group: the dataset's ``zarr.Group`` opened for writing.
        start: first object index of the shard (a multiple of ``shard_size``).
        arrays: for each name in :data:`SHARD_ARRAYS` (and each optional array the dataset
            has, such as ``normal``), an array whose first axis has the shard's ``n`` objects,
            in the dtype of the format.

    The arrays other than ``status`` are written concurrently on zarr's event loop (one round
    trip instead of one per array: about 40% less time per shard of one object on the heavy
    meshes of ``benchmarks/build.py``), then ``status``.
    """
    import asyncio

    import zarr
    from zarr.core.sync import sync

    async def write(target, name):
        data = arrays[name]
        array = await target.getitem(name)
        await array.setitem(slice(start, start + len(data)), data)

    async def write_all():
        target = await zarr.api.asynchronous.open_group(store=group.store, path=group.path,
                                                        mode="r+", zarr_format=3)
        missing = [name for name in SHARD_ARRAYS if name not in arrays]
        if missing:
            raise KeyError(f"write_shard: no {missing} for the shard at {start}")
        await asyncio.gather(*(write(target, name) for name in arrays if name != "status"))
        await write(target, "status")

    sync(write_all())
