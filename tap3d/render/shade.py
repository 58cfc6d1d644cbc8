"""Shading rasterized views into RGB, depth and mask.

Two appearances (``--shading``):

- ``textured`` (CLIP2Point, supplement section 5): the model of PyTorch3D's ``HardPhongShader``
  with a white background and white light: a point light at each view's camera centre (a head
  light) with PyTorch3D's default ambient 0.5, diffuse 0.3 and specular 0.2 and PyTorch3D's
  default material (ambient, diffuse and specular reflectance 1, shininess 64), so every view,
  the bottom one included, is lit from the front. ``color = (ambient + diffuse) * texel +
  specular``, one-sided (faces turned away get ambient only), interpolated vertex normals.
- ``plain`` (what the TAP authors pre-train on: MVCNN's ``plotMesh.m``, solid style): no texture,
  one white material, ``AmbientStrength`` 0.2, MATLAB's default ``DiffuseStrength`` 0.6,
  ``SpecularStrength`` 0, Phong (per-pixel) lighting, so the object is light grey with R = G = B.
  MATLAB lights back faces as if they faced the light (``BackFaceLighting`` ``reverselit``), so
  this shading is two-sided. MVCNN's ``camlight`` sits above and right of the camera; here the
  light stays at the camera centre, like ``textured``'s.

Two shaders (``--shader``): ``tap3d`` (the default) shades only covered pixels, in numpy, with
one copy of the mesh for all views (its vertex normals computed once); ``pytorch3d`` runs
``HardPhongShader`` on ``V`` copies of the mesh (``textured`` only). Both give the same images
within 1/255 on average (tests/render/test_objfile_and_shading.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

__all__ = ["RenderedViews", "ViewRenderer", "LIGHTS", "PLAIN_LIGHTS", "SHADINGS", "SHADERS",
           "lights_for", "shade_covered", "covered_normals"]

#: Light colours (RGB each) of the head light; recorded in the dataset's ``lights`` attribute.
LIGHTS = {
    "type": "point light at each camera centre",
    "ambient_color": [0.5, 0.5, 0.5],
    "diffuse_color": [0.3, 0.3, 0.3],
    "specular_color": [0.2, 0.2, 0.2],
}
#: ``plain``: MVCNN's ``plotMesh.m`` (AmbientStrength 0.2, SpecularStrength 0) with MATLAB's
#: default DiffuseStrength 0.6, white faces, lit on both sides.
PLAIN_LIGHTS = {
    "type": "point light at each camera centre, two-sided",
    "ambient_color": [0.2, 0.2, 0.2],
    "diffuse_color": [0.6, 0.6, 0.6],
    "specular_color": [0.0, 0.0, 0.0],
}
#: PyTorch3D's default ``Materials`` shininess, used by ``textured``.
SHININESS = 64.0
SHADINGS = ("textured", "plain")
SHADERS = ("tap3d", "pytorch3d")


def lights_for(shading: str) -> dict:
    """The light record of a shading (the dataset's ``lights`` attribute)."""
    return PLAIN_LIGHTS if shading == "plain" else LIGHTS


@dataclass
class RenderedViews:
    """The views of one object.

    Attributes:
        rgb: ``(V, S, S, 3)`` uint8, shaded colour; ``background`` where ``mask`` is false.
        mask: ``(V, S, S)`` bool, pixel covered by the object.
        depth: ``(V, S, S)`` float32, view-space z (object units) of the visible surface, 0 where
            not covered.
        normal: ``(V, S, S, 3)`` float32 unit normals of the visible surface in the world
            (normalized object) frame, turned towards the camera, 0 where not covered
            (:func:`covered_normals`); None unless asked for.
    """

    rgb: np.ndarray
    mask: np.ndarray
    depth: np.ndarray
    normal: np.ndarray | None = None


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` divided by their length (at least 1e-6, as ``F.normalize``)."""
    length = np.sqrt(np.einsum("mc,mc->m", x, x))
    return x / np.maximum(length, np.float32(1e-6))[:, None]


def shade_covered(mesh, face, bary, view, centres, shading: str = "textured",
                  to_light: np.ndarray | None = None) -> np.ndarray:
    """Colours of covered pixels with the head-light Phong model (see the module docstring).

    Args:
        mesh: a :class:`~tap3d.render.meshes.Mesh` (its appearance gives the texels).
        face: ``(M,)`` int64 face of each covered pixel.
        bary: ``(M, 3)`` float32 world-space barycentric coordinates in that face.
        view: ``(M,)`` int64 view of each pixel.
        centres: ``(V, 3)`` float32 camera centres (the light), world frame.
        shading: ``textured`` or ``plain``.
        to_light: ``(M, 3)`` float32 unit vectors from the surface to the light, when known
            (minus the camera ray's direction: the light is at the camera centre); computed
            from the interpolated surface point otherwise, as PyTorch3D does.

    Returns:
        ``(M, 3)`` float32 RGB, not clamped.
    """
    lights = lights_for(shading)
    ambient, diffuse, specular = (lights[k][0] for k in
                                  ("ambient_color", "diffuse_color", "specular_color"))
    corners = mesh.faces.numpy()[face]
    normal = _unit(np.einsum("mk,mkc->mc", bary, mesh.verts_normals()[corners], optimize=False))
    if to_light is None:
        point = np.einsum("mk,mkc->mc", bary, mesh.verts.numpy()[corners], optimize=False)
        to_light = _unit(centres[view] - point)
    light = to_light
    cos = np.einsum("mc,mc->m", normal, light)
    if shading == "plain":
        grey = (np.float32(ambient) + np.float32(diffuse) * np.abs(cos)).astype(np.float32)
        return np.repeat(grey[:, None], 3, 1)
    texel = mesh.textures.sample(face, bary)
    # reflect(light) . view with the light at the camera: 2 cos^2 - 1 (PyTorch3D's specular)
    glare = np.maximum(np.float32(2.0) * cos * np.abs(cos) - np.float32(1.0), 0.0) ** SHININESS
    lit = np.float32(ambient) + np.float32(diffuse) * np.maximum(cos, 0.0)
    return (lit[:, None] * texel + (np.float32(specular) * glare)[:, None]).astype(np.float32)


def covered_normals(mesh, face, bary, view, centres, direction=None) -> np.ndarray:
    """Unit surface normals of covered pixels, world frame, turned towards the camera.

    The face normal (right-hand rule on the winding, as the ``normals`` of the surface points):
    tap3d's meshes carry positions, faces and texture coordinates only, so there are no authored
    vertex normals to interpolate, and the smoothed normals the shading uses would bend the
    normals of flat faces near their edges. Windings are not consistent in ShapeNetCore, so a
    normal that faces away from the camera (along the viewing ray) is flipped.

    Args:
        mesh: a :class:`~tap3d.render.meshes.Mesh`.
        face, bary, view: ``(M,)`` face, ``(M, 3)`` barycentric coordinates and ``(M,)`` view of
            each covered pixel.
        centres: ``(V, 3)`` camera centres, world frame.
        direction: ``(M, 3)`` viewing direction of each pixel's ray when known (orthographic
            cameras, ray casting); else from the camera centre to the surface point.

    Returns:
        ``(M, 3)`` float32.
    """
    corners = mesh.faces.numpy()[face]
    tri = mesh.verts.numpy()[corners]  # (M, 3, 3)
    normal = _unit(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).astype(np.float32))
    if direction is None:
        direction = np.einsum("mk,mkc->mc", bary, tri, optimize=False) - centres[view]
    away = np.einsum("mc,mc->m", normal, direction) > 0
    normal[away] *= -1
    return normal


class ViewRenderer:
    """A rasterizer and a shader, like PyTorch3D's ``MeshRendererWithFragments``.

    Args:
        rasterizer: a backend from :mod:`tap3d.render.rasterize`.
        device: torch device of the rasterization and of the ``pytorch3d`` shader.
        background: background colour, RGB in [0, 1].
        shader: ``tap3d`` (covered pixels only) or ``pytorch3d`` (``HardPhongShader``).
        shading: ``textured`` or ``plain``.
        normal_maps: also return the views' surface normals (:attr:`RenderedViews.normal`).

    Raises:
        ValueError: an unknown shader or shading, or ``plain`` with the ``pytorch3d`` shader.
    """

    def __init__(self, rasterizer, device="cpu", background=(1.0, 1.0, 1.0), shader="tap3d",
                 shading="textured", normal_maps: bool = False):
        if shader not in SHADERS or shading not in SHADINGS:
            raise ValueError(f"shader must be one of {SHADERS} and shading one of {SHADINGS}; "
                             f"got {shader!r}, {shading!r}")
        if shader == "pytorch3d" and shading == "plain":
            raise ValueError("plain shading is computed by the tap3d shader only")
        self.rasterizer = rasterizer
        self.device = device
        self.background = tuple(float(c) for c in background)
        self.shader = shader
        self.shading = shading
        self.normal_maps = normal_maps

    def __call__(self, mesh, cameras, timings: dict | None = None) -> RenderedViews:
        """Render one mesh from every camera.

        Args:
            mesh: a :class:`tap3d.render.meshes.Mesh`.
            cameras: PyTorch3D cameras, a batch of ``V``.
            timings: when given, seconds spent are added under ``rasterize`` and ``shade``.

        Returns:
            :class:`RenderedViews` with ``V`` views.
        """
        import torch

        timings = {} if timings is None else timings
        with torch.no_grad():
            if self.shader == "pytorch3d":
                views = self._pytorch3d(mesh, cameras, timings)
                if self.normal_maps:  # from the same covering as the tap3d shader's
                    views.normal = self._normals(mesh, cameras, *self._covered(mesh, cameras))
                return views
            began = time.perf_counter()
            covered = self._covered(mesh, cameras)
            pixel, face, bary, depth, direction = covered
            centres = cameras.get_camera_center().cpu().numpy().astype(np.float32)
            shaded = time.perf_counter()
            timings["rasterize"] = timings.get("rasterize", 0.0) + shaded - began
        S = self.rasterizer.image_size
        view = pixel // (S * S)
        colors = shade_covered(mesh, face, bary, view, centres, self.shading,
                               None if direction is None else -direction)
        background = (np.array(self.background) * 255 + 0.5).astype(np.uint8)
        rgb = np.empty((len(cameras), S, S, 3), np.uint8)
        rgb[...] = background
        rgb.reshape(-1, 3)[pixel] = (np.clip(colors, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
        mask = np.zeros((len(cameras), S, S), bool)
        mask.reshape(-1)[pixel] = True
        zbuf = np.zeros((len(cameras), S, S), np.float32)
        zbuf.reshape(-1)[pixel] = depth
        normal = self._normals(mesh, cameras, *covered) if self.normal_maps else None
        timings["shade"] = timings.get("shade", 0.0) + time.perf_counter() - shaded
        return RenderedViews(rgb=rgb, mask=mask, depth=zbuf, normal=normal)

    def _normals(self, mesh, cameras, pixel, face, bary, depth, direction) -> np.ndarray:
        """``(V, S, S, 3)`` float32 world-frame normal maps of covered pixels
        (:func:`covered_normals`), 0 elsewhere."""
        S = self.rasterizer.image_size
        centres = cameras.get_camera_center().cpu().numpy().astype(np.float32)
        normal = np.zeros((len(cameras), S, S, 3), np.float32)
        normal.reshape(-1, 3)[pixel] = covered_normals(mesh, face, bary, pixel // (S * S),
                                                       centres, direction)
        return normal

    def _covered(self, mesh, cameras):
        """Covered pixels of every view: ``(pixel, face, bary, depth, direction or None)``
        (see ``EmbreeRasterizer.covered_hits``); from Fragments for other backends, with the
        viewing direction of orthographic cameras (parallel rays) and None for perspective."""
        if hasattr(self.rasterizer, "covered_hits"):
            return self.rasterizer.covered_hits(mesh.verts, mesh.faces, cameras)
        fragments = self.rasterizer.rasterize_views(mesh.verts, mesh.faces, cameras)
        pix = fragments.pix_to_face[..., 0].cpu().numpy().reshape(-1)
        pixel = np.flatnonzero(pix >= 0)
        bary = fragments.bary_coords[..., 0, :].cpu().numpy().reshape(-1, 3)[pixel]
        depth = fragments.zbuf[..., 0].cpu().numpy().reshape(-1)[pixel]
        direction = None
        if not cameras.is_perspective():  # view +Z in the world: column 2 of R (row vectors)
            S = self.rasterizer.image_size
            direction = cameras.R[:, :, 2].cpu().numpy().astype(np.float32)[pixel // (S * S)]
        return pixel, pix[pixel], bary, depth, direction

    def _pytorch3d(self, mesh, cameras, timings: dict) -> RenderedViews:
        """``HardPhongShader`` on ``V`` copies of the mesh, in batches of at most
        ``rasterizer.max_batch_faces`` faces in total (None: all views at once)."""
        import torch
        from pytorch3d.renderer import BlendParams, HardPhongShader, PointLights

        meshes = mesh.to_meshes(self.device)
        num_views = len(cameras)
        limit = getattr(self.rasterizer, "max_batch_faces", None)
        per_batch = num_views if limit is None else \
            max(1, min(num_views, limit // max(1, mesh.num_faces)))
        rgb, mask, depth = [], [], []
        for start in range(0, num_views, per_batch):
            began = time.perf_counter()
            index = torch.arange(start, min(start + per_batch, num_views))
            cams = cameras[index]
            batch = meshes.extend(len(index))
            fragments = self.rasterizer(batch, cams)
            shaded = time.perf_counter()
            lights = PointLights(device=self.device, location=cams.get_camera_center(),
                                 ambient_color=(LIGHTS["ambient_color"],),
                                 diffuse_color=(LIGHTS["diffuse_color"],),
                                 specular_color=(LIGHTS["specular_color"],))
            shader = HardPhongShader(device=self.device, cameras=cams, lights=lights,
                                     blend_params=BlendParams(background_color=self.background))
            images = shader(fragments, batch)[..., :3]
            covered = fragments.pix_to_face[..., 0] >= 0
            rgb.append((images.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu())
            mask.append(covered.cpu())
            depth.append(torch.where(covered, fragments.zbuf[..., 0], 0.0).cpu())
            timings["rasterize"] = timings.get("rasterize", 0.0) + shaded - began
            timings["shade"] = timings.get("shade", 0.0) + time.perf_counter() - shaded
        return RenderedViews(rgb=torch.cat(rgb).numpy(), mask=torch.cat(mask).numpy(),
                             depth=torch.cat(depth).numpy().astype(np.float32))
