"""A contact sheet of a dataset's views: the quickest look at what a build made."""

from __future__ import annotations

import os

import numpy as np

from tap3d.datasets.format import STATUS_DONE

__all__ = ["contact_sheet", "pick_objects"]


def pick_objects(group, count: int) -> list[int]:
    """Up to ``count`` done objects to show: one of each category first (the first in dataset
    order), then the rest spread evenly; returned sorted. Empty when none is done."""
    done = np.flatnonzero(group["status"][:] == STATUS_DONE)
    categories = group["category"][:]
    first: dict[str, int] = {}
    for i in done:
        first.setdefault(str(categories[i]), int(i))
    pick = list(first.values())[:count]
    rest = [int(i) for i in done if i not in set(pick)]
    if len(pick) < count and rest:
        spread = np.linspace(0, len(rest) - 1, min(count - len(pick), len(rest))).round()
        pick += [rest[int(j)] for j in np.unique(spread)]
    return sorted(pick)


def contact_sheet(store, output: str | os.PathLike, objects: int = 8, tile: int = 112) -> np.ndarray:
    """Write a PNG grid: one row per object (one per category first), one column per view.

    Args:
        store: the dataset's path or fsspec URL.
        output: PNG path to write.
        objects: rows, at most; done objects, one of each category first, then spread evenly.
        tile: side of each view's tile in pixels (views are resized to it).

    Returns:
        The sheet, ``(rows * tile, V * tile, 3)`` uint8.

    Raises:
        ValueError: the dataset has no done object.
    """
    import zarr
    from PIL import Image, ImageDraw

    group = zarr.open_group(store, mode="r")
    pick = pick_objects(group, objects)
    if not pick:
        raise ValueError(f"{store}: no object was rendered successfully")
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
