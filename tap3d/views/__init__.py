"""The dataset format ``tap3d.views``: schema and checked accessor, writer, verify, xarray reader,
pictures. Importing this package loads only the schema (numpy); the rest loads on use."""

from tap3d.views.schema import (FORMAT, FORMAT_VERSION, STATUS_DONE, STATUS_FAILED,
                                STATUS_PENDING, FormatError, open_views)

__all__ = ["FORMAT", "FORMAT_VERSION", "STATUS_DONE", "STATUS_FAILED", "STATUS_PENDING",
           "FormatError", "open_views", "open_dataset"]


def open_dataset(store, chunks="shard"):
    """See :func:`tap3d.views.reader.open_dataset` (imports xarray on first use)."""
    from tap3d.views.reader import open_dataset as _open

    return _open(store, chunks=chunks)
