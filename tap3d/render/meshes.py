"""Loading one mesh file with its appearance, validating, normalizing and sampling it.

Formats: ``.obj`` (with ``.mtl`` materials and texture images) goes through PyTorch3D's
``load_obj`` with a per-face texture atlas; ``.off .ply .stl .glb .gltf`` go through trimesh
(vertex colours, face colours and textures sampled at the vertices). Every mesh is validated
here, not trusted to the loaders (see DESIGN.md, "Mesh-loading pitfalls"): PyTorch3D only warns
about faces indexing past the vertex list and trimesh silently drops NaN vertices.

Frames: the normalized object frame has the axis-aligned bounding box's centre at the origin and
the farthest vertex at distance 1; the source's axes are kept (ShapeNetCore is y-up), so
``source = normalized * scale + center``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "MESH_SUFFIXES",
    "DEFAULT_COLOR",
    "MeshError",
    "Mesh",
    "load_mesh",
    "sample_surface",
]

#: File suffixes that a mesh-folder source picks up.
MESH_SUFFIXES = (".obj", ".off", ".ply", ".stl", ".glb", ".gltf")
#: Diffuse colour (linear RGB in [0, 1]) of faces that have no material, texture or colour.
DEFAULT_COLOR = (0.7, 0.7, 0.7)


class MeshError(Exception):
    """A mesh file that cannot be loaded, validated or rendered.

    ``str(error)`` is ``"<path>: <reason>"``, the text recorded in the dataset's ``error`` array.
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass
class Mesh:
    """A validated triangle mesh in the normalized object frame, with its appearance.

    Attributes:
        verts: ``(V, 3)`` float32 tensor, normalized object frame (unit sphere).
        faces: ``(F, 3)`` int64 tensor of vertex indices, counter-clockwise not assumed.
        textures: a PyTorch3D ``TexturesUV`` (one texture image), ``TexturesAtlas``
            (``(1, F, R, R, 3)``, several materials or wrapped UVs) or ``TexturesVertex``
            (``(1, V, 3)``), colours in [0, 1].
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

    def to_meshes(self, device="cpu"):
        """This mesh as a PyTorch3D ``Meshes`` batch of one on ``device``."""
        from pytorch3d.structures import Meshes

        return Meshes(
            verts=[self.verts.to(device)],
            faces=[self.faces.to(device)],
            textures=self.textures.to(device),
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


def _constant_vertex_textures(num_verts: int, color=DEFAULT_COLOR):
    import torch
    from pytorch3d.renderer import TexturesVertex

    rgb = torch.tensor(color, dtype=torch.float32).expand(num_verts, 3).clone()
    return TexturesVertex(verts_features=[rgb])


def _single_uv_texture(aux, faces) -> bool:
    """Whether an OBJ has exactly one material, with an image, UVs in [0, 1] on every face."""
    return (
        aux.texture_images is not None and len(aux.texture_images) == 1
        and aux.material_colors is not None and len(aux.material_colors) == 1
        and aux.verts_uvs is not None and aux.verts_uvs.numel() > 0
        and bool((faces.materials_idx >= 0).all()) and bool((faces.textures_idx >= 0).all())
        and float(aux.verts_uvs.min()) >= 0.0 and float(aux.verts_uvs.max()) <= 1.0
    )


def _load_obj(path: str, atlas_size: int, notes: list[str]):
    """OBJ through PyTorch3D, with a texture atlas; falls back to no textures if that fails."""
    import torch
    from pytorch3d.io import load_obj
    from pytorch3d.renderer import TexturesAtlas, TexturesUV

    def read(load_textures: bool):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = load_obj(
                path,
                load_textures=load_textures,
                create_texture_atlas=load_textures,
                texture_atlas_size=atlas_size,
                texture_wrap="repeat",
            )
        return out, [str(w.message) for w in caught]

    try:
        (verts, faces, aux), messages = read(True)
    except Exception as error:  # noqa: BLE001 - PyTorch3D raises many types on bad files
        # Either the geometry is unreadable or the texture atlas failed (pytorch3d #441, #381,
        # #1594); try the geometry alone to tell which.
        try:
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
    verts_np = verts.numpy()
    faces_np = faces.verts_idx.numpy()
    _validate(path, verts_np, faces_np)
    if aux is not None and _single_uv_texture(aux, faces):
        # One material with one image covering every face, UVs inside [0, 1]: sample the image
        # exactly with TexturesUV (an atlas of R x R texels per face blurs large faces).
        image = next(iter(aux.texture_images.values()))[..., :3].float().clamp(0.0, 1.0)
        textures = TexturesUV(maps=[image], faces_uvs=[faces.textures_idx],
                              verts_uvs=[aux.verts_uvs.float()])
    elif aux is not None and aux.texture_atlas is not None:
        atlas = aux.texture_atlas
        no_material = faces.materials_idx < 0
        if no_material.any():
            atlas[no_material] = torch.tensor(DEFAULT_COLOR, dtype=atlas.dtype)
        textures = TexturesAtlas(atlas=[atlas.clamp(0.0, 1.0)])
    else:
        textures = None
    return verts_np, faces_np, textures


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


def load_mesh(path: str | os.PathLike, texture_atlas_size: int = 4) -> Mesh:
    """Load, validate and normalize one mesh file with its appearance.

    Args:
        path: a file with a suffix in :data:`MESH_SUFFIXES`.
        texture_atlas_size: ``R``, the per-face texture resolution of OBJ texture atlases.

    Returns:
        A :class:`Mesh` in the normalized object frame (float32 vertices, int64 faces).

    Raises:
        MeshError: the file is missing or empty, unreadable (binary garbage, truncated), has no
            vertices or faces, NaN/inf vertices, faces indexing past the vertex list, only
            zero-area faces, or all vertices in one point. The message names the file.
    """
    import torch
    from pytorch3d.renderer import TexturesVertex

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MeshError(path, "file not found")
    if os.path.getsize(path) == 0:
        raise MeshError(path, "empty file")
    suffix = os.path.splitext(path)[1].lower()
    notes: list[str] = []
    if suffix == ".obj":
        verts_np, faces_np, textures = _load_obj(path, texture_atlas_size, notes)
        vertex_colors = None
    elif suffix in MESH_SUFFIXES:
        verts_np, faces_np, vertex_colors = _load_trimesh(path, notes)
        textures = None
    else:
        raise MeshError(path, f"unsupported suffix {suffix!r}; expected one of {MESH_SUFFIXES}")
    verts_norm, center, scale = _normalize(path, verts_np)
    if textures is None:
        if vertex_colors is not None:
            textures = TexturesVertex(verts_features=[torch.from_numpy(vertex_colors)])
        else:
            textures = _constant_vertex_textures(verts_norm.shape[0])
    return Mesh(
        verts=torch.from_numpy(verts_norm),
        faces=torch.from_numpy(np.ascontiguousarray(faces_np, dtype=np.int64)),
        textures=textures,
        center=center,
        scale=scale,
        path=path,
        warnings=notes,
    )


def sample_surface(mesh: Mesh, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted uniform samples on the mesh surface, with their face normals.

    Uses ``trimesh.sample.sample_surface`` (faces chosen with probability proportional to
    area, points uniform inside each triangle).

    Args:
        mesh: a validated mesh (normalized frame).
        count: number of points ``P``.
        seed: seed of the sampler; the same seed gives the same points.

    Returns:
        ``points`` ``(P, 3)`` float32 in the normalized frame and ``normals`` ``(P, 3)`` float32
        unit face normals (right-hand rule on the face winding).
    """
    import trimesh

    surface = trimesh.Trimesh(
        vertices=mesh.verts.numpy().astype(np.float64),
        faces=mesh.faces.numpy(),
        process=False,
        validate=False,
    )
    points, face_index = trimesh.sample.sample_surface(surface, count, seed=seed)
    normals = surface.face_normals[face_index]
    return points.astype(np.float32), normals.astype(np.float32)
