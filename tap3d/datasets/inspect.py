"""Looking at datasets and training runs: ``tap-cli inspect``.

- :func:`summarize` / :func:`format_summary`: objects, categories, views, image size, status
  counts with the first failures, size on disk, bytes per view and compression ratio.
- :func:`dataset_sheet`: for a few objects, every view's RGB, depth and mask, and a 3D plot of
  the camera positions around the object's point cloud (matplotlib, Agg).
- :func:`camera_plot`: the 3D camera plot of one object alone.
- :func:`run_sheet`: the loss curves of a run (``metrics.jsonl``) next to its latest
  generated-versus-target grid (``samples/step_N.png``).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter

import numpy as np

from tap3d.datasets.preview import pick_objects

__all__ = ["summarize", "format_summary", "dataset_sheet", "camera_plot", "run_sheet",
           "is_run_folder"]


def summarize(store) -> dict:
    """Counts and sizes of a dataset.

    Returns:
        dict with ``objects``, ``categories`` (name -> count, by ``category_names``), ``views``,
        ``image_size``, ``points``, ``status`` (``done``/``failed``/``pending`` counts),
        ``failures`` (first 5 ``(object_id, error)``), ``bytes_on_disk``, ``bytes_per_view``
        (disk bytes / (done objects x views)), ``compression_ratio`` (decoded bytes of all
        arrays / disk bytes).
    """
    import zarr

    from tap3d.datasets.format import STATUS_DONE, STATUS_FAILED, STATUS_PENDING, bytes_on_disk

    group = zarr.open_group(store, mode="r")
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


def _camera_centres(world_to_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera centres ``-R^T t`` and viewing directions (camera +z in world), ``(V, 3)`` each."""
    R, t = world_to_camera[:, :3, :3], world_to_camera[:, :3, 3]
    centres = -np.einsum("vji,vj->vi", R, t)
    return centres, R[:, 2, :]


def _draw_cameras(ax, points: np.ndarray, world_to_camera: np.ndarray, title: str) -> None:
    centres, forward = _camera_centres(world_to_camera)
    shown = points[:: max(1, len(points) // 2000)]
    ax.scatter(shown[:, 0], shown[:, 2], shown[:, 1], s=1, c=shown[:, 1], cmap="viridis")
    ax.scatter(centres[:, 0], centres[:, 2], centres[:, 1], s=30, c="red", depthshade=False)
    ax.quiver(centres[:, 0], centres[:, 2], centres[:, 1], forward[:, 0], forward[:, 2],
              forward[:, 1], length=0.5, color="red")
    for v, c in enumerate(centres):
        ax.text(c[0], c[2], c[1], str(v), fontsize=7)
    limit = float(np.abs(centres).max()) * 1.05
    ax.set_xlim(-limit, limit), ax.set_ylim(-limit, limit), ax.set_zlim(-limit, limit)
    ax.set_xlabel("x"), ax.set_ylabel("z"), ax.set_zlabel("y (up)")
    ax.set_box_aspect((1, 1, 1))
    ax.set_title(title, fontsize=8)


def dataset_sheet(store, output: str, objects: int = 3, dpi: int = 80) -> dict:
    """Write a PNG: per object, rows of RGB, depth and mask for every view, and a 3D plot of
    the cameras (red, numbered, arrows along the optical axis) around the point cloud.

    Returns:
        ``{"path", "size": (width, height) pixels, "panels": [(name, (x0, y0, x1, y1)), ...]}``
        with every image panel's pixel box (origin top-left), for checks.

    Raises:
        ValueError: the dataset has no done object.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import zarr

    group = zarr.open_group(store, mode="r")
    chosen = pick_objects(group, objects)
    if not chosen:
        raise ValueError(f"{store}: no done object to show")
    views = group["rgb"].shape[1]
    ids = group["object_id"][:]
    rows = 3 * len(chosen)
    fig = plt.figure(figsize=(1.3 * views + 4.2, 1.3 * rows), dpi=dpi)
    grid = fig.add_gridspec(rows, views + 3, wspace=0.05, hspace=0.15)
    panels = []
    for r, i in enumerate(chosen):
        rgb, depth, mask = group["rgb"][i], group["depth"][i].astype(np.float32), group["mask"][i]
        covered = depth[mask]
        near, far = (covered.min(), covered.max()) if covered.size else (0.0, 1.0)
        for v in range(views):
            for k, (name, image, kwargs) in enumerate((
                    ("rgb", rgb[v], {}),
                    ("depth", np.where(mask[v], depth[v], np.nan),
                     {"cmap": "magma_r", "vmin": near, "vmax": far}),
                    ("mask", mask[v], {"cmap": "gray", "vmin": 0, "vmax": 1}))):
                ax = fig.add_subplot(grid[3 * r + k, v])
                ax.imshow(image, **kwargs)
                ax.set_xticks([]), ax.set_yticks([])
                if v == 0:
                    ax.set_ylabel(f"{name}", fontsize=7)
                if k == 0:
                    ax.set_title(f"{ids[i]}" if v == 0 else f"view {v}", fontsize=6, loc="left")
                panels.append((f"{ids[i]}/{name}/{v}", ax))
        ax3d = fig.add_subplot(grid[3 * r:3 * r + 3, views:], projection="3d")
        _draw_cameras(ax3d, group["points"][i], group["cameras/world_to_camera"][i],
                      f"{ids[i]}: {views} cameras")
        panels.append((f"{ids[i]}/cameras", ax3d))
    fig.savefig(output, dpi=dpi)
    width, height = fig.canvas.get_width_height()
    boxes = []
    for name, ax in panels:
        x0, y0, x1, y1 = ax.get_window_extent().extents
        boxes.append((name, (int(x0), int(height - y1), int(x1), int(height - y0))))
    plt.close(fig)
    return {"path": output, "size": (width, height), "panels": boxes}


def camera_plot(store, output: str, index: int | None = None, dpi: int = 100) -> str:
    """Write a PNG of one object's cameras around its point cloud (the first done object)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import zarr

    group = zarr.open_group(store, mode="r")
    if index is None:
        index = pick_objects(group, 1)[0]
    fig = plt.figure(figsize=(5, 5), dpi=dpi)
    ax = fig.add_subplot(projection="3d")
    _draw_cameras(ax, group["points"][index], group["cameras/world_to_camera"][index],
                  f"{group['object_id'][index]}: cameras ({group.attrs['layout']['name']})")
    fig.savefig(output, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return output


def is_run_folder(path) -> bool:
    """True for a training run folder (``metrics.jsonl`` or ``checkpoints/``)."""
    return os.path.isdir(path) and (os.path.isfile(os.path.join(path, "metrics.jsonl"))
                                    or os.path.isdir(os.path.join(path, "checkpoints")))


def run_sheet(run: str, output: str, dpi: int = 80) -> dict:
    """Write a PNG of a run's loss curves and its latest generated-versus-target grid.

    Returns:
        ``{"path", "steps", "last": last metrics record, "sample": grid file or None}``.

    Raises:
        FileNotFoundError: no ``metrics.jsonl`` in ``run``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    path = os.path.join(run, "metrics.jsonl")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no metrics (not a run folder, or no step logged)")
    records = [json.loads(line) for line in open(path) if line.strip()]
    samples = os.path.join(run, "samples")
    grids = sorted((int(m.group(1)), f) for f in (os.listdir(samples) if os.path.isdir(samples)
                                                  else [])
                   if (m := re.fullmatch(r"step_(\d+)\.png", f)))
    fig, axes = plt.subplots(1, 3 if grids else 2, figsize=(15 if grids else 10, 4), dpi=dpi,
                             gridspec_kw={"width_ratios": [1, 1, 2] if grids else [1, 1]})
    steps = [r["step"] for r in records]
    for key, style in (("loss", "-"), ("loss_fg", "--"), ("loss_bg", ":")):
        axes[0].plot(steps, [r[key] for r in records], style, label=key)
    axes[0].set_yscale("log"), axes[0].set_xlabel("step"), axes[0].legend()
    axes[0].set_title("TAP loss (w_fg MSE fg + w_bg MSE bg)")
    axes[1].plot(steps, [r["lr"] for r in records], label="lr")
    axes[1].set_xlabel("step"), axes[1].set_title("learning rate / samples per s")
    twin = axes[1].twinx()
    twin.plot(steps, [r["samples_per_s"] for r in records], color="gray", alpha=0.6)
    sample = None
    if grids:
        step, name = grids[-1]
        sample = os.path.join(samples, name)
        axes[2].imshow(np.asarray(Image.open(sample)))
        axes[2].set_title(f"step {step}: generated (top) / target (bottom)")
        axes[2].axis("off")
    fig.tight_layout()
    fig.savefig(output, dpi=dpi)
    plt.close(fig)
    return {"path": output, "steps": len(records), "last": records[-1] if records else None,
            "sample": sample}
