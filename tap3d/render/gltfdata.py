"""The data of one glTF 2.0 file (``.glb`` or ``.gltf``): its JSON through pygltflib, and here
its buffers, buffer views, accessors (strided, normalized, sparse) and images (PNG, JPEG and
``EXT_texture_webp`` through Pillow), for :mod:`tap3d.render.gltf`.

A file is data: a URI is a ``data:`` URI or a relative path that stays inside the file's
folder; anything else (another scheme, an absolute path, ``..`` out of the folder) is refused
with a :class:`~tap3d.render.objfile.MeshError`.
"""

from __future__ import annotations

import base64
import os
import re
import urllib.parse

import numpy as np

from tap3d.render.limits import BudgetError, decode_image
from tap3d.render.errors import MeshError

__all__ = ["GltfFile", "SUPPORTED_EXTENSIONS"]

#: Extensions read here; a file that marks any other one ``extensionsRequired`` is refused.
SUPPORTED_EXTENSIONS = ("KHR_draco_mesh_compression", "KHR_texture_transform",
                        "KHR_materials_pbrSpecularGlossiness", "EXT_texture_webp",
                        "KHR_mesh_quantization", "KHR_materials_unlit")

#: Component types of accessors (glTF 2.0 section 3.6.2.2) and the element counts of types.
_COMPONENTS = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16,
               5125: np.uint32, 5126: np.float32}
_COUNTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}


class GltfFile:
    """One glTF file's JSON (pygltflib), buffers, accessors and images.

    Raises (on construction):
        MeshError: not a readable glTF file, or one that requires an extension outside
            :data:`SUPPORTED_EXTENSIONS`.
    """

    def __init__(self, path: str, limits=None):
        import pygltflib

        self.path, self.limits = path, limits
        self.folder = os.path.dirname(os.path.abspath(path))
        try:
            self.gltf = pygltflib.GLTF2().load(path)
        except Exception as error:  # noqa: BLE001 - pygltflib raises many types
            raise MeshError(path, f"not a readable glTF file ({type(error).__name__}: "
                                  f"{error})") from None
        if self.gltf is None:
            raise MeshError(path, "not a readable glTF file")
        required = set(self.gltf.extensionsRequired or []) - set(SUPPORTED_EXTENSIONS)
        if required:
            raise MeshError(path, f"requires the glTF extension {', '.join(sorted(required))}, "
                                  "which tap3d cannot decode")
        self._buffers: dict[int, bytes] = {}

    def uri(self, uri: str) -> bytes:
        """The bytes a ``data:`` URI or a relative file URI names (inside the file's folder)."""
        if uri.startswith("data:"):
            header, _, payload = uri.partition(",")
            return base64.b64decode(payload) if header.endswith(";base64") else \
                urllib.parse.unquote_to_bytes(payload)
        relative = urllib.parse.unquote(uri)
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", relative) or os.path.isabs(relative):
            raise MeshError(self.path, f"refers to {uri!r}, outside its folder (only relative "
                                       "paths and data: URIs are read)")
        target = os.path.realpath(os.path.join(self.folder, relative))
        if os.path.commonpath([target, os.path.realpath(self.folder)]) != \
                os.path.realpath(self.folder):
            raise MeshError(self.path, f"refers to {uri!r}, outside its folder")
        try:
            with open(target, "rb") as f:
                return f.read()
        except OSError as error:
            raise MeshError(self.path, f"cannot read {uri!r} ({type(error).__name__})") from None

    def buffer(self, index: int) -> bytes:
        """The bytes of buffer ``index`` (the GLB's binary chunk, or its URI's)."""
        if index not in self._buffers:
            buffer = self.gltf.buffers[index]
            if buffer.uri is None:  # the GLB's binary chunk
                blob = self.gltf.binary_blob()
                if blob is None:
                    raise MeshError(self.path, f"buffer {index} has no data")
                self._buffers[index] = bytes(blob)
            else:
                self._buffers[index] = self.uri(buffer.uri)
        return self._buffers[index]

    def view(self, index: int) -> tuple[bytes, int | None]:
        """``(bytes of the buffer view, its byteStride or None)``.

        Raises:
            MeshError: the view runs past its buffer, or the buffer cannot be read.
        """
        view = self.gltf.bufferViews[index]
        data = self.buffer(view.buffer)
        start = view.byteOffset or 0
        if start + view.byteLength > len(data):
            raise MeshError(self.path, f"bufferView {index} runs past its buffer "
                                       f"({start + view.byteLength} > {len(data)} bytes)")
        return data[start:start + view.byteLength], view.byteStride

    def accessor(self, index: int) -> np.ndarray:
        """An accessor's elements, ``(count, n)`` of its component type (float32 in [-1, 1] for
        normalized integers), sparse substitutions applied.

        Raises:
            MeshError: the data runs past its buffer view.
        """
        acc = self.gltf.accessors[index]
        dtype, n = np.dtype(_COMPONENTS[acc.componentType]), _COUNTS[acc.type]
        if acc.bufferView is None:
            out = np.zeros((acc.count, n), dtype)
        else:
            data, stride = self.view(acc.bufferView)
            offset, size = acc.byteOffset or 0, dtype.itemsize * n
            stride = stride or size
            needed = offset + stride * (acc.count - 1) + size if acc.count else 0
            if needed > len(data):
                raise MeshError(self.path, f"accessor {index} runs past its bufferView")
            out = np.ndarray((acc.count, n), dtype, data, offset, (stride, dtype.itemsize)).copy()
        if acc.sparse is not None:
            sparse = acc.sparse
            data, _ = self.view(sparse.indices.bufferView)
            where = np.frombuffer(data, _COMPONENTS[sparse.indices.componentType],
                                  sparse.count, sparse.indices.byteOffset or 0)
            data, _ = self.view(sparse.values.bufferView)
            values = np.frombuffer(data, dtype, sparse.count * n, sparse.values.byteOffset or 0)
            out[where.astype(np.int64)] = values.reshape(-1, n)
        if acc.normalized and dtype.kind in "iu":
            scale = float(np.iinfo(dtype).max)
            out = np.maximum(out.astype(np.float32) / scale, -1.0)
        return out

    def image(self, index: int) -> tuple[np.ndarray | None, str | None]:
        """``((H, W, 4) uint8 RGBA, None)`` or ``(None, the reason it was not decoded)``,
        within the file's limits (:func:`tap3d.render.limits.decode_image`).

        Raises:
            MeshError: over the object's ``max_texture_pixels``.
        """
        image = self.gltf.images[index]
        name = f"image {index}" + (f" ({image.name or image.uri})" if image.name or
                                   (image.uri and not image.uri.startswith("data:")) else "")
        if image.mimeType == "image/ktx2" or (image.uri or "").lower().endswith(".ktx2"):
            return None, f"{name} is KTX2 (KHR_texture_basisu), which tap3d cannot decode"
        try:
            if image.bufferView is not None:
                data = self.view(image.bufferView)[0]
            elif image.uri:
                data = self.uri(image.uri)
            else:
                return None, f"{name} has no data"
            return decode_image(data, "RGBA", self.path, name, self.limits), None
        except BudgetError:
            raise
        except MeshError as error:
            return None, f"{name}: {error.reason}"
        except Exception as error:  # noqa: BLE001 - Pillow raises many types
            return None, f"{name} could not be decoded ({type(error).__name__}: {error})"
