"""glTF's base colour as a tap3d appearance: ``sample(face, bary)`` of each covered pixel, like
:mod:`tap3d.render.textures`' OBJ appearances, so that it is shaded exactly as OBJ colours are.

glTF 2.0 (section 3.9.2) defines the base colour in linear space as
``decode_sRGB(baseColorTexture) x baseColorFactor x COLOR_0``; :class:`BaseColorTextures`
computes that per pixel and encodes it to sRGB (the space of OBJ texels and of the stored
views). Texture lookups follow the GPU convention glTF viewers use: texel centres at
``(i + 0.5) / W``, ``v`` down, bilinear between the four nearest texels decoded to linear first
(as sRGB textures are filtered), ``repeat``, ``clamp`` or ``mirror`` wrapping per axis.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BaseColorTextures", "srgb_to_linear", "linear_to_srgb"]


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear (IEC 61966-2-1), float32."""
    c = np.asarray(c, np.float32)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Linear values -> sRGB-encoded in [0, 1] (clamped first), float32."""
    x = np.clip(np.asarray(x, np.float32), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x,
                    1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


#: Linear value of each 8-bit sRGB code, and of each 8-bit linear code (alpha).
_DECODE = srgb_to_linear(np.arange(256, dtype=np.float32) / 255.0)
_LINEAR = np.arange(256, dtype=np.float32) / 255.0


def _wrap_index(i: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Texel indices ``i`` (any integers) inside ``0..n-1`` by the wrap ``mode``."""
    if i.size and i.min() >= 0 and i.max() < n:
        return i
    if mode == "clamp":
        return np.clip(i, 0, n - 1)
    if mode == "mirror":
        m = np.mod(i, 2 * n)
        return np.where(m >= n, 2 * n - 1 - m, m)
    return np.mod(i, n)


def _lookup(image: np.ndarray, uv: np.ndarray, wrap: tuple[str, str],
            table: np.ndarray = _DECODE) -> np.ndarray:
    """Bilinear linear-space lookup of ``(M, 2)`` glTF UVs in a contiguous ``(H, W, C)`` uint8
    image whose codes ``table`` decodes (sRGB colour; linear alpha) -> ``(M, C)`` float32."""
    H, W = image.shape[:2]
    x = uv[:, 0] * np.float32(W) - np.float32(0.5)
    y = uv[:, 1] * np.float32(H) - np.float32(0.5)
    x0, y0 = np.floor(x), np.floor(y)
    wx, wy = (x - x0)[:, None], (y - y0)[:, None]
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    cols = _wrap_index(x0, W, wrap[0]), _wrap_index(x0 + 1, W, wrap[0])
    rows = _wrap_index(y0, H, wrap[1]) * W, _wrap_index(y0 + 1, H, wrap[1]) * W
    flat = image.reshape(-1, image.shape[2])

    def at(row, col):
        return table[flat.take(row + col, axis=0)]

    top = at(rows[0], cols[0])
    top += (at(rows[0], cols[1]) - top) * wx
    bottom = at(rows[1], cols[0])
    bottom += (at(rows[1], cols[1]) - bottom) * wx
    top += (bottom - top) * wy
    return top


class BaseColorTextures:
    """Per-pixel glTF base colour (module docstring).

    Args:
        faces: ``(F, 3)`` int64 vertex indices.
        uvs: ``(V, 2)`` float32 base colour texture coordinates (glTF's, ``v`` down).
        colors: ``(V, 3)`` float32 linear ``COLOR_0``.
        face_material: ``(F,)`` int64 material slot of each face.
        factors: ``(K, 3)`` float32 linear base colour factor of each slot.
        images: ``K`` entries, an ``(H, W, 3 or 4)`` uint8 sRGB image or None (the factor
            alone).
        wraps: ``K`` entries, ``(s, t)`` wrap modes.
        cutoffs: ``K`` entries: the ``alphaCutoff`` of an ``alphaMode: MASK`` slot, else None
            (opaque; ``BLEND`` is drawn opaque too).
        alphas: ``(V,)`` float32 ``COLOR_0`` alpha, and ``(K,)`` float32 factor alpha (None:
            1); only read for ``MASK`` slots.
    """

    def __init__(self, faces, uvs, colors, face_material, factors, images, wraps,
                 cutoffs=None, alphas=(None, None)):
        self.faces = np.ascontiguousarray(faces, np.int64)
        self.uvs = np.ascontiguousarray(uvs, np.float32)
        self.colors = np.ascontiguousarray(colors, np.float32)
        self.face_material = np.ascontiguousarray(face_material, np.int64)
        self.factors = np.ascontiguousarray(factors, np.float32)
        # contiguous RGB: a gather from a strided RGBA view copies the whole image
        self.images = [None if image is None else np.ascontiguousarray(image[..., :3])
                       for image in images]
        self.wraps = list(wraps)
        self._plain_colors = bool((self.colors == 1.0).all())
        self.cutoffs = list(cutoffs) if cutoffs is not None else [None] * len(self.factors)
        self._alpha_images = [None if c is None or image is None or image.shape[-1] < 4 else
                              np.ascontiguousarray(image[..., 3:]) for c, image in
                              zip(self.cutoffs, images)]
        vertex_alpha, factor_alpha = alphas
        self._vertex_alpha = vertex_alpha
        self._factor_alpha = np.ones(len(self.factors), np.float32) if factor_alpha is None \
            else np.asarray(factor_alpha, np.float32)

    @property
    def has_cutout(self) -> bool:
        """Whether a slot is ``alphaMode: MASK`` (some surface may be cut away)."""
        return any(c is not None for c in self.cutoffs)

    def cutout(self, face: np.ndarray, bary: np.ndarray) -> np.ndarray:
        """``(M,)`` bool: the points (faces and barycentrics) that ``alphaMode: MASK`` cuts away,
        where ``texture alpha x factor alpha x COLOR_0 alpha < alphaCutoff`` (glTF 2.0 section
        3.9.4)."""
        slot = self.face_material[face]
        cut = np.zeros(len(face), bool)
        for k, cutoff in enumerate(self.cutoffs):
            if cutoff is None:
                continue
            pick = np.flatnonzero(slot == k)
            if not len(pick):
                continue
            alpha = np.full(len(pick), self._factor_alpha[k], np.float32)
            corners, w = self.faces[face[pick]], bary[pick]
            if self._alpha_images[k] is not None:
                uv = w[:, :1] * self.uvs[corners[:, 0]] + w[:, 1:2] * self.uvs[corners[:, 1]] \
                    + w[:, 2:] * self.uvs[corners[:, 2]]
                alpha *= _lookup(self._alpha_images[k], uv, self.wraps[k], _LINEAR)[:, 0]
            if self._vertex_alpha is not None:
                alpha *= (w * self._vertex_alpha[corners]).sum(1)
            cut[pick] = alpha < cutoff
        return cut

    def linear(self, face: np.ndarray, bary: np.ndarray) -> np.ndarray:
        """``(M,)`` faces and ``(M, 3)`` float32 barycentrics -> ``(M, 3)`` float32 linear base
        colour."""
        slot = self.face_material[face]
        corners = self.faces[face]
        out = np.empty((len(face), 3), np.float32)
        if len(self.factors) == 1 or (slot.size and slot.min() == slot.max()):
            groups = [(int(slot[0]) if slot.size else 0, slice(None))]
        else:  # one group of pixels per material (a stable sort of the slots)
            order = np.argsort(slot, kind="stable")
            bounds = np.searchsorted(slot[order], np.arange(len(self.factors) + 1))
            groups = [(k, order[bounds[k]:bounds[k + 1]]) for k in range(len(self.factors))
                      if bounds[k + 1] > bounds[k]]
        for k, pick in groups:
            value = np.broadcast_to(self.factors[k], (len(face), 3))[pick] \
                if isinstance(pick, slice) else np.broadcast_to(self.factors[k], (len(pick), 3))
            if self.images[k] is not None:
                w, c = bary[pick], corners[pick]
                uvs = self.uvs
                uv = w[:, :1] * uvs[c[:, 0]] + w[:, 1:2] * uvs[c[:, 1]] + w[:, 2:] * uvs[c[:, 2]]
                value = value * _lookup(self.images[k], uv, self.wraps[k])
            out[pick] = value
        if not self._plain_colors:
            out *= np.einsum("mk,mkc->mc", bary, self.colors[corners], optimize=False)
        return out

    def sample(self, face: np.ndarray, bary: np.ndarray) -> np.ndarray:
        """``(M,)`` faces and ``(M, 3)`` float32 barycentrics -> ``(M, 3)`` float32 sRGB base
        colour in [0, 1] (what the shader multiplies, as OBJ texels)."""
        return linear_to_srgb(self.linear(face, bary))

    def to_pytorch3d(self):
        """The same colours as a PyTorch3D texture (:class:`~tap3d.render.sampled.
        SampledTextures`)."""
        from tap3d.render.sampled import SampledTextures

        return SampledTextures(self, len(self.faces))
