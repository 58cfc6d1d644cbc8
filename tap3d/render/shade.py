"""Shading covered pixels into RGB; the renderer: a rasterizer then a shader.

Like PyTorch3D's ``MeshRendererWithFragments``, :class:`ViewRenderer` is nothing but a
rasterizer backend (:mod:`tap3d.render.rasterize`) and a shader: the backend gives the covered
pixels of one mesh seen by ``V`` cameras (:class:`~tap3d.render.covered.CoveredPixels`), the
shader colours them, and the renderer writes the mask, the depth and the normal maps from the
same covering, once for every backend and shader.

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

Two shaders (``--shader``, :data:`SHADERS`): ``tap3d`` (:class:`CoveredShader`, the default)
shades only covered pixels, in numpy, with one copy of the mesh for all views (its vertex normals
computed once); ``pytorch3d`` (:class:`PhongShader`) runs ``HardPhongShader`` on ``V`` copies of
the mesh (``textured`` only). Both give the same images within 1/255 on average
(tests/render/test_objfile_and_shading.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from tap3d.render.covered import MAX_BATCH_FACES, CoveredPixels, view_batches

__all__ = ["RenderedViews", "ViewRenderer", "Shader", "CoveredShader", "PhongShader", "LIGHTS",
           "PLAIN_LIGHTS", "SHADINGS", "SHADERS", "lights_for", "shade_covered",
           "covered_normals"]

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
        albedo: ``(V, S, S, 3)`` uint8 unlit sRGB surface colour (the appearance's
            ``sample``, no light), 0 where not covered; None unless asked for.
    """

    rgb: np.ndarray
    mask: np.ndarray
    depth: np.ndarray
    normal: np.ndarray | None = None
    albedo: np.ndarray | None = None


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


class Shader:
    """What every shader is: a shading and a background, and a callable
    ``(mesh, cameras, covered, image_size) -> rgb``.

    Args:
        shading: ``textured`` or ``plain`` (see the module docstring).
        background: background colour, RGB in [0, 1].

    Raises:
        ValueError: an unknown shading.
    """

    def __init__(self, shading: str = "textured", background=(1.0, 1.0, 1.0)):
        if shading not in SHADINGS:
            raise ValueError(f"shading must be one of {SHADINGS}; got {shading!r}")
        self.shading = shading
        self.background = tuple(float(c) for c in background)

    def __call__(self, mesh, cameras, covered: CoveredPixels, image_size: int) -> np.ndarray:
        """Colour the views of one mesh.

        Args:
            mesh: a :class:`~tap3d.render.meshes.Mesh`.
            cameras: PyTorch3D cameras, a batch of ``V``.
            covered: the covered pixels of those views (from the rasterizer backend).
            image_size: side ``S`` of the square images, pixels.

        Returns:
            ``(V, S, S, 3)`` uint8 RGB, ``background`` where no pixel is covered.
        """
        raise NotImplementedError


class CoveredShader(Shader):
    """tap3d's shader (``--shader tap3d``): :func:`shade_covered` on the covered pixels alone,
    in numpy, one copy of the mesh for all views; ``textured`` or ``plain``."""

    def __call__(self, mesh, cameras, covered: CoveredPixels, image_size: int) -> np.ndarray:
        S = image_size
        centres = cameras.get_camera_center().cpu().numpy().astype(np.float32)
        colors = shade_covered(mesh, covered.face, covered.bary, covered.pixel // (S * S),
                               centres, self.shading,
                               None if covered.direction is None else -covered.direction)
        rgb = np.empty((len(cameras), S, S, 3), np.uint8)
        rgb[...] = (np.array(self.background) * 255 + 0.5).astype(np.uint8)
        rgb.reshape(-1, 3)[covered.pixel] = (np.clip(colors, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
        return rgb


class PhongShader(Shader):
    """PyTorch3D's ``HardPhongShader`` (``--shader pytorch3d``) on ``V`` copies of the mesh, on
    the cameras' device, ``textured`` only, in batches of at most ``max_batch_faces`` faces
    (mesh faces x views) in total.

    Raises:
        ValueError: ``plain`` shading (computed by :class:`CoveredShader` only), or an unknown
            one.
    """

    def __init__(self, shading: str = "textured", background=(1.0, 1.0, 1.0),
                 max_batch_faces: int | None = MAX_BATCH_FACES):
        super().__init__(shading, background)
        if shading == "plain":
            raise ValueError("plain shading is computed by the tap3d shader only")
        self.max_batch_faces = max_batch_faces

    def __call__(self, mesh, cameras, covered: CoveredPixels, image_size: int) -> np.ndarray:
        import torch
        from pytorch3d.renderer import BlendParams, HardPhongShader, PointLights

        device = cameras.device
        meshes = mesh.to_meshes(device)
        rgb = []
        for views in view_batches(len(cameras), mesh.num_faces, self.max_batch_faces):
            cams = cameras[torch.arange(views.start, views.stop)]
            lights = PointLights(device=device, location=cams.get_camera_center(),
                                 ambient_color=(LIGHTS["ambient_color"],),
                                 diffuse_color=(LIGHTS["diffuse_color"],),
                                 specular_color=(LIGHTS["specular_color"],))
            shader = HardPhongShader(device=device, cameras=cams, lights=lights,
                                     blend_params=BlendParams(background_color=self.background))
            fragments = _fragments(covered, views, mesh.num_faces, image_size, device)
            images = shader(fragments, meshes.extend(len(views)))[..., :3]
            rgb.append((images.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu())
        return torch.cat(rgb).numpy()


def _fragments(covered: CoveredPixels, views: range, num_faces: int, S: int, device):
    """PyTorch3D ``Fragments`` ``(n, S, S, 1)`` of the views ``views`` (``n`` of them) from their
    covered pixels, faces in packed indexing of ``n`` copies of the mesh (view ``i``'s faces
    offset by ``i * num_faces``), -1 where not covered; ``dists`` None (no shader reads it)."""
    import torch
    from pytorch3d.renderer.mesh.rasterizer import Fragments

    P, n = S * S, len(views)
    lo, hi = np.searchsorted(covered.pixel, [views.start * P, views.stop * P])  # ascending
    pixel = covered.pixel[lo:hi] - views.start * P
    pix = np.full(n * P, -1, np.int64)
    pix[pixel] = pixel // P * num_faces + covered.face[lo:hi]
    zbuf = np.full(n * P, -1, np.float32)
    zbuf[pixel] = covered.depth[lo:hi]
    bary = np.full((n * P, 3), -1, np.float32)
    bary[pixel] = covered.bary[lo:hi]
    shape = (n, S, S, 1)
    return Fragments(pix_to_face=torch.from_numpy(pix).reshape(shape).to(device),
                     zbuf=torch.from_numpy(zbuf).reshape(shape).to(device),
                     bary_coords=torch.from_numpy(bary).reshape(shape + (3,)).to(device),
                     dists=None)


#: The ``--shader`` settings (recorded in the dataset's ``shader`` attribute) and their classes.
SHADERS = {"tap3d": CoveredShader, "pytorch3d": PhongShader}


class ViewRenderer:
    """A rasterizer and a shader, like PyTorch3D's ``MeshRendererWithFragments``.

    Args:
        rasterizer: a backend from :mod:`tap3d.render.rasterize` (its ``covered``).
        shader: a :class:`Shader`; None: ``CoveredShader()`` (``tap3d``, ``textured``, white).
        normal_maps: also return the views' surface normals (:attr:`RenderedViews.normal`).
        albedo_maps: also return the views' unlit colour (:attr:`RenderedViews.albedo`).
    """

    def __init__(self, rasterizer, shader: Shader | None = None, normal_maps: bool = False,
                 albedo_maps: bool = False):
        self.rasterizer = rasterizer
        self.shader = CoveredShader() if shader is None else shader
        self.normal_maps = normal_maps
        self.albedo_maps = albedo_maps

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
        S, V = self.rasterizer.image_size, len(cameras)
        with torch.no_grad():
            began = time.perf_counter()
            cut = mesh.textures.cutout if getattr(mesh.textures, "has_cutout", False) else None
            covered = self.rasterizer.covered(mesh.verts, mesh.faces, cameras, cut=cut)
            shaded = time.perf_counter()
            rgb = self.shader(mesh, cameras, covered, S)
        mask = np.zeros((V, S, S), bool)
        mask.reshape(-1)[covered.pixel] = True
        depth = np.zeros((V, S, S), np.float32)
        depth.reshape(-1)[covered.pixel] = covered.depth
        normal = self._normals(mesh, cameras, covered) if self.normal_maps else None
        albedo = None
        if self.albedo_maps:
            albedo = np.zeros((V, S, S, 3), np.uint8)
            colour = mesh.textures.sample(covered.face, covered.bary)
            albedo.reshape(-1, 3)[covered.pixel] = (np.clip(colour, 0, 1) * 255 + 0.5
                                                    ).astype(np.uint8)
        timings["rasterize"] = timings.get("rasterize", 0.0) + shaded - began
        timings["shade"] = timings.get("shade", 0.0) + time.perf_counter() - shaded
        return RenderedViews(rgb=rgb, mask=mask, depth=depth, normal=normal, albedo=albedo)

    def _normals(self, mesh, cameras, covered: CoveredPixels) -> np.ndarray:
        """``(V, S, S, 3)`` float32 world-frame normal maps of covered pixels
        (:func:`covered_normals`), 0 elsewhere."""
        S = self.rasterizer.image_size
        centres = cameras.get_camera_center().cpu().numpy().astype(np.float32)
        normal = np.zeros((len(cameras), S, S, 3), np.float32)
        normal.reshape(-1, 3)[covered.pixel] = covered_normals(
            mesh, covered.face, covered.bary, covered.pixel // (S * S), centres,
            covered.direction)
        return normal
