"""Reading Wavefront OBJ files and their MTL materials into plain arrays.

Two readers give the same :class:`ObjData`:

- ``tinyobjloader`` (the default): the official Python binding of the compiled tinyobjloader
  parser, about 5-20x faster than PyTorch3D's ``load_obj`` on real multi-material meshes (see
  ``benchmarks/build.py``). Polygons are triangulated here as a fan ``(0, i, i + 1)``, which is
  what PyTorch3D does, so both readers give the same faces.
- ``pytorch3d``: PyTorch3D's ``load_obj`` (the reference in the tests).

What the tinyobjloader binding (2.0.0rc13) does not say is checked here (docs/building.md,
"Mesh-loading pitfalls"): it reads ``nan``/``inf`` (and any unparsable number) as 0 without a
warning, so vertex lines holding them are looked for in the file's bytes; its ``numpy_vertices`` and
``numpy_indices`` accessors return wrong values with numpy 2, so the lists are used; it drops
``map_Kd`` options, so ``-clamp on`` is read from the MTL file here, as is whether a material
sets ``Kd`` (PyTorch3D draws a material without ``Kd`` white, tinyobjloader says black).

:class:`MeshError`, the error of every mesh reader, is defined here, in the first reader of the
flow (:mod:`tap3d.render.meshes` builds on this module and re-exports it).
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from tap3d.render.errors import MeshError

__all__ = ["OBJ_LOADERS", "MeshError", "Material", "ObjData", "read_obj", "load_obj_pytorch3d"]

#: OBJ readers, by name (``BuildConfig.obj_loader``).
OBJ_LOADERS = ("tinyobjloader", "pytorch3d")
_BAD_NUMBER = re.compile(rb"^v[ \t][^\n]*?(?:nan|inf)", re.M)


@dataclass
class Material:
    """One MTL material as rendered.

    Attributes:
        name: the ``newmtl`` name.
        diffuse: ``Kd``, RGB in [0, 1]; None when the material has no ``Kd`` line.
        image: absolute path of the ``map_Kd`` image (relative names resolved against the MTL
            file's folder, so ShapeNetCore v2's ``../images/x.jpg`` works); None without one.
        wrap: ``"repeat"`` (OpenGL GL_REPEAT, ShapeNetCore's convention) or ``"clamp"`` (the
            MTL option ``-clamp on``).
    """

    name: str
    diffuse: tuple[float, float, float] | None = None
    image: str | None = None
    wrap: str = "repeat"


@dataclass
class ObjData:
    """The triangles, texture coordinates and materials of one OBJ file.

    Attributes:
        verts: ``(V, 3)`` float32, every ``v`` line in file order.
        faces: ``(F, 3)`` int64 vertex indices (0-based) in file order, polygons as fans.
        verts_uvs: ``(T, 2)`` float32, every ``vt`` line (u, v).
        faces_uvs: ``(F, 3)`` int64 indices into ``verts_uvs``; -1 where a corner has none.
        materials_idx: ``(F,)`` int64 index into ``materials``; -1 for no or unknown material.
        materials: the materials that faces use or the MTL files define.
        notes: problems worked around, each naming the file.
    """

    verts: np.ndarray
    faces: np.ndarray
    verts_uvs: np.ndarray
    faces_uvs: np.ndarray
    materials_idx: np.ndarray
    materials: list[Material]
    notes: list[str] = field(default_factory=list)


def _fan(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Corner indices ``(F, 3)`` of the fan triangles of polygons with ``counts`` corners, and
    the polygon of each triangle ``(F,)``."""
    if (counts == 3).all():
        corners = np.arange(3 * len(counts), dtype=np.int64).reshape(-1, 3)
        return corners, np.arange(len(counts), dtype=np.int64)
    triangles = np.maximum(counts - 2, 0)
    offsets = np.cumsum(counts) - counts
    polygon = np.repeat(np.arange(len(counts), dtype=np.int64), triangles)
    k = np.arange(polygon.size) - np.repeat(np.cumsum(triangles) - triangles, triangles) + 1
    first = offsets[polygon]
    return np.stack([first, first + k, first + k + 1], 1), polygon


def _mtl_libraries(path: str, data: bytes) -> list[str]:
    """Paths of the MTL files named by ``mtllib`` lines (each line may name several)."""
    found, start = [], 0
    while (at := data.find(b"mtllib", start)) >= 0:
        end = data.find(b"\n", at)
        end = len(data) if end < 0 else end
        if at == 0 or data[at - 1:at] in b"\r\n":
            names = data[at + 6:end].decode("utf-8", "replace").split()
            found += [os.path.join(os.path.dirname(path), name) for name in names]
        start = end
    return found


def _mtl_extras(mtl_paths: list[str]) -> tuple[dict[str, bool], dict[str, bool], dict[str, str]]:
    """What the binding drops, per material name: has ``Kd``, ``map_Kd -clamp on``, MTL folder."""
    has_kd, clamp, folder = {}, {}, {}
    for mtl in mtl_paths:
        if not os.path.isfile(mtl):
            continue
        name = None
        with open(mtl, errors="replace") as lines:
            for line in lines:
                tokens = line.split()
                if not tokens:
                    continue
                if tokens[0] == "newmtl" and len(tokens) > 1:
                    name = tokens[1]
                    folder.setdefault(name, os.path.dirname(mtl))
                elif tokens[0] == "Kd" and name is not None:
                    has_kd[name] = True
                elif tokens[0] == "map_Kd" and name is not None:
                    clamp[name] = any(a == "-clamp" and b == "on"
                                      for a, b in zip(tokens[1:], tokens[2:]))
    return has_kd, clamp, folder


def _check_numbers(path: str, data: bytes) -> None:
    """Raise :class:`MeshError` for ``v`` lines holding nan or inf (tinyobjloader reads 0)."""
    # the letters of the file (digits, signs, dots and spaces dropped) are a few percent of it
    letters = data.translate(None, b"0123456789.+- \t\r\n/").lower()
    if b"nan" not in letters and b"inf" not in letters:
        return
    bad = _BAD_NUMBER.findall(data.lower())
    if bad:
        first = bad[0].decode("utf-8", "replace").strip()
        raise MeshError(path, f"{len(bad)} vertices are NaN or infinite (first: {first!r}...)")


def _check_last_line(path: str, data: bytes) -> None:
    """Raise :class:`MeshError` when the last line is a vertex cut short (a truncated file:
    tinyobjloader reads the missing coordinates as 0, PyTorch3D raises)."""
    end = len(data.rstrip())
    tokens = data[data.rfind(b"\n", 0, end) + 1:end].split()
    if not tokens or tokens[0] != b"v":
        return
    try:
        complete = len(tokens) >= 4 and all(float(t) == float(t) for t in tokens[1:4])
    except ValueError:
        complete = False
    if not complete:
        line = b" ".join(tokens).decode("utf-8", "replace")
        raise MeshError(path, f"unreadable OBJ (truncated? the last line {line!r} is not a "
                              "vertex of 3 numbers)")


def read_obj(path: str) -> ObjData:
    """Read an OBJ file and its MTL materials with tinyobjloader.

    Args:
        path: the ``.obj`` file.

    Returns:
        :class:`ObjData`; texture image files are not opened here.

    Raises:
        MeshError: binary data (NUL bytes), a parse failure reported by tinyobjloader (for
            example a zero vertex index), NaN or infinite vertex coordinates, a last line that
            is a vertex cut short (a truncated file), or a polygon with fewer than 3 corners.
            The message names the file.
    """
    import tinyobjloader

    with open(path, "rb") as file:
        data = file.read()
    if b"\x00" in data:
        raise MeshError(path, "not a text OBJ file (binary data)")
    _check_numbers(path, data)
    _check_last_line(path, data)
    reader = tinyobjloader.ObjReader()
    config = tinyobjloader.ObjReaderConfig()
    config.triangulate = False  # fans below, as PyTorch3D triangulates
    if not reader.ParseFromFile(path, config):
        raise MeshError(path, f"unreadable OBJ ({reader.Error().strip()})")
    notes = [f"{path}: {line.strip()}" for line in reader.Warning().splitlines()
             if "material" in line.lower() and "not found" in line.lower()]
    attrib = reader.GetAttrib()
    verts = np.asarray(attrib.vertices, dtype=np.float32).reshape(-1, 3)
    verts_uvs = np.asarray(attrib.texcoords, dtype=np.float32).reshape(-1, 2)
    shapes = [shape.mesh for shape in reader.GetShapes()]
    counts = np.concatenate([np.asarray(m.num_face_vertices, np.int64) for m in shapes]) \
        if shapes else np.zeros(0, np.int64)
    if (counts < 3).any():
        raise MeshError(path, f"{int((counts < 3).sum())} faces have fewer than 3 corners")
    vertex_index = np.concatenate([np.asarray(m.vertex_indices(), np.int64) for m in shapes]) \
        if shapes else np.zeros(0, np.int64)
    uv_index = np.concatenate([np.asarray(m.texcoord_indices(), np.int64) for m in shapes]) \
        if shapes else np.zeros(0, np.int64)
    material_ids = np.concatenate([np.asarray(m.material_ids, np.int64) for m in shapes]) \
        if shapes else np.zeros(0, np.int64)
    corners, polygon = _fan(counts)
    has_kd, clamp, folder = _mtl_extras(_mtl_libraries(path, data))
    materials = []
    for material in reader.GetMaterials():
        name = material.name
        image = material.diffuse_texname or None
        if image is not None and not os.path.isabs(image):
            image = os.path.normpath(os.path.join(folder.get(name, os.path.dirname(path)), image))
        materials.append(Material(
            name=name, diffuse=tuple(float(c) for c in material.diffuse) if has_kd.get(name)
            else None, image=image, wrap="clamp" if clamp.get(name) else "repeat"))
    return ObjData(verts=verts, faces=vertex_index[corners], verts_uvs=verts_uvs,
                   faces_uvs=uv_index[corners], materials_idx=material_ids[polygon],
                   materials=materials, notes=notes)


def load_obj_pytorch3d(path: str, atlas_size: int, notes: list[str]):
    """An OBJ through PyTorch3D's ``load_obj`` with a texture atlas: the path before
    tinyobjloader, kept for comparison (``--obj-loader pytorch3d``).

    Returns ``(verts, faces, appearance)``: ``(V, 3)`` float32 and ``(F, 3)`` int64 numpy arrays
    and a :class:`~tap3d.render.textures.MaterialTextures` (one image on every face, UVs inside
    [0, 1]: sampled exactly), a :class:`~tap3d.render.textures.FaceAtlas` (``R`` x ``R`` texels
    per face), or None (no textures: the caller colours the mesh). When the atlas fails
    (pytorch3d issues #441, #381, #1594) the geometry is read alone and a note says so.

    Raises:
        MeshError: text that is not UTF-8 (binary garbage) or any ``load_obj`` failure.
    """
    import torch
    from pytorch3d.io import load_obj

    from tap3d.render.textures import DEFAULT_COLOR, FaceAtlas, MaterialTextures

    def read(load_textures: bool):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = load_obj(path, load_textures=load_textures, create_texture_atlas=load_textures,
                           texture_atlas_size=atlas_size, texture_wrap="repeat")
        return out, [str(w.message) for w in caught]

    try:
        (verts, faces, aux), messages = read(True)
    except Exception as error:  # noqa: BLE001 - PyTorch3D raises many types on bad files
        try:  # the geometry or the texture atlas (pytorch3d #441, #381, #1594)?
            (verts, faces, aux), messages = read(False)
        except UnicodeDecodeError:
            raise MeshError(path, "not a text OBJ file (binary or wrong encoding)") from None
        except Exception as inner:  # noqa: BLE001 - any loader failure is this file's failure
            raise MeshError(path, f"unreadable OBJ ({type(inner).__name__}: {inner})") from None
        notes.append(f"{path}: texture loading failed ({type(error).__name__}: {error}); "
                     "rendered with the default colour")
        aux = None
    for message in messages:
        if "does not exist" in message:  # PyTorch3D's warning for a missing texture image
            notes.append(f"{path}: {message.strip()}; material colour used instead")
    faces_np = faces.verts_idx.numpy().astype(np.int64)
    appearance = None
    if aux is not None and _single_uv_texture(aux, faces):
        image = next(iter(aux.texture_images.values()))[..., :3].clamp(0.0, 1.0)
        appearance = MaterialTextures(
            faces_np, aux.verts_uvs.numpy().astype(np.float32),
            faces.textures_idx.numpy().astype(np.int64), np.zeros(len(faces_np), np.int64),
            np.ones((1, 3), np.float32), [(image * 255 + 0.5).to(torch.uint8).numpy()],
            ["clamp"])
    elif aux is not None and aux.texture_atlas is not None:
        atlas = aux.texture_atlas
        atlas[faces.materials_idx < 0] = torch.tensor(DEFAULT_COLOR, dtype=atlas.dtype)
        appearance = FaceAtlas(atlas.clamp(0.0, 1.0).numpy())
    return verts.numpy(), faces_np, appearance


def _single_uv_texture(aux, faces) -> bool:
    """Whether an OBJ has exactly one material, with an image, UVs in [0, 1] on every face."""
    return (
        aux.texture_images is not None and len(aux.texture_images) == 1
        and aux.material_colors is not None and len(aux.material_colors) == 1
        and aux.verts_uvs is not None and aux.verts_uvs.numel() > 0
        and bool((faces.materials_idx >= 0).all()) and bool((faces.textures_idx >= 0).all())
        and float(aux.verts_uvs.min()) >= 0.0 and float(aux.verts_uvs.max()) <= 1.0
    )
