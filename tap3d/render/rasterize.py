"""Rasterizer backends and what they hand the shaders.

Following PyTorch3D's ``MeshRenderer`` design (``rasterizer.py``/``shader.py``), a renderer is a
rasterizer then a shader, with one plain data type between them, so that shading, depth, masks
and normal maps are written once and any backend plugs in (:class:`~tap3d.render.shade.
ViewRenderer`). Every backend gives:

- ``covered(verts, faces, cameras) ->`` :class:`~tap3d.render.covered.CoveredPixels`: one mesh seen by ``N`` cameras, the
  covered pixels alone (sparse; what the renderer and its shaders read);
- ``(meshes, cameras) -> Fragments``: PyTorch3D ``Fragments`` (a NamedTuple of ``pix_to_face``
  ``(N, S, S, K)`` int64 in packed face indexing with -1 for background, ``zbuf``
  ``(N, S, S, K)`` view-space z, ``bary_coords`` ``(N, S, S, K, 3)`` and ``dists``
  ``(N, S, S, K)``), mesh ``i`` seen by camera ``i``, as PyTorch3D's ``MeshRasterizer`` gives;
- ``rasterize_views(verts, faces, cameras) -> Fragments``: one mesh seen by ``N`` cameras, with
  no per-view copy where the backend allows it (Embree; PyTorch3D's rasterizer needs copies).

All backends use ``K = 1`` face per pixel and no blur: the nearest face through each pixel
centre. The Embree backend lives in :mod:`tap3d.render.embree`; PyTorch3D's is here.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from tap3d.render.covered import CUT_LAYERS, MAX_BATCH_FACES, CoveredPixels, view_batches
from tap3d.render.embree import EmbreeRasterizer

__all__ = ["Rasterizer", "PyTorch3DRasterizer", "EmbreeRasterizer", "BACKENDS",
           "make_rasterizer", "resolve_backend"]

#: Backend names; ``auto`` resolves to ``pytorch3d`` on CUDA and ``embree`` on CPU.
BACKENDS = ("auto", "pytorch3d", "embree")
#: Blur radius of the PyTorch3D backend (see :class:`PyTorch3DRasterizer`).
EDGE_EPSILON = 1e-12


class Rasterizer(Protocol):
    """A rasterizer backend (see the module docstring).

    Attributes:
        name: the backend's name, recorded in the dataset's ``backend`` attribute.
        image_size: side ``S`` of the square images, pixels.
        max_batch_faces: the most faces (mesh faces x views) to rasterize in one call; None
            for no limit.
    """

    name: str
    image_size: int
    max_batch_faces: int | None

    def covered(self, verts, faces, cameras, cut=None) -> CoveredPixels:
        """One mesh (``(V, 3)`` float32 and ``(F, 3)`` int64 tensors) seen by ``N`` cameras:
        its covered pixels; surface points that ``cut(face, bary)`` marks are seen through."""

    def __call__(self, meshes, cameras):  # -> pytorch3d.renderer.mesh.rasterizer.Fragments
        """Rasterize ``N`` meshes, mesh ``i`` seen by camera ``i``, at the backend's image size."""

    def rasterize_views(self, verts, faces, cameras):  # -> Fragments
        """Rasterize one mesh (``(V, 3)`` float32 and ``(F, 3)`` int64 tensors) seen by ``N``
        cameras: Fragments of ``N`` views whose ``pix_to_face`` indexes that mesh's faces
        (``0..F-1``, -1 background); ``dists`` may be None."""


class PyTorch3DRasterizer:
    """PyTorch3D's ``MeshRasterizer`` with one face per pixel and no blur (but edge pixels).

    On CPU PyTorch3D rasterizes naively (O(pixels x faces)); on CUDA it uses its coarse-to-fine
    binning.

    Args:
        image_size: side ``S`` of the square images, pixels.
        device: ``"cpu"`` or a CUDA device.
    """

    name = "pytorch3d"
    #: memory bound of a batch: mesh faces x views (:meth:`rasterize_views` splits the views)
    max_batch_faces = MAX_BATCH_FACES

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

    def __call__(self, meshes, cameras, faces_per_pixel: int = 1):
        import dataclasses

        from pytorch3d.renderer import MeshRasterizer

        settings = self.settings if faces_per_pixel == 1 else \
            dataclasses.replace(self.settings, faces_per_pixel=faces_per_pixel)
        return MeshRasterizer(cameras=cameras, raster_settings=settings)(meshes)

    def rasterize_views(self, verts, faces, cameras, faces_per_pixel: int = 1):
        """One mesh seen by every camera, in batches of ``max_batch_faces`` (see
        :class:`Rasterizer`); PyTorch3D needs a copy of the mesh per view. ``faces_per_pixel``
        ``K``: the nearest ``K`` faces of each pixel, nearest first."""
        import torch
        from pytorch3d.renderer.mesh.rasterizer import Fragments
        from pytorch3d.structures import Meshes

        device = cameras.device
        mesh = Meshes(verts=[verts.to(device)], faces=[faces.to(device)])
        F = faces.shape[0]
        parts = [self(mesh.extend(len(views)), cameras[torch.arange(views.start, views.stop,
                                                                     device=device)],
                      faces_per_pixel)
                 for views in view_batches(len(cameras), F,
                                           self.max_batch_faces // faces_per_pixel)]
        pix = torch.cat([p.pix_to_face for p in parts])
        return Fragments(pix_to_face=torch.where(pix >= 0, pix % F, -1),
                         zbuf=torch.cat([p.zbuf for p in parts]),
                         bary_coords=torch.cat([p.bary_coords for p in parts]),
                         dists=torch.cat([p.dists for p in parts]))

    def covered(self, verts, faces, cameras, cut=None) -> CoveredPixels:
        """The covered pixels of :meth:`rasterize_views` (see :class:`CoveredPixels`), with the
        viewing direction of orthographic cameras (parallel rays: each view's +Z) and None for
        perspective ones. ``cut(face, bary) -> (M,) bool``: surface points to see through
        (``alphaMode: MASK``); each pixel then shows the nearest of its :data:`CUT_LAYERS`
        nearest faces that is not cut."""
        if cut is None:
            fragments = self.rasterize_views(verts, faces, cameras)
            pix = fragments.pix_to_face[..., 0].cpu().numpy().reshape(-1)
            pixel = np.flatnonzero(pix >= 0)
            bary = fragments.bary_coords[..., 0, :].cpu().numpy().reshape(-1, 3)[pixel]
            depth = fragments.zbuf[..., 0].cpu().numpy().reshape(-1)[pixel]
            pix = pix[pixel]
        else:
            fragments = self.rasterize_views(verts, faces, cameras, CUT_LAYERS)
            layers = fragments.pix_to_face.cpu().numpy().reshape(-1, CUT_LAYERS)
            barys = fragments.bary_coords.cpu().numpy().reshape(-1, CUT_LAYERS, 3)
            keep = layers >= 0
            where = np.nonzero(keep)
            keep[where] = ~cut(layers[where], barys[where])
            pixel = np.flatnonzero(keep.any(1))
            layer = keep[pixel].argmax(1)
            pix, bary = layers[pixel, layer], barys[pixel, layer]
            depth = fragments.zbuf.cpu().numpy().reshape(-1, CUT_LAYERS)[pixel, layer]
        direction = None
        if not cameras.is_perspective():  # view +Z in the world: column 2 of R (row vectors)
            S = self.image_size
            direction = cameras.R[:, :, 2].cpu().numpy().astype(np.float32)[pixel // (S * S)]
        return CoveredPixels(pixel, pix, bary, depth, direction)


def resolve_backend(backend: str, device) -> str:
    """``auto`` -> ``pytorch3d`` on a CUDA device, ``embree`` on CPU; other names unchanged."""
    import torch

    if backend != "auto":
        return backend
    return "pytorch3d" if torch.device(device).type == "cuda" else "embree"


def make_rasterizer(backend: str, image_size: int, device="cpu", threads: int = 0) -> Rasterizer:
    """Build a rasterizer backend by name (``auto`` resolved by :func:`resolve_backend`).

    Args:
        backend: a name from :data:`BACKENDS`.
        image_size: side of the square images, pixels.
        device: torch device of the meshes and cameras.
        threads: CPU threads of the ``embree`` backend (0: all cores).

    Raises:
        ValueError: unknown backend name.
    """
    backend = resolve_backend(backend, device)
    if backend == "pytorch3d":
        return PyTorch3DRasterizer(image_size, device)
    if backend == "embree":
        return EmbreeRasterizer(image_size, threads)
    raise ValueError(f"unknown rasterizer backend {backend!r}; choose one of {', '.join(BACKENDS)}")
