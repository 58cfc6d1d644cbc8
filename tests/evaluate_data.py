"""Labelled point clouds from real meshes (pybullet_data), written in the downstream layouts.

Each class is one real mesh (duck, teddy, mug, ...; y-up); each sample is a fresh area-weighted
surface sampling of it, cut by a random plane (up to 15% of it gone: a partial view, as
ScanObjectNN's scans), optionally rotated about the up axis, scaled per axis by U[0.85, 1.15]
and jittered. An instance-recognition task (one mesh per class), small enough for CPU tests.
"""

from __future__ import annotations

import os

import numpy as np

#: class -> mesh relative to pybullet_data
CLASS_MESHES = {
    "duck": "duck.obj",
    "teddy": "teddy2_VHACD_CHs.obj",
    "mug": "objects/mug.obj",
    "bunny": "bunny.obj",
    "table": "table/table.obj",
    "cylinder": "toys/cylinder.obj",
    "random000": "random_urdfs/000/000.obj",
    "random005": "random_urdfs/005/005.obj",
}


def load_y_up(root: str, rel: str):
    """A pybullet_data mesh (z-up) turned y-up, as one trimesh."""
    import trimesh

    mesh = trimesh.load(os.path.join(root, rel), force="mesh")
    mesh.vertices = mesh.vertices[:, [0, 2, 1]] * [1.0, 1.0, -1.0]
    return mesh


def sample_clouds(root: str, per_class: int, points: int, seed: int, rotate: bool = True):
    """``(per_class * classes, points, 3)`` float32 clouds and their int64 labels; ``rotate``:
    a random rotation about the up axis per sample."""
    import trimesh

    rng = np.random.default_rng(seed)
    clouds, labels = [], []
    for label, rel in enumerate(CLASS_MESHES.values()):
        mesh = load_y_up(root, rel)
        for _ in range(per_class):
            xyz, _ = trimesh.sample.sample_surface(mesh, 2 * points,
                                                   seed=int(rng.integers(2**31)))
            xyz = xyz - xyz.mean(0)
            xyz = xyz / np.linalg.norm(xyz, axis=1).max()
            direction = rng.normal(size=3)
            along = xyz @ (direction / np.linalg.norm(direction))
            keep = np.flatnonzero(along < np.quantile(along, rng.uniform(0.85, 1.0)))
            xyz = xyz[rng.choice(keep, points, replace=False)]
            angle = rng.uniform(-np.pi, np.pi) if rotate else 0.0
            c, s = np.cos(angle), np.sin(angle)
            xyz = xyz @ np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]]).T
            xyz = xyz * rng.uniform(0.85, 1.15, 3) + rng.normal(0, 0.005, xyz.shape)
            clouds.append(xyz.astype(np.float32))
            labels.append(label)
    return np.stack(clouds), np.array(labels, dtype=np.int64)


def write_scanobjectnn(root: str, train, test, variant_files=None) -> str:
    """ScanObjectNN's ``h5_files`` layout, every variant, labels ``(N,)`` int8."""
    import h5py

    files = variant_files or [("main_split", "objectdataset_augmentedrot_scale75"),
                              ("main_split", "objectdataset"),
                              ("main_split_nobg", "objectdataset")]
    for folder, stem in files:
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        for split, (x, y) in (("training", train), ("test", test)):
            with h5py.File(os.path.join(root, folder, f"{split}_{stem}.h5"), "w") as f:
                f["data"] = x
                f["label"] = y.astype(np.int8)
    return root


def write_modelnet40_h5(root: str, train, test, classes) -> str:
    """``modelnet40_ply_hdf5_2048/``: two training files, labels ``(N, 1)`` uint8, normals,
    ``shape_names.txt``."""
    import h5py

    folder = os.path.join(root, "modelnet40_ply_hdf5_2048")
    os.makedirs(folder, exist_ok=True)
    half = len(train[1]) // 2
    parts = {"ply_data_train0.h5": (train[0][:half], train[1][:half]),
             "ply_data_train1.h5": (train[0][half:], train[1][half:]),
             "ply_data_test0.h5": test}
    for name, (x, y) in parts.items():
        with h5py.File(os.path.join(folder, name), "w") as f:
            f["data"] = x
            f["label"] = y.astype(np.uint8).reshape(-1, 1)
            f["normal"] = np.zeros_like(x)
    with open(os.path.join(folder, "shape_names.txt"), "w") as f:
        f.write("\n".join(classes) + "\n")
    return folder


def write_modelnet_meshes(root: str, pybullet_root: str, classes: dict, counts=(2, 1)) -> str:
    """``<class>/{train,test}/<class>_NNNN.off`` with the counts glued to ``OFF`` on the first
    line (``OFF490 518 0``), as in real ModelNet files; each file a real mesh, randomly scaled
    per axis."""
    import trimesh

    rng = np.random.default_rng(0)
    number = 0
    for name, rel in classes.items():
        mesh = load_y_up(pybullet_root, rel)
        for split, count in zip(("train", "test"), counts):
            os.makedirs(os.path.join(root, name, split), exist_ok=True)
            for _ in range(count):
                number += 1
                scaled = trimesh.Trimesh(mesh.vertices * rng.uniform(0.8, 1.25, 3), mesh.faces,
                                         process=False)
                lines = trimesh.exchange.off.export_off(scaled).splitlines()
                assert lines[0] == "OFF"
                text = "OFF" + lines[1] + "\n" + "\n".join(lines[2:]) + "\n"
                with open(os.path.join(root, name, split, f"{name}_{number:04d}.off"), "w") as f:
                    f.write(text)
    return root
