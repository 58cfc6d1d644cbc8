"""Points on a mesh's surface: area-weighted samples (what the dataset's ``points`` are), the
faces and barycentric coordinates of points, and the surface colour there (``point_colors``).
Where ``alphaMode: MASK`` cuts a glTF surface away, no point is drawn."""

from __future__ import annotations

import numpy as np

from tap3d.render.errors import MeshError
from tap3d.render.meshes import Mesh

__all__ = ["sample_surface", "surface_colors"]


def sample_surface(mesh: Mesh, count: int, seed: int, faces: bool = False):
    """Area-weighted uniform samples on the mesh surface, with their face normals.

    Uses ``trimesh.sample.sample_surface`` (faces chosen with probability proportional to
    area, points uniform inside each triangle).

    Args:
        mesh: a validated mesh (normalized frame).
        count: number of points ``P``.
        seed: seed of the sampler; the same seed gives the same points.
        faces: also return the face of each point.

    Returns:
        ``points`` ``(P, 3)`` float32 in the normalized frame and ``normals`` ``(P, 3)`` float32
        unit face normals (right-hand rule on the face winding); with ``faces``, also
        ``(P,)`` int64 face indices.
    """
    import trimesh

    surface = trimesh.Trimesh(
        vertices=mesh.verts.numpy().astype(np.float64),
        faces=mesh.faces.numpy(),
        process=False,
        validate=False,
    )
    if getattr(mesh.textures, "has_cutout", False):  # alphaMode MASK: drop the cut points
        points, face_index = _uncut_samples(mesh, surface, count, seed)
    else:
        points, face_index = trimesh.sample.sample_surface(surface, count, seed=seed)
    normals = surface.face_normals[face_index]
    if faces:
        return points.astype(np.float32), normals.astype(np.float32), face_index.astype(np.int64)
    return points.astype(np.float32), normals.astype(np.float32)


def _uncut_samples(mesh: Mesh, surface, count: int, seed: int):
    """``count`` area-weighted samples that ``alphaMode: MASK`` keeps (drawn in rounds of more
    and more samples, seeded).

    Raises:
        MeshError: the masks cut away (nearly) all of the surface.
    """
    import trimesh

    kept_points, kept_faces, have, draw = [], [], 0, 2 * count
    for round_ in range(6):
        points, faces = trimesh.sample.sample_surface(surface, draw, seed=seed + round_)
        keep = ~mesh.textures.cutout(faces.astype(np.int64),
                                     _barycentric(mesh, points, faces.astype(np.int64)))
        kept_points.append(points[keep])
        kept_faces.append(faces[keep])
        have += int(keep.sum())
        if have >= count:
            return np.concatenate(kept_points)[:count], np.concatenate(kept_faces)[:count]
        draw *= 4
    raise MeshError(mesh.path, f"alphaMode MASK cuts away all but {have} of "
                               f"{sum(len(p) for p in kept_points) and draw} samples of the "
                               f"surface; {count} points cannot be drawn")


def _barycentric(mesh: Mesh, points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """``(P, 3)`` float32 barycentric coordinates of points on the given faces."""
    import trimesh

    corners = mesh.verts.numpy()[mesh.faces.numpy()[faces]].astype(np.float64)
    bary = trimesh.triangles.points_to_barycentric(corners, points.astype(np.float64))
    bary = np.clip(bary, 0.0, 1.0).astype(np.float32)
    return bary / np.maximum(bary.sum(1, keepdims=True), np.float32(1e-12))


def surface_colors(mesh: Mesh, points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The surface colour (the appearance's ``sample``: sRGB base colour, unlit) at points on
    the given faces.

    Args:
        mesh: the mesh the points were sampled on.
        points: ``(P, 3)`` float32, normalized frame; faces: ``(P,)`` int64, each point's face.

    Returns:
        ``(P, 3)`` uint8 sRGB.
    """
    colour = mesh.textures.sample(faces, _barycentric(mesh, points, faces))
    return (np.clip(colour, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
