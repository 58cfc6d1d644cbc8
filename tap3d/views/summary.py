"""A dataset in numbers (``tap-cli inspect DATASET``): objects, categories, views, image size,
status counts with the first failures, size on disk, bytes per view and compression ratio."""

from __future__ import annotations

from collections import Counter

import numpy as np


__all__ = ["summarize", "format_summary"]


def summarize(store) -> dict:
    """Counts and sizes of a dataset.

    Returns:
        dict with ``objects``, ``categories`` (name -> count, by ``category_names``), ``views``,
        ``image_size``, ``points``, ``status`` (``done``/``failed``/``pending`` counts),
        ``failures`` (first 5 ``(object_id, error)``), ``bytes_on_disk``, ``bytes_per_view``
        (disk bytes / (done objects x views)), ``compression_ratio`` (decoded bytes of all
        arrays / disk bytes).
    """
    from tap3d.views.schema import (STATUS_DONE, STATUS_FAILED, STATUS_PENDING, bytes_on_disk,
                                    open_views)

    group = open_views(store)
    attrs = dict(group.attrs)
    status = group["status"][:]
    names = dict(zip(attrs["categories"], attrs.get("category_names", attrs["categories"])))
    categories = Counter(names.get(str(c), str(c)) for c in group["category"][:])
    failed = np.flatnonzero(status == STATUS_FAILED)
    ids, errors = group["object_id"][:], group["error"][:] if len(failed) else []
    decoded = 0
    for name in ("", "cameras", "normalization"):
        sub = group[name] if name else group
        for _, array in sub.arrays():
            itemsize = 16 if array.dtype.kind in "OT" else array.dtype.itemsize
            decoded += int(np.prod(array.shape)) * itemsize
    disk = bytes_on_disk(store)
    done = int((status == STATUS_DONE).sum())
    return {
        "store": str(store), "objects": int(len(status)),
        "categories": dict(sorted(categories.items())), "views": int(attrs["views"]),
        "image_size": int(attrs["image_size"]), "points": int(attrs["points_per_object"]),
        "layout": attrs["layout"]["name"], "backend": attrs.get("backend"),
        "status": {"done": done, "failed": int(len(failed)),
                   "pending": int((status == STATUS_PENDING).sum())},
        "failures": [(str(ids[i]), str(errors[i])) for i in failed[:5]],
        "bytes_on_disk": disk,
        "bytes_per_view": disk / (done * attrs["views"]) if done else float("nan"),
        "compression_ratio": decoded / disk if disk else float("nan"),
    }


def format_summary(summary: dict) -> str:
    """The summary as the lines ``tap-cli inspect`` prints."""
    s = summary
    lines = [
        f"{s['store']}",
        f"  objects     {s['objects']} in {len(s['categories'])} categories: "
        + ", ".join(f"{k} {v}" for k, v in s["categories"].items()),
        f"  views       {s['views']} per object ({s['layout']} layout), {s['image_size']} x "
        f"{s['image_size']} px, {s['points']} points per object, backend {s['backend']}",
        f"  status      done {s['status']['done']}, failed {s['status']['failed']}, "
        f"pending {s['status']['pending']}",
    ]
    lines += [f"  failed      {object_id}: {error}" for object_id, error in s["failures"]]
    lines.append(f"  on disk     {s['bytes_on_disk'] / 2**20:.1f} MiB, "
                 f"{s['bytes_per_view'] / 1024:.1f} KiB per view, compression ratio "
                 f"{s['compression_ratio']:.1f}x")
    return "\n".join(lines)
