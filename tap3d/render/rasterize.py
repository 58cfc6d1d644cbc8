"""Rasterizer backends. Every backend is a callable ``(meshes, cameras) -> Fragments``.

Following PyTorch3D's ``MeshRenderer`` design (``rasterizer.py``/``shader.py``), shading, depth
and masks are computed once from PyTorch3D ``Fragments`` (a NamedTuple of ``pix_to_face``
``(N, S, S, K)`` int64 in packed face indexing with -1 for background, ``zbuf`` ``(N, S, S, K)``
view-space z, ``bary_coords`` ``(N, S, S, K, 3)`` and ``dists`` ``(N, S, S, K)``), so any backend
that produces them plugs in. All backends here use ``K = 1`` face per pixel and no blur: the
nearest face through each pixel centre.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Rasterizer", "PyTorch3DRasterizer", "BACKENDS", "make_rasterizer"]

BACKENDS = ("pytorch3d",)
#: Blur radius of the PyTorch3D backend (see :class:`PyTorch3DRasterizer`).
EDGE_EPSILON = 1e-12


class Rasterizer(Protocol):
    """A rasterizer backend.

    Attributes:
        name: the backend's name, recorded in the dataset's ``backend`` attribute.
    """

    name: str

    def __call__(self, meshes, cameras):  # -> pytorch3d.renderer.mesh.rasterizer.Fragments
        """Rasterize ``N`` meshes, mesh ``i`` seen by camera ``i``, at the backend's image size."""


class PyTorch3DRasterizer:
    """PyTorch3D's ``MeshRasterizer`` with one face per pixel and no blur (but edge pixels).

    On CPU PyTorch3D rasterizes naively (O(pixels x faces)); on CUDA it uses its coarse-to-fine
    binning.

    Args:
        image_size: side ``S`` of the square images, pixels.
        device: ``"cpu"`` or a CUDA device.
    """

    name = "pytorch3d"

    def __init__(self, image_size: int, device="cpu"):
        from pytorch3d.renderer import RasterizationSettings

        import torch

        on_cpu = torch.device(device).type == "cpu"
        self.image_size = image_size
        self.settings = RasterizationSettings(
            image_size=image_size,
            # A blur radius of 1e-12 (NDC units squared) keeps pixel centres that lie exactly on
            # an edge shared by two faces: with 0 PyTorch3D drops them from both faces, which
            # cracks axis-aligned boxes along their diagonals in the orthogonal views.
            blur_radius=EDGE_EPSILON,
            faces_per_pixel=1,
            bin_size=0 if on_cpu else None,
            cull_backfaces=False,
        )

    def __call__(self, meshes, cameras):
        from pytorch3d.renderer import MeshRasterizer

        return MeshRasterizer(cameras=cameras, raster_settings=self.settings)(meshes)


def make_rasterizer(backend: str, image_size: int, device="cpu") -> Rasterizer:
    """Build a rasterizer backend by name.

    Raises:
        ValueError: unknown backend name.
    """
    if backend == "pytorch3d":
        return PyTorch3DRasterizer(image_size, device)
    raise ValueError(f"unknown rasterizer backend {backend!r}; choose one of {', '.join(BACKENDS)}")
