"""Per-object budgets, so that one huge file fails alone instead of stalling its shard
(Objaverse holds files of hundreds of MB and textures of 16k x 16k), and the one image decoder
of mesh textures (OBJ's image files, glTF's images), which enforces them.

Every limit is a build setting (:class:`tap3d.buildconfig.BuildConfig`: ``max_file_mb``,
``max_faces``, ``max_texture_pixels``, ``max_texture_size``); None means no limit. Going over
``max_file_mb``, ``max_faces`` or ``max_texture_pixels`` is a
:class:`~tap3d.render.objfile.MeshError` naming the file, the size and the setting (the build
records the object as failed with it); ``max_texture_size`` downsamples larger images (Pillow's
area-averaging ``reduce`` and a Lanczos resize to the exact size) before they are used.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field

import numpy as np

from tap3d.render.errors import MeshError

__all__ = ["MeshLimits", "BudgetError", "decode_image"]


class BudgetError(MeshError):
    """An object over one of its :class:`MeshLimits` (a :class:`MeshError`: it fails the
    object, never just one of its textures)."""


@dataclass
class MeshLimits:
    """The budgets of one object (None: no limit), and the texture pixels it has spent.

    Attributes:
        max_file_mb: largest mesh file, MB (2^20 bytes).
        max_faces: most triangles.
        max_texture_pixels: most texture pixels over all of the object's images, counted at
            their source resolution.
        max_texture_size: longest side an image keeps, pixels; larger ones are downsampled.
        spent: texture pixels counted so far.
    """

    max_file_mb: float | None = None
    max_faces: int | None = None
    max_texture_pixels: int | None = None
    max_texture_size: int | None = None
    spent: int = field(default=0, compare=False)

    def check_file(self, path: str) -> None:
        """Raise :class:`MeshError` when the file at ``path`` is over ``max_file_mb``."""
        if self.max_file_mb is not None:
            size = os.path.getsize(path) / 2**20
            if size > self.max_file_mb:
                raise BudgetError(path, f"file of {size:.1f} MB, over max_file_mb "
                                      f"{self.max_file_mb:g}")

    def check_faces(self, path: str, count: int) -> None:
        """Raise :class:`MeshError` when ``count`` triangles are over ``max_faces``."""
        if self.max_faces is not None and count > self.max_faces:
            raise BudgetError(path, f"{count:,} faces, over max_faces {self.max_faces:,}")


def decode_image(source: str | bytes, mode: str, path: str, name: str,
                 limits: MeshLimits | None = None) -> np.ndarray:
    """An image file or its bytes, decoded by Pillow to ``(H, W, C)`` uint8 in ``mode``
    (``RGB``: alpha dropped, grayscale and palettes expanded, as PyTorch3D reads texture images;
    ``RGBA``), within ``limits``: its pixels are counted before it is decoded, then it is
    downsampled to ``max_texture_size``.

    Args:
        source: a file path or the encoded bytes.
        mode: ``RGB`` or ``RGBA``.
        path: the mesh file (named in errors); name: the image (named in errors).
        limits: the object's budgets (its ``spent`` grows by this image's pixels).

    Raises:
        OSError: the file is missing or not an image Pillow decodes.
        BudgetError: the object's texture pixels go over ``max_texture_pixels``.
    """
    from PIL import Image

    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
        if limits is not None:
            limits.spent += image.width * image.height
            if limits.max_texture_pixels is not None and \
                    limits.spent > limits.max_texture_pixels:
                raise BudgetError(path, f"texture {name} ({image.width} x {image.height}) brings "
                                      f"its images to {limits.spent:,} pixels, over "
                                      f"max_texture_pixels {limits.max_texture_pixels:,}")
        converted = image.convert(mode)
    side = limits.max_texture_size if limits is not None else None
    if side is not None and max(converted.size) > side:
        scale = side / max(converted.size)
        target = (max(1, round(converted.width * scale)), max(1, round(converted.height * scale)))
        factor = max(1, int(1 / scale))
        if factor > 1:  # area-average whole factors first: no aliasing, little work
            converted = converted.reduce(factor)
        converted = converted.resize(target, Image.Resampling.LANCZOS)
    return np.asarray(converted, dtype=np.uint8)
