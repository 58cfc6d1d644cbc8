"""A picture of predicted against true parts: what a user looks at after part segmentation."""

from __future__ import annotations

import numpy as np

__all__ = ["draw_parts"]


def draw_parts(path: str, shapes, up_axis: int = 1, point_size: float = 4.0) -> str:
    """Write a PNG: one column per shape, the true parts on top, the predicted parts below.

    Args:
        path: the PNG to write.
        shapes: ``[(xyz (P, 3), truth (P,), predicted (P,), parts (its category's global part
            ids), title), ...]``; a part's colour is its index in ``parts`` (tab10), a predicted
            part outside ``parts`` is black.
        up_axis: the axis drawn vertically (1: y-up).
        point_size: marker size.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    palette = plt.get_cmap("tab10")
    figure = plt.figure(figsize=(3 * max(len(shapes), 1), 6), dpi=100)
    side = [a for a in range(3) if a != up_axis]
    for column, (xyz, truth, predicted, parts, title) in enumerate(shapes):
        lookup = {int(p): i for i, p in enumerate(parts)}
        for row, labels in enumerate((truth, predicted)):
            ax = figure.add_subplot(2, len(shapes), row * len(shapes) + column + 1,
                                    projection="3d")
            colours = [palette(lookup[int(v)] % 10) if int(v) in lookup else (0, 0, 0, 1)
                       for v in np.asarray(labels)]
            ax.scatter(xyz[:, side[0]], xyz[:, side[1]], xyz[:, up_axis], c=colours,
                       s=point_size, depthshade=False)
            half = (xyz.max(0) - xyz.min(0)).max() / 2
            middle = (xyz.max(0) + xyz.min(0)) / 2
            ax.set_xlim(middle[side[0]] - half, middle[side[0]] + half)
            ax.set_ylim(middle[side[1]] - half, middle[side[1]] + half)
            ax.set_zlim(middle[up_axis] - half, middle[up_axis] + half)
            ax.set_box_aspect((1, 1, 1), zoom=1.4)
            ax.set_axis_off()
            ax.view_init(elev=20, azim=-60)
            ax.set_title(f"{title}\n{'true' if row == 0 else 'predicted'}", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
