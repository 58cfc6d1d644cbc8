"""A contact sheet of a dataset's views: the quickest look at what a build made."""

from __future__ import annotations

import os

import numpy as np

from tap3d.datasets.format import STATUS_DONE

__all__ = ["contact_sheet"]


def contact_sheet(store, output: str | os.PathLike, objects: int = 8, tile: int = 112) -> np.ndarray:
    """Write a PNG grid: one row per object (spread over the done objects), one column per view.

    Args:
        store: the dataset's path or fsspec URL.
        output: PNG path to write.
        objects: rows, at most; objects with ``status`` done are picked evenly across the dataset.
        tile: side of each view's tile in pixels (views are resized to it).

    Returns:
        The sheet, ``(rows * tile, V * tile, 3)`` uint8.

    Raises:
        ValueError: the dataset has no done object.
    """
    import zarr
    from PIL import Image, ImageDraw

    group = zarr.open_group(store, mode="r")
    done = np.flatnonzero(group["status"][:] == STATUS_DONE)
    if done.size == 0:
        raise ValueError(f"{store}: no object was rendered successfully")
    pick = done[np.unique(np.linspace(0, done.size - 1, min(objects, done.size)).round().astype(int))]
    ids = group["object_id"][:]
    rows = []
    for i in pick:
        views = group["rgb"][int(i)]  # (V, S, S, 3)
        row = Image.fromarray(np.concatenate(
            [np.asarray(Image.fromarray(v).resize((tile, tile), Image.BILINEAR)) for v in views], 1))
        ImageDraw.Draw(row).text((3, 2), str(ids[i]), fill=(200, 0, 0))
        rows.append(np.asarray(row))
    sheet = np.concatenate(rows, 0)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    Image.fromarray(sheet).save(output)
    return sheet
