"""Part-labelled point clouds from real meshes: URDF robots of ``pybullet_data`` posed at seeded
random joint angles.

pybullet (Coumans and Bai, https://pybullet.org) poses the robot (every movable joint at a
uniform angle or offset within its URDF limits) and gives each link's world frame; the links'
visual meshes are read with trimesh, moved to their world pose, and sampled uniformly by area
(trimesh's ``sample_surface``). Each part is a group of links (:data:`ROBOTS`); a point's part is
the part of the link whose face it was sampled on, its normal that face's normal.

Coordinates are y-up (pybullet's z-up turned by -90 degrees about x: ``(x, y, z) -> (x, z,
-y)``), in metres, the robot's base at the origin.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

__all__ = ["Robot", "ROBOTS", "posed_robot"]


@dataclass(frozen=True)
class Robot:
    """A URDF of ``pybullet_data`` and its parts.

    Attributes:
        urdf: path relative to ``pybullet_data.getDataPath()``.
        parts: ``(part name, link indices)`` in part order; ``-1`` is the base link. Every link
            with a visual mesh belongs to exactly one part.
    """

    urdf: str
    parts: tuple[tuple[str, tuple[int, ...]], ...]


#: The robots with mesh links in ``pybullet_data`` used as part-labelled categories.
ROBOTS = {
    "kuka": Robot("kuka_iiwa/model.urdf", (("base", (-1, 0)), ("lower_arm", (1, 2)),
                                           ("upper_arm", (3, 4)), ("wrist", (5, 6)))),
    "panda": Robot("franka_panda/panda.urdf", (("base", (-1, 0, 1)), ("arm", (2, 3, 4)),
                                               ("hand", (5, 6, 8, 9, 10)))),
    "laikago": Robot("laikago/laikago.urdf", (("body", (-1,)),
                                              ("upper_legs", (0, 1, 3, 4, 6, 7, 9, 10)),
                                              ("lower_legs", (2, 5, 8, 11)))),
}

_MESHES: dict = {}  # mesh file -> trimesh.Trimesh (loaded once per process)


def _mesh(path: str):
    import trimesh

    if path not in _MESHES:
        mesh = trimesh.load(path, force="mesh", process=False)
        _MESHES[path] = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    return _MESHES[path]


def _matrix(position, quaternion) -> np.ndarray:
    """4 x 4 pose from a position and an (x, y, z, w) quaternion (pybullet's order)."""
    x, y, z, w = quaternion
    rotation = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rotation, position
    return out


def _posed_links(robot: Robot, seed: int) -> list[tuple[int, str, np.ndarray, np.ndarray]]:
    """``[(link, mesh file, scale (3,), world pose 4 x 4), ...]`` of every visual mesh of the
    robot posed with ``seed``."""
    import pybullet
    import pybullet_data

    client = pybullet.connect(pybullet.DIRECT)
    try:
        pybullet.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=client)
        body = pybullet.loadURDF(os.path.join(pybullet_data.getDataPath(), robot.urdf),
                                 useFixedBase=True, physicsClientId=client)
        rng = np.random.default_rng(seed)
        for joint in range(pybullet.getNumJoints(body, physicsClientId=client)):
            info = pybullet.getJointInfo(body, joint, physicsClientId=client)
            if info[2] not in (pybullet.JOINT_REVOLUTE, pybullet.JOINT_PRISMATIC):
                continue
            low, high = info[8], info[9]
            if not low < high:  # no limits in the URDF: a full turn
                low, high = -np.pi, np.pi
            pybullet.resetJointState(body, joint, rng.uniform(low, high), physicsClientId=client)
        out = []
        for shape in pybullet.getVisualShapeData(body, physicsClientId=client):
            link, geometry, scale, file = shape[1], shape[2], shape[3], shape[4].decode()
            if geometry != pybullet.GEOM_MESH:
                continue
            if link == -1:  # pybullet's base pose is its inertial frame: back to the URDF's
                inertial = pybullet.getDynamicsInfo(body, -1, physicsClientId=client)
                frame = _matrix(*pybullet.getBasePositionAndOrientation(
                    body, physicsClientId=client)) @ np.linalg.inv(_matrix(inertial[3],
                                                                           inertial[4]))
            else:  # the URDF link frame (worldLinkFramePosition / Orientation)
                state = pybullet.getLinkState(body, link, computeForwardKinematics=True,
                                              physicsClientId=client)
                frame = _matrix(state[4], state[5])
            pose = frame @ _matrix(shape[5], shape[6])
            out.append((link, file, np.asarray(scale, dtype=np.float64), pose))
        return out
    finally:
        pybullet.disconnect(client)


def posed_robot(name: str, seed: int, points: int = 2048) -> tuple[np.ndarray, np.ndarray,
                                                                     np.ndarray]:
    """A robot of :data:`ROBOTS` at seeded random joint angles, sampled with part labels.

    Args:
        name: a key of :data:`ROBOTS`.
        seed: draws the joint angles and the surface samples.
        points: samples (area-uniform over all visual meshes).

    Returns:
        ``(points (P, 3) float32, normals (P, 3) float32 unit, part (P,) int64)``: y-up metres,
        ``part`` the index into ``ROBOTS[name].parts``.

    Raises:
        KeyError: unknown robot.
        ValueError: a link with a visual mesh that belongs to no part.
        ImportError: pybullet or trimesh missing.
    """
    import trimesh

    robot = ROBOTS[name]
    part_of = {link: i for i, (_, links) in enumerate(robot.parts) for link in links}
    meshes, labels = [], []
    for link, file, scale, pose in _posed_links(robot, seed):
        if link not in part_of:
            raise ValueError(f"{robot.urdf}: link {link} ({file}) belongs to no part of {name}")
        mesh = _mesh(file).copy()
        mesh.vertices = mesh.vertices * scale
        mesh.apply_transform(pose)
        meshes.append(mesh)
        labels.append(np.full(len(mesh.faces), part_of[link]))
    merged = trimesh.util.concatenate(meshes)
    face_part = np.concatenate(labels)
    samples, faces = trimesh.sample.sample_surface(merged, points, seed=seed)
    normals = merged.face_normals[faces]
    to_y_up = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])
    return ((samples @ to_y_up.T).astype(np.float32), (normals @ to_y_up.T).astype(np.float32),
            face_part[faces].astype(np.int64))
