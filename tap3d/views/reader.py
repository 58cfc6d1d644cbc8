"""Opening a ``tap3d.views`` dataset for analysis: one lazy, labelled ``xarray.Dataset``.

The store is plain Zarr v3, so ``zarr.open_group(path)`` and ``xarray.open_zarr(path)`` work on
it as they are; :func:`open_dataset` adds what a notebook wants on top: the ``cameras/`` and
``normalization/`` groups merged in, objects indexed by ``object_id`` (``ds.rgb.sel(object=
"02691156/1a04e3eab45ca15dd86060f189eb133")``), ``category`` and ``label`` along ``object``,
a ``view`` index and the views' ``azimuth``/``elevation``/``distance`` as coordinates, and Dask
chunks of one shard along ``object`` (one task per shard, not per object).
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["open_dataset"]


def _fixed_width(strings) -> np.ndarray:
    """A numpy ``<U`` array (xarray indexes it) from zarr's variable-width strings."""
    return np.array([str(s) for s in strings], dtype=str)


def open_dataset(store, chunks: str | dict | None = "shard"):
    """A lazy, Dask-backed ``xarray.Dataset`` of a dataset.

    Args:
        store: dataset path or fsspec URL.
        chunks: ``"shard"`` (default: ``shard_size`` objects per Dask chunk), ``None`` (load
            eagerly) or an ``xarray`` chunks dict.

    Returns:
        ``xarray.Dataset`` with dimensions ``object``, ``view``, ``y``, ``x``, ``channel``,
        ``point``, ``xyz`` and the matrix axes; data variables ``rgb`` (uint8), ``mask``
        (bool), ``depth`` (float16, camera z, 0 off the object), ``points``/``normals``
        (float32, normalized object frame), ``K``, ``world_to_camera`` (OpenCV), ``R``, ``T``,
        ``fov`` (PyTorch3D), ``center``/``scale`` (``source = normalized * scale + center``),
        ``status``, ``error``, ``warnings``; coordinates ``object`` (= ``object_id``, str),
        ``category``, ``label``, ``view`` (int), ``azimuth``, ``elevation``, ``distance``
        (degrees / object units, per object and view). Attributes: the group's.

    Raises:
        FormatError: the store is not a ``tap3d.views`` dataset.
    """
    import xarray as xr

    from tap3d.views.schema import open_views

    group = open_views(store)
    attrs = dict(group.attrs)
    if chunks == "shard":
        chunks = {"object": int(attrs["shard_size"])}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # consolidated metadata is not in the v3 spec yet
        root = xr.open_zarr(store, chunks=chunks)
        cameras = xr.open_zarr(store, group="cameras", chunks=chunks)
        normalization = xr.open_zarr(store, group="normalization", chunks=chunks)
    ds = xr.merge([root, cameras, normalization], combine_attrs="override")
    ids = _fixed_width(group["object_id"][:])
    ds = ds.drop_vars("object_id").assign_coords(
        object=("object", ids),
        category=("object", _fixed_width(group["category"][:])),
        label=("object", np.asarray(group["label"][:])),
        view=("view", np.arange(ds.sizes["view"])))
    ds = ds.set_coords(["azimuth", "elevation", "distance"])
    ds.attrs = attrs
    return ds
