"""Pictures of a dataset (matplotlib/PIL; files for notebooks and READMEs).

- :func:`contact_sheet`: a grid of views of a few objects, the quickest look at what a build made.
- :func:`dataset_sheet`: for a few objects, every view's RGB, depth and mask (and normal map),
  and a 3D plot of the camera positions around the object's point cloud (matplotlib, Agg).
- :func:`camera_plot`: the 3D camera plot of one object alone.
- :func:`generated_over_target`: a model's generated views over their targets, per object (the
  one picture of generated views: training samples, evaluation grids, ``tap-cli generate``).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from tap3d.views.projection import camera_centres
from tap3d.views.schema import STATUS_DONE, open_views

__all__ = ["contact_sheet", "pick_objects", "dataset_sheet", "camera_plot",
           "generated_over_target"]


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
    from PIL import Image, ImageDraw

    group = open_views(store)
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


def _draw_cameras(ax, points: np.ndarray, world_to_camera: np.ndarray, title: str) -> None:
    centres, forward = camera_centres(world_to_camera)
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
    """Write a PNG: per object, rows of RGB, depth and mask for every view (and the normal
    map, camera-space xyz shown as RGB ``(n + 1) / 2``, when the dataset has one), and a 3D plot
    of the cameras (red, numbered, arrows along the optical axis) around the point cloud.

    Returns:
        ``{"path", "size": (width, height) pixels, "panels": [(name, (x0, y0, x1, y1)), ...]}``
        with every image panel's pixel box (origin top-left), for checks.

    Raises:
        ValueError: the dataset has no done object.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    group = open_views(store)
    chosen = pick_objects(group, objects)
    if not chosen:
        raise ValueError(f"{store}: no done object to show")
    views = group["rgb"].shape[1]
    ids = group["object_id"][:]
    normals = "normal" in group
    per = 4 if normals else 3
    rows = per * len(chosen)
    fig = plt.figure(figsize=(1.3 * views + 4.2, 1.3 * rows), dpi=dpi)
    grid = fig.add_gridspec(rows, views + 3, wspace=0.05, hspace=0.15)
    panels = []
    for r, i in enumerate(chosen):
        rgb, depth, mask = group["rgb"][i], group["depth"][i].astype(np.float32), group["mask"][i]
        normal = group["normal"][i].astype(np.float32) if normals else None
        covered = depth[mask]
        near, far = (covered.min(), covered.max()) if covered.size else (0.0, 1.0)
        for v in range(views):
            shown = [("rgb", rgb[v], {}),
                     ("depth", np.where(mask[v], depth[v], np.nan),
                      {"cmap": "magma_r", "vmin": near, "vmax": far}),
                     ("mask", mask[v], {"cmap": "gray", "vmin": 0, "vmax": 1})]
            if normals:
                shown.append(("normal", np.where(mask[v][..., None], (normal[v] + 1) / 2, 1.0),
                              {}))
            for k, (name, image, kwargs) in enumerate(shown):
                ax = fig.add_subplot(grid[per * r + k, v])
                ax.imshow(image, **kwargs)
                ax.set_xticks([]), ax.set_yticks([])
                if v == 0:
                    ax.set_ylabel(f"{name}", fontsize=7)
                if k == 0:
                    ax.set_title(f"{ids[i]}" if v == 0 else f"view {v}", fontsize=6, loc="left")
                panels.append((f"{ids[i]}/{name}/{v}", ax))
        ax3d = fig.add_subplot(grid[per * r:per * r + per, views:], projection="3d")
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

    group = open_views(store)
    if index is None:
        index = pick_objects(group, 1)[0]
    fig = plt.figure(figsize=(5, 5), dpi=dpi)
    ax = fig.add_subplot(projection="3d")
    _draw_cameras(ax, group["points"][index], group["cameras/world_to_camera"][index],
                  f"{group['object_id'][index]}: cameras ({group.attrs['layout']['name']})")
    fig.savefig(output, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return output




def _as_uint8(images) -> torch.Tensor:
    """Images as CPU uint8: uint8 kept, floats read in [0, 1] (clamped, rounded)."""
    images = torch.as_tensor(images).detach().cpu()
    if images.dtype == torch.uint8:
        return images
    return (images.float().clamp(0, 1) * 255).round().to(torch.uint8)


def generated_over_target(generated, targets, gap: int = 4, views=None) -> np.ndarray:
    """A contact sheet of generated views: per object, its generated views (a row) over their
    targets (the row below), objects one under the other with white gaps between them.

    Args:
        generated: ``(n, V, 3, S, S)`` tensor or array, float in [0, 1] or uint8.
        targets: the same shape, float in [0, 1] or uint8.
        gap: white pixel rows between objects.
        views: which views to show (an index or slice on the V axis; default all).

    Returns:
        ``(n (2 S + gap) - gap, V' S, 3)`` uint8, V' the views shown.
    """
    pick = slice(None) if views is None else views
    pair = torch.stack([_as_uint8(generated)[:, pick], _as_uint8(targets)[:, pick]], 1)
    n, _, V, _, S, _ = pair.shape  # (n, 2, V, 3, S, S)
    rows = pair.permute(0, 1, 4, 2, 5, 3).reshape(n, 2 * S, V * S, 3)
    white = torch.full((n, gap, V * S, 3), 255, dtype=torch.uint8)
    return torch.cat([rows, white], 1).reshape(-1, V * S, 3)[:-gap or None].numpy()
