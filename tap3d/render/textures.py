"""The colour of a mesh's surface: texels for the covered pixels of its views.

Every appearance answers ``sample(face, bary)``: the diffuse colour (RGB in [0, 1]) at points
given by a face index and barycentric coordinates, so that shading touches covered pixels only,
once per object, without per-view copies of the mesh. ``to_pytorch3d()`` gives the same colours
as a PyTorch3D texture for ``HardPhongShader`` (``--shader pytorch3d``).

- :class:`MaterialTextures` (``--textures uv``, the default): per-material lookup at source
  resolution in the mesh's own images (several per mesh, JPG or PNG, RGBA and grayscale read as
  RGB), bilinear, with repeat or clamp wrapping per material.
- :class:`FaceAtlas` (``--textures atlas``): PyTorch3D's ``R`` x ``R`` texels per face, as
  CLIP2Point renders ShapeNetCore (kept for parity; detail is lost and seams show).
- :class:`VertexColors`: colours per vertex (OFF/PLY/GLB files, or one colour everywhere).

Colour rules follow PyTorch3D's ``load_obj`` so that both paths agree: a material with an image
shows the image (``Kd`` is not multiplied in), one without shows ``Kd`` (white when it has no
``Kd``), and faces without a material show :data:`DEFAULT_COLOR`.
"""

from __future__ import annotations

import os

import numpy as np

from tap3d.render.limits import decode_image

__all__ = ["TEXTURES", "DEFAULT_COLOR", "VertexColors", "FaceAtlas", "MaterialTextures",
           "read_image", "material_textures", "atlas_textures"]

#: OBJ texture modes (``--textures``): per-material images at source resolution
#: (:class:`MaterialTextures`), or PyTorch3D's per-face atlas (:class:`FaceAtlas`, CLIP2Point's
#: renders). :func:`tap3d.render.meshes.load_mesh` also takes ``none``.
TEXTURES = ("uv", "atlas")
#: Diffuse colour (RGB in [0, 1]) of faces that have no material, texture or colour.
DEFAULT_COLOR = (0.7, 0.7, 0.7)


def _interpolate(values: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """``(M, 3, C)`` corner values weighted by ``(M, 3)`` barycentrics -> ``(M, C)``."""
    return np.einsum("mk,mkc->mc", bary, values, optimize=False)


class VertexColors:
    """Colours per vertex, interpolated with the barycentric coordinates.

    Args:
        faces: ``(F, 3)`` int64 vertex indices.
        colors: ``(V, 3)`` float32 RGB in [0, 1].
    """

    def __init__(self, faces: np.ndarray, colors: np.ndarray):
        self.faces = faces
        self.colors = np.ascontiguousarray(colors, dtype=np.float32)

    def sample(self, face: np.ndarray, bary: np.ndarray) -> np.ndarray:
        """``(M,)`` face indices and ``(M, 3)`` float32 barycentrics -> ``(M, 3)`` float32 RGB."""
        return _interpolate(self.colors[self.faces[face]], bary)

    def to_pytorch3d(self):
        import torch
        from pytorch3d.renderer import TexturesVertex

        return TexturesVertex(verts_features=[torch.from_numpy(self.colors)])


class FaceAtlas:
    """PyTorch3D's texture atlas: ``(F, R, R, 3)`` float32 texels per face, sampled as
    ``TexturesAtlas.sample_textures`` does (the texel of the barycentric cell, no filtering)."""

    def __init__(self, atlas: np.ndarray):
        self.atlas = np.ascontiguousarray(atlas, dtype=np.float32)

    def sample(self, face: np.ndarray, bary: np.ndarray) -> np.ndarray:
        """``(M,)`` face indices and ``(M, 3)`` float32 barycentrics -> ``(M, 3)`` float32 RGB."""
        R = self.atlas.shape[1]
        w01 = bary[:, :2]
        cell = np.clip((w01 * R).astype(np.int64), 0, R - 1)
        below = (w01.sum(1) * R - cell.sum(1)) <= 1.0
        x = np.where(below, cell[:, 0], R - 1 - cell[:, 0])
        y = np.where(below, cell[:, 1], R - 1 - cell[:, 1])
        return self.atlas[face, y, x]

    def to_pytorch3d(self):
        import torch
        from pytorch3d.renderer import TexturesAtlas

        return TexturesAtlas(atlas=[torch.from_numpy(self.atlas)])


class MaterialTextures:
    """Per-material colours and images, looked up at the images' own resolution.

    Args:
        faces: ``(F, 3)`` int64 vertex indices.
        verts_uvs: ``(T, 2)`` float32 texture coordinates (u right, v up).
        faces_uvs: ``(F, 3)`` int64 indices into ``verts_uvs``; -1 where a corner has none (the
            face then shows its material's colour).
        face_slot: ``(F,)`` int64 material slot of each face.
        colors: ``(K, 3)`` float32 colour of each slot, RGB in [0, 1].
        images: ``K`` entries, an ``(H, W, 3)`` uint8 image or None (the slot shows its colour).
        wraps: ``K`` entries, ``"repeat"`` or ``"clamp"``.

    Sampling is bilinear. UVs in [0, 1] index the image as PyTorch3D's ``TexturesUV`` does
    (``align_corners=True``: 0 and 1 are the centres of the edge texels, v = 0 the bottom row);
    outside [0, 1] ``repeat`` drops the integer part (OpenGL ``GL_REPEAT``, ShapeNetCore's
    convention) and ``clamp`` clamps.
    """

    def __init__(self, faces, verts_uvs, faces_uvs, face_slot, colors, images, wraps):
        self.faces = faces
        self.verts_uvs = np.ascontiguousarray(verts_uvs, dtype=np.float32)
        self.faces_uvs = faces_uvs
        self.face_slot = face_slot
        self.colors = np.ascontiguousarray(colors, dtype=np.float32)
        self.images = images
        self.wraps = wraps
        self._all_uvs = bool((faces_uvs >= 0).all())
        # one lookup per distinct (image, wrap): materials sharing an image are sampled together
        self._lookups, slot_lookup, seen = [], [], {}
        for image, wrap in zip(images, wraps):
            key = None if image is None else (id(image), wrap)
            if key is not None and key not in seen:
                seen[key] = len(self._lookups)
                self._lookups.append((image, wrap))
            slot_lookup.append(-1 if key is None else seen[key])
        self._face_lookup = np.asarray(slot_lookup, np.int16)[face_slot]
        uniform = self._face_lookup.size and self._face_lookup.min() == self._face_lookup.max()
        self._uniform = int(self._face_lookup[0]) if uniform else -1

    def sample(self, face: np.ndarray, bary: np.ndarray) -> np.ndarray:
        """``(M,)`` face indices and ``(M, 3)`` float32 barycentrics -> ``(M, 3)`` float32 RGB."""
        if not self._lookups:
            return self.colors[self.face_slot[face]]
        if self._uniform >= 0 and self._all_uvs:  # every face samples one image
            image, wrap = self._lookups[self._uniform]
            return _bilinear(image, _interpolate(self.verts_uvs[self.faces_uvs[face]], bary), wrap)
        out = self.colors[self.face_slot[face]]
        if self._uniform >= 0:
            groups = [(self._uniform, np.arange(len(face)))]
        else:
            lookup = self._face_lookup[face]
            order = np.argsort(lookup, kind="stable")  # radix sort of int16 keys
            bounds = np.searchsorted(lookup[order], np.arange(-1, len(self._lookups) + 1))
            groups = [(k, order[bounds[k + 1]:bounds[k + 2]]) for k in range(len(self._lookups))]
        for k, pick in groups:
            corners = self.faces_uvs[face[pick]]
            if not self._all_uvs:
                keep = (corners >= 0).all(1)
                pick, corners = pick[keep], corners[keep]
            if pick.size:
                image, wrap = self._lookups[k]
                uv = _interpolate(self.verts_uvs[corners], bary[pick])
                out[pick] = _bilinear(image, uv, wrap)
        return out

    def single_image(self) -> bool:
        """One image on every face with UVs inside [0, 1]: what ``TexturesUV`` samples exactly."""
        return (len(self._lookups) == 1 and self._uniform == 0 and self._all_uvs
                and self.verts_uvs.size > 0
                and float(self.verts_uvs.min()) >= 0.0 and float(self.verts_uvs.max()) <= 1.0)

    def to_pytorch3d(self):
        """``TexturesUV`` for one image on every face, else
        :class:`~tap3d.render.sampled.SampledTextures` (the same lookup inside PyTorch3D)."""
        import torch
        from pytorch3d.renderer import TexturesUV

        if not self.single_image():
            from tap3d.render.sampled import SampledTextures

            return SampledTextures(self, len(self.faces))
        image = torch.tensor(self._lookups[0][0], dtype=torch.float32) / 255.0
        return TexturesUV(maps=[image], faces_uvs=[torch.from_numpy(self.faces_uvs)],
                          verts_uvs=[torch.from_numpy(self.verts_uvs)])


def _bilinear(image: np.ndarray, uv: np.ndarray, wrap: str) -> np.ndarray:
    """Bilinear lookup of ``(M, 2)`` UVs in an ``(H, W, 3)`` uint8 image -> ``(M, 3)`` float32."""
    H, W = image.shape[:2]
    if wrap == "repeat":
        outside = (uv < 0.0) | (uv > 1.0)
        if outside.any():
            uv = np.where(outside, uv - np.floor(uv), uv)
    else:
        uv = np.clip(uv, 0.0, 1.0)
    x = uv[:, 0] * np.float32(W - 1)
    y = (np.float32(1.0) - uv[:, 1]) * np.float32(H - 1)
    x0 = np.minimum(np.floor(x), np.float32(max(W - 2, 0)))
    y0 = np.minimum(np.floor(y), np.float32(max(H - 2, 0)))
    wx, wy = (x - x0)[:, None], (y - y0)[:, None]
    i00 = y0.astype(np.int64) * W + x0.astype(np.int64)
    dx, dy = min(1, W - 1), min(1, H - 1) * W
    flat = image.reshape(-1, 3)

    def at(index):
        return flat.take(index, axis=0).astype(np.float32)

    top = at(i00)
    top += (at(i00 + dx) - top) * wx
    bottom = at(i00 + dy)
    bottom += (at(i00 + dy + dx) - bottom) * wx
    top += (bottom - top) * wy
    top *= np.float32(1 / 255)
    return top


def read_image(path: str, mesh_path: str | None = None, limits=None) -> np.ndarray:
    """An image file as ``(H, W, 3)`` uint8 RGB (alpha dropped, grayscale and palettes expanded,
    as PyTorch3D reads texture images), within the object's ``limits``
    (:func:`tap3d.render.limits.decode_image`).

    Raises:
        OSError: the file is missing or not an image Pillow reads.
        MeshError: over the object's ``max_texture_pixels``.
    """
    return decode_image(path, "RGB", mesh_path or path, os.path.basename(path), limits)


def material_textures(obj, notes: list[str], path: str, limits=None) -> MaterialTextures:
    """:class:`MaterialTextures` of an :class:`~tap3d.render.objfile.ObjData`, reading each
    image file once within ``limits`` (:class:`~tap3d.render.limits.MeshLimits`). Missing or
    unreadable images are noted and their material's colour used."""
    images, cache = [], {}
    for material in obj.materials:
        image = None
        if material.image is not None:
            if material.image not in cache:
                try:
                    cache[material.image] = read_image(material.image, path, limits)
                except OSError as error:
                    cache[material.image] = None
                    notes.append(f"{path}: texture image {material.image} could not be read "
                                 f"({type(error).__name__}); material colour used instead")
            image = cache[material.image]
        images.append(image)
    colors = [m.diffuse if m.diffuse is not None else (1.0, 1.0, 1.0) for m in obj.materials]
    slot = np.where(obj.materials_idx >= 0, obj.materials_idx, len(obj.materials))
    return MaterialTextures(obj.faces, obj.verts_uvs, obj.faces_uvs, slot,
                            np.array(colors + [DEFAULT_COLOR], np.float32).reshape(-1, 3),
                            images + [None], [m.wrap for m in obj.materials] + ["repeat"])


def atlas_textures(obj, size: int, notes: list[str], path: str, limits=None):
    """``--textures atlas`` from an :class:`~tap3d.render.objfile.ObjData`: PyTorch3D's
    ``make_mesh_texture_atlas`` (``size`` x ``size`` texels per face, repeat wrapping), or the
    exact :class:`MaterialTextures` for one image on every face (as before this option)."""
    import torch
    from pytorch3d.io.mtl_io import make_mesh_texture_atlas

    uv = material_textures(obj, notes, path, limits)
    if uv.single_image():
        return uv
    names = np.array([m.name for m in obj.materials] + [""], dtype=object)[uv.face_slot]
    properties = {m.name: {"diffuse_color": torch.tensor(m.diffuse)} if m.diffuse else {}
                  for m in obj.materials}
    maps = {m.name: torch.tensor(image, dtype=torch.float32) / 255.0
            for m, image in zip(obj.materials, uv.images) if image is not None}
    atlas = make_mesh_texture_atlas(properties, maps, names, torch.from_numpy(obj.faces_uvs),
                                    torch.from_numpy(obj.verts_uvs), size, "repeat")
    atlas[torch.from_numpy(obj.materials_idx < 0)] = torch.tensor(DEFAULT_COLOR)
    return FaceAtlas(atlas.clamp(0.0, 1.0).numpy())
