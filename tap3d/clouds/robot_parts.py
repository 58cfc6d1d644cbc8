"""A category-level labelled point-cloud set from real meshes: the links of the URDF robots in
``pybullet_data``, labelled by robot, scanned as ScanObjectNN's hardest variant perturbs objects.

Why: an instance-recognition set (one mesh per class) is solved by random features; here every
class is several different meshes (the links of one robot: a chassis, a wheel, a motor, ...),
and the test clouds come from meshes no training cloud was sampled from, so a classifier has to
learn what a robot's parts have in common (its design language), not memorize shapes.

Classes (:data:`ROBOT_PARTS`, label order): 10 robots, 4 to 12 link meshes each. Near-duplicate
meshes (left/right or mirrored copies, low-resolution or convex-decomposition versions) are
either left out or grouped into one *part*, and a part's meshes always share a split. Per class,
``round(test_share * parts)`` parts (at least one) are drawn, seeded, for the test split.

Each cloud (:func:`scan`), a PB_T50_RS-like perturbation (ScanObjectNN, Uy et al., ICCV 2019:
bounding boxes translated, rotated and scaled, background kept). Exactly:

1. the mesh (z-up, turned y-up) is centred on its bounding-box centre and scaled to unit radius
   (so a robot's units, millimetres or metres, do not give its class away);
2. 8192 area-weighted surface samples (trimesh);
3. rotation about the up axis by U[-pi, pi) and scaling per axis by U[0.8, 1.2];
4. occlusion: the union of what one or two cameras see (open3d's hidden point removal), each
   at distance 3 (the object's radius is about 1), azimuth U[0, 2 pi), elevation U[10, 60]
   degrees above the horizon: the underside and the far sides go missing, as in a scan;
5. translation: the object's axis-aligned box is shifted along each horizontal axis by
   U[-shift, shift] times its size (``shift`` 0.25; ScanObjectNN's T50 shifts by up to 50%),
   and only the object points inside the shifted box are kept;
6. background: a share U[0.05, 0.25] of the ``points`` (2048) are floor points, uniform over
   the shifted box's footprint at the object's lowest height with 0.01 vertical noise, and 1%
   are uniform clutter in the box;
7. the object points (drawn without replacement when enough are left, else with) get Gaussian
   jitter of standard deviation 0.005; the cloud is shuffled and centred on the box centre.

The result is written in ScanObjectNN's layout (:func:`write_robot_parts`), read by
:func:`tap3d.clouds.labelled.load_labelled` (``shape_names.txt`` gives the class names).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from tap3d.clouds.robot_catalog import (LABELLINGS, PART_TYPES, PART_TYPES_LARGE, ROBOT_PARTS,
                                        VARIANTS)

__all__ = ["ROBOT_PARTS", "PART_TYPES", "PART_TYPES_LARGE", "LABELLINGS", "VARIANTS",
           "robosuite_assets", "mesh_path", "RobotParts", "robot_part_split", "scan",
           "robot_part_clouds", "write_robot_parts"]

@dataclass
class RobotParts:
    """A category-level set in memory.

    Attributes:
        classes: robot names; label ``i`` is ``classes[i]``.
        train_points, test_points: ``(N, points, 3)`` float32, y-up, unnormalized (about unit
            radius, centred on the scan box).
        train_labels, test_labels: ``(N,)`` int64.
        train_meshes, test_meshes: ``(N,)`` the mesh (path relative to ``pybullet_data``) each
            cloud was sampled from; the two sets of meshes are disjoint.
        variant: the ScanObjectNN variant the scans imitate (:data:`VARIANTS`).
    """

    classes: list[str]
    train_points: np.ndarray
    train_labels: np.ndarray
    train_meshes: np.ndarray
    test_points: np.ndarray
    test_labels: np.ndarray
    test_meshes: np.ndarray
    variant: str = "pb_t50_rs"


def robot_part_split(labels: str = "part", test_share: float = 0.3, seed: int = 0
                     ) -> dict[str, tuple[list[tuple[str, ...]], list[tuple[str, ...]]]]:
    """Class -> (training parts, test parts) of a labelling (:data:`LABELLINGS`): per class
    ``round(test_share * parts)`` parts (at least one, at most all but one) drawn with
    ``seed``.

    Raises:
        ValueError: an unknown labelling.
    """
    if labels not in LABELLINGS:
        raise ValueError(f"unknown labelling {labels!r}; choose one of {', '.join(LABELLINGS)}")
    rng = np.random.default_rng(seed)
    split = {}
    for robot, parts in LABELLINGS[labels].items():
        count = min(max(int(round(test_share * len(parts))), 1), len(parts) - 1)
        test = set(rng.choice(len(parts), count, replace=False).tolist())
        split[robot] = ([p for i, p in enumerate(parts) if i not in test],
                        [p for i, p in enumerate(parts) if i in test])
    return split


def robosuite_assets() -> str:
    """robosuite's ``models/assets`` folder, found without importing robosuite (its meshes need
    none of its dependencies).

    Raises:
        FileNotFoundError: robosuite is not installed (``pip install --no-deps
            robosuite==1.5.2``; ``make install`` does it).
    """
    import importlib.util

    spec = importlib.util.find_spec("robosuite")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the part_large labelling needs robosuite's meshes: pip install "
                                "--no-deps robosuite==1.5.2")
    return os.path.join(spec.submodule_search_locations[0], "models", "assets")


def mesh_path(root: str, rel: str) -> str:
    """The file of a part's mesh: ``rel`` under ``root`` (pybullet_data), or for a
    ``robosuite:`` path under :func:`robosuite_assets`."""
    if rel.startswith("robosuite:"):
        return os.path.join(robosuite_assets(), rel.split(":", 1)[1])
    return os.path.join(root, rel)


def _load_unit(root: str, rel: str):
    """A ``pybullet_data`` (or robosuite) mesh turned y-up, centred on its box centre, unit
    radius."""
    import trimesh

    path = mesh_path(root, rel)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: a robot-part mesh is missing (is {root} the "
                                "pybullet_data folder?)")
    mesh = trimesh.load(path, force="mesh")
    vertices = mesh.vertices[:, [0, 2, 1]] * [1.0, 1.0, -1.0]
    vertices = vertices - (vertices.min(0) + vertices.max(0)) / 2
    return trimesh.Trimesh(vertices / np.linalg.norm(vertices, axis=1).max(), mesh.faces,
                           process=False)


def _visible(xyz: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``xyz`` seen from one or two random cameras (hidden point removal)."""
    import open3d as o3d

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
    seen: set[int] = set()
    for _ in range(int(rng.integers(1, 3))):
        azimuth, elevation = rng.uniform(0, 2 * np.pi), np.radians(rng.uniform(10, 60))
        camera = 3.0 * np.array([np.cos(elevation) * np.cos(azimuth), np.sin(elevation),
                                 np.cos(elevation) * np.sin(azimuth)])
        _, index = cloud.hidden_point_removal(camera, 300.0)
        seen.update(index)
    return np.fromiter(sorted(seen), dtype=np.int64)


def scan(mesh, points: int, rng: np.random.Generator, shift: float = 0.25,
         background: bool = True) -> np.ndarray:
    """One PB_T50_RS-like cloud of a unit-radius y-up trimesh (module docstring, steps 2-7).

    Args:
        mesh: a ``trimesh.Trimesh`` (unit radius, y-up).
        points: points in the cloud (2048 in ScanObjectNN).
        rng: all the randomness.
        shift: the box's horizontal translation, a fraction of its size.
        background: False for ScanObjectNN's OBJ_ONLY: no floor, no clutter, no box shift
            (steps 5 and 6 left out; the views, rotation, scaling and jitter stay).

    Returns:
        ``(points, 3)`` float32.
    """
    import trimesh

    xyz, _ = trimesh.sample.sample_surface(mesh, 8192, seed=int(rng.integers(2**31)))
    angle = rng.uniform(-np.pi, np.pi)
    c, s = np.cos(angle), np.sin(angle)
    xyz = xyz @ np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]]).T * rng.uniform(0.8, 1.2, 3)
    low, high = xyz.min(0), xyz.max(0)
    offset = np.zeros(3)
    offset[[0, 2]] = rng.uniform(-shift, shift, 2) * (high - low)[[0, 2]] * background
    low, high = low + offset, high + offset
    xyz = xyz[_visible(xyz, rng)]
    xyz = xyz[np.all((xyz >= low) & (xyz <= high), axis=1)]
    floor_count = int(round(rng.uniform(0.05, 0.25) * points)) if background else 0
    clutter_count = int(round(0.01 * points)) if background else 0
    count = points - floor_count - clutter_count
    if len(xyz) == 0:  # the box missed what the cameras saw: background only
        xyz = np.zeros((1, 3)) + (low + high) / 2
    pick = rng.choice(len(xyz), count, replace=len(xyz) < count)
    obj = xyz[pick] + rng.normal(0, 0.005, (count, 3))
    floor = rng.uniform(low, high, (floor_count, 3))
    floor[:, 1] = low[1] + rng.normal(0, 0.01, floor_count)
    clutter = rng.uniform(low, high, (clutter_count, 3))
    cloud = np.concatenate([obj, floor, clutter])[rng.permutation(points)]
    return (cloud - (low + high) / 2).astype(np.float32)


def robot_part_clouds(root: str | None = None, labels: str = "part", train_per_class: int = 100,
                      test_per_class: int = 16, points: int = 2048, test_share: float = 0.3,
                      shift: float = 0.25, seed: int = 0,
                      variant: str = "pb_t50_rs") -> RobotParts:
    """The category-level set: per robot, ``train_per_class`` clouds dealt round-robin over
    its training parts (and a part's meshes) and ``test_per_class`` over its test parts.

    Args:
        root: the ``pybullet_data`` folder (default: the installed package's).
        labels: ``"part"`` or ``"robot"`` (:data:`LABELLINGS`).
        train_per_class, test_per_class: clouds per class and split.
        points: points per cloud.
        test_share, seed: the part split (:func:`robot_part_split`); ``seed`` also seeds the
            scans (the test scans with a different stream than the training ones).
        shift: :func:`scan`'s box translation.
        variant: ``pb_t50_rs`` (background kept) or ``obj_only`` (:func:`scan` without
            background).

    Returns:
        A :class:`RobotParts`.

    Raises:
        ImportError: no ``root`` and ``pybullet_data`` is not installed (``pip install
            pybullet``).
        ValueError: an unknown labelling or variant.
        FileNotFoundError: a mesh is missing under ``root`` (names the file).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if root is None:
        import pybullet_data

        root = pybullet_data.getDataPath()
    split = robot_part_split(labels, test_share, seed)
    out = {}
    for index, name in enumerate(("train", "test")):
        rng = np.random.default_rng([seed, index])
        per_class = (train_per_class, test_per_class)[index]
        clouds, labels, meshes = [], [], []
        for label, robot in enumerate(split):
            parts = split[robot][index]
            loaded = {rel: _load_unit(root, rel) for part in parts for rel in part}
            for k in range(per_class):
                part = parts[k % len(parts)]
                rel = part[(k // len(parts)) % len(part)]
                clouds.append(scan(loaded[rel], points, rng, shift, variant == "pb_t50_rs"))
                labels.append(label)
                meshes.append(rel)
        out[name] = (np.stack(clouds), np.array(labels, dtype=np.int64), np.array(meshes))
    return RobotParts(list(split), *out["train"], *out["test"], variant)


def write_robot_parts(folder: str | os.PathLike, parts: RobotParts) -> str:
    """Write ScanObjectNN's files of ``parts.variant``: for ``pb_t50_rs``
    ``folder/main_split/{training,test}_objectdataset_augmentedrot_scale75.h5``, for
    ``obj_only`` ``folder/main_split_nobg/{training,test}_objectdataset.h5`` (``data``
    ``(N, points, 3)`` float32, ``label`` ``(N,)`` int8, ``mesh`` ``(N,)`` the source mesh
    paths) and ``folder/shape_names.txt`` (one class a line). Returns ``folder``."""
    import h5py

    from tap3d.clouds.labelled import SCANOBJECTNN_VARIANTS

    folder = os.fspath(folder)
    split_folder, stem = SCANOBJECTNN_VARIANTS[parts.variant]
    os.makedirs(os.path.join(folder, split_folder), exist_ok=True)
    for split, x, y, meshes in (("training", parts.train_points, parts.train_labels,
                                 parts.train_meshes),
                                ("test", parts.test_points, parts.test_labels,
                                 parts.test_meshes)):
        with h5py.File(os.path.join(folder, split_folder, f"{split}_{stem}.h5"), "w") as f:
            f["data"] = x.astype(np.float32)
            f["label"] = y.astype(np.int8)
            f["mesh"] = meshes.astype("S")
    with open(os.path.join(folder, "shape_names.txt"), "w") as f:
        f.write("\n".join(parts.classes) + "\n")
    return folder
