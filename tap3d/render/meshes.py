"""Loading one mesh file with its appearance, validating, normalizing and sampling it.

Formats: ``.obj`` (with ``.mtl`` materials and texture images) goes through tinyobjloader
(:mod:`tap3d.render.objfile`; PyTorch3D's ``load_obj`` on request) and its textures through
:mod:`tap3d.render.textures`; ``.glb .gltf`` through :mod:`tap3d.render.gltf` (the scene graph,
every primitive, the base colour per pixel: :mod:`tap3d.render.basecolor`); ``.off .ply .stl``
go through trimesh (vertex colours, face colours and textures sampled at the vertices). Every mesh is validated here, not trusted to
the loaders (see docs/building.md, "Mesh-loading pitfalls"): PyTorch3D only warns about faces
indexing past the vertex list, trimesh silently drops NaN vertices and tinyobjloader reads them
as 0.

Frames: the normalized object frame has the axis-aligned bounding box's centre at the origin and
the farthest vertex at distance 1; the source's axes are kept (ShapeNetCore is y-up), so
``source = normalized * scale + center``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from tap3d.render.basecolor import BaseColorTextures
from tap3d.render.limits import MeshLimits
from tap3d.render.objfile import OBJ_LOADERS, MeshError, load_obj_pytorch3d, read_obj
from tap3d.render.textures import (DEFAULT_COLOR, TEXTURES, VertexColors, atlas_textures,
                                   material_textures)
from tap3d.sources import MESH_SUFFIXES

__all__ = [
    "DEFAULT_COLOR",
    "MeshError",
    "Mesh",
    "load_mesh",
    "vertex_normals",
]

@dataclass
class Mesh:
    """A validated triangle mesh in the normalized object frame, with its appearance.

    Attributes:
        verts: ``(V, 3)`` float32 tensor, normalized object frame (unit sphere).
        faces: ``(F, 3)`` int64 tensor of vertex indices, counter-clockwise not assumed.
        textures: the appearance, one of :mod:`tap3d.render.textures`
            (``MaterialTextures``, ``FaceAtlas`` or ``VertexColors``): ``sample(face, bary)``
            gives colours in [0, 1], ``to_pytorch3d()`` the same as a PyTorch3D texture.
        center: ``(3,)`` float32, bounding-box centre in source units.
        scale: distance of the farthest vertex from ``center`` in source units (> 0).
        path: the file it came from.
        warnings: appearance problems that were worked around (missing texture image, atlas
            failure, ...), each naming the file.
    """

    verts: "torch.Tensor"  # noqa: F821
    faces: "torch.Tensor"  # noqa: F821
    textures: object
    center: np.ndarray
    scale: float
    path: str
    warnings: list[str] = field(default_factory=list)

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    def verts_normals(self) -> np.ndarray:
        """``(V, 3)`` float32 unit vertex normals (:func:`vertex_normals`), computed once."""
        if getattr(self, "_normals", None) is None:
            self._normals = vertex_normals(self.verts.numpy(), self.faces.numpy())
        return self._normals

    def to_meshes(self, device="cpu"):
        """This mesh as a PyTorch3D ``Meshes`` batch of one on ``device``."""
        from pytorch3d.structures import Meshes

        return Meshes(
            verts=[self.verts.to(device)],
            faces=[self.faces.to(device)],
            textures=self.textures.to_pytorch3d().to(device),
        )


def _validate(path: str, verts: np.ndarray, faces: np.ndarray) -> None:
    """Raise :class:`MeshError` unless ``verts``/``faces`` form a renderable triangle mesh."""
    if verts.ndim != 2 or verts.shape[0] == 0:
        raise MeshError(path, "no vertices")
    if faces.ndim != 2 or faces.shape[0] == 0:
        raise MeshError(path, "no faces")
    if faces.shape[1] != 3:
        raise MeshError(path, f"faces have {faces.shape[1]} corners, expected triangles")
    if not np.isfinite(verts).all():
        bad = int((~np.isfinite(verts)).any(axis=1).sum())
        raise MeshError(path, f"{bad} vertices are NaN or infinite")
    if faces.min() < 0 or faces.max() >= verts.shape[0]:
        raise MeshError(
            path,
            f"faces index vertices {faces.min()}..{faces.max()} but there are only "
            f"{verts.shape[0]} vertices",
        )
    tri = verts[faces].astype(np.float64)
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    if not area.sum() > 0:
        raise MeshError(path, "every face has zero area")


def _normalize(path: str, verts: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Centre the bounding box at the origin and scale the farthest vertex to distance 1."""
    v = verts.astype(np.float64)
    center = 0.5 * (v.min(axis=0) + v.max(axis=0))
    scale = float(np.linalg.norm(v - center, axis=1).max())
    if not scale > 0:
        raise MeshError(path, "all vertices coincide")
    return ((v - center) / scale).astype(np.float32), center.astype(np.float32), scale


def _load_trimesh(path: str, notes: list[str]):
    """OFF/PLY/STL/GLB/glTF through trimesh, keeping NaN vertices so that they are caught."""
    import trimesh

    try:
        loaded = trimesh.load(path, force="mesh", process=False, validate=False)
    except Exception as error:  # noqa: BLE001 - trimesh raises many types for bad files
        raise MeshError(path, f"unreadable mesh ({type(error).__name__}: {error})") from None
    if not isinstance(loaded, trimesh.Trimesh):
        raise MeshError(path, "no triangle mesh in the file")
    verts_np = np.asarray(loaded.vertices, dtype=np.float32)
    faces_np = np.asarray(loaded.faces, dtype=np.int64).reshape(-1, 3)
    _validate(path, verts_np, faces_np)
    colors = None
    visual = loaded.visual
    if visual is not None and visual.kind is not None:
        try:
            if visual.kind == "texture":  # sample the texture image at the vertices' UVs
                visual = visual.to_color()
            colors = np.asarray(visual.vertex_colors, dtype=np.float32)[:, :3] / 255.0
        except Exception as error:  # noqa: BLE001
            notes.append(f"{path}: could not read colours ({error}); default colour used")
    return verts_np, faces_np, colors


def _load_gltf(path: str, textures: str, notes: list[str], limits: MeshLimits):
    """``(verts, faces, appearance or None)`` of a glTF file (:func:`~tap3d.render.gltf.
    read_gltf`; ``textures`` ``none``: geometry only)."""
    from tap3d.render.gltf import read_gltf

    scene = read_gltf(path, limits, images=textures != "none")
    notes += scene.notes
    verts = scene.verts.astype(np.float32)
    _validate(path, verts, scene.faces)
    limits.check_faces(path, len(scene.faces))
    if textures == "none":
        return verts, scene.faces, None
    images = [None if m.image is None else scene.images[m.image] for m in scene.materials]
    return verts, scene.faces, BaseColorTextures(
        scene.faces, scene.uvs, scene.colors[:, :3], scene.face_material,
        np.array([m.factor[:3] for m in scene.materials], np.float32), images,
        [m.wrap for m in scene.materials],
        [m.alpha_cutoff if m.alpha_mode == "MASK" else None for m in scene.materials],
        (scene.colors[:, 3], np.array([m.factor[3] for m in scene.materials], np.float32)))


def _load_obj(path: str, textures: str, atlas_size: int, obj_loader: str, notes: list[str],
              limits: MeshLimits):
    """``(verts, faces, appearance or None)`` of an OBJ file (see :func:`load_mesh`)."""
    if obj_loader == "pytorch3d":
        verts, faces, appearance = load_obj_pytorch3d(path, atlas_size, notes)
        _validate(path, verts, faces)
        limits.check_faces(path, len(faces))
        return verts, faces, appearance
    obj = read_obj(path)
    notes += obj.notes
    _validate(path, obj.verts, obj.faces)
    limits.check_faces(path, len(obj.faces))
    bad = (obj.faces_uvs >= len(obj.verts_uvs)).any(1)
    if bad.any():
        notes.append(f"{path}: {int(bad.sum())} faces index texture coordinates past the "
                     f"{len(obj.verts_uvs)} given; they show their material's colour")
        obj.faces_uvs[bad] = -1
    if textures == "none" or not obj.materials:
        return obj.verts, obj.faces, None
    if textures == "atlas":
        return obj.verts, obj.faces, atlas_textures(obj, atlas_size, notes, path, limits)
    return obj.verts, obj.faces, material_textures(obj, notes, path, limits)


def load_mesh(path: str | os.PathLike, textures: str = "uv", texture_atlas_size: int = 4,
              obj_loader: str = "tinyobjloader", limits: MeshLimits | None = None) -> Mesh:
    """Load, validate and normalize one mesh file with its appearance.

    Args:
        path: a file with a suffix in :data:`tap3d.sources.MESH_SUFFIXES`.
        textures: OBJ appearance, ``uv`` (per-material images at source resolution), ``atlas``
            (PyTorch3D's per-face atlas; glTF files keep their per-pixel base colour) or ``none`` (geometry only: no material or image is
            read, every face gets :data:`DEFAULT_COLOR`).
        texture_atlas_size: ``R``, the per-face texture resolution of ``atlas``.
        obj_loader: ``tinyobjloader`` or ``pytorch3d`` (PyTorch3D's ``load_obj``, which
            always builds an atlas; kept for comparison).
        limits: the object's budgets (:class:`~tap3d.render.limits.MeshLimits`; default: none).

    Returns:
        A :class:`Mesh` in the normalized object frame (float32 vertices, int64 faces).

    Raises:
        MeshError: the file is missing or empty, unreadable (binary garbage, truncated), has no
            vertices or faces, NaN/inf vertices, faces indexing past the vertex list, only
            zero-area faces, or all vertices in one point; over one of ``limits``
            (:class:`~tap3d.render.limits.BudgetError`). The message names the file.
        ValueError: an unknown ``textures`` or ``obj_loader``.
    """
    import torch

    if textures not in TEXTURES + ("none",):
        raise ValueError(f"textures must be one of uv, atlas, none; got {textures!r}")
    if obj_loader not in OBJ_LOADERS:
        raise ValueError(f"obj_loader must be tinyobjloader or pytorch3d; got {obj_loader!r}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MeshError(path, "file not found")
    if os.path.getsize(path) == 0:
        raise MeshError(path, "empty file")
    limits = MeshLimits() if limits is None else limits
    limits.check_file(path)
    suffix = os.path.splitext(path)[1].lower()
    notes: list[str] = []
    if suffix == ".obj":
        verts_np, faces_np, appearance = _load_obj(path, textures, texture_atlas_size,
                                                   obj_loader, notes, limits)
    elif suffix in (".glb", ".gltf"):
        verts_np, faces_np, appearance = _load_gltf(path, textures, notes, limits)
    elif suffix in MESH_SUFFIXES:
        verts_np, faces_np, colors = _load_trimesh(path, notes)
        limits.check_faces(path, len(faces_np))
        appearance = None if colors is None or textures == "none" else \
            VertexColors(faces_np, colors)
    else:
        raise MeshError(path, f"unsupported suffix {suffix!r}; expected one of {MESH_SUFFIXES}")
    verts_norm, center, scale = _normalize(path, verts_np)
    faces_np = np.ascontiguousarray(faces_np, dtype=np.int64)
    if appearance is None:
        appearance = VertexColors(faces_np, np.broadcast_to(
            np.array(DEFAULT_COLOR, np.float32), verts_norm.shape))
    return Mesh(
        verts=torch.from_numpy(verts_norm),
        faces=torch.from_numpy(faces_np),
        textures=appearance,
        center=center,
        scale=scale,
        path=path,
        warnings=notes,
    )


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit vertex normals as PyTorch3D's ``Meshes.verts_normals_packed`` computes them.

    Each face adds ``(v2 - v1) x (v0 - v1)`` (area-weighted, right-hand rule on the winding) to
    its three vertices; the sums are normalized with ``eps = 1e-6``.

    Args:
        verts: ``(V, 3)`` float32.
        faces: ``(F, 3)`` int64.

    Returns:
        ``(V, 3)`` float32.
    """
    tri = verts[faces]
    normal = np.cross(tri[:, 2] - tri[:, 1], tri[:, 0] - tri[:, 1])
    summed = np.zeros((len(verts), 3), np.float64)
    for corner in range(3):
        for axis in range(3):
            summed[:, axis] += np.bincount(faces[:, corner], weights=normal[:, axis],
                                           minlength=len(verts))
    length = np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-6)
    return (summed / length).astype(np.float32)
