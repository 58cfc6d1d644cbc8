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


def sample_with_normals(root: str, per_class: int, points: int, seed: int, classes=None):
    """``(per_class * classes, points, 6)`` float32 clouds ``x y z nx ny nz`` (area-weighted
    samples of each real mesh, y-up, centred, unit radius; the normals of the sampled faces) and
    their int64 labels, for the layouts that store normals."""
    import trimesh

    rng = np.random.default_rng(seed)
    clouds, labels = [], []
    for label, rel in enumerate((classes or CLASS_MESHES).values()):
        mesh = load_y_up(root, rel)
        mesh.vertices = mesh.vertices - mesh.centroid
        mesh.vertices = mesh.vertices / np.linalg.norm(mesh.vertices, axis=1).max()
        for _ in range(per_class):
            xyz, faces = trimesh.sample.sample_surface(mesh, points,
                                                       seed=int(rng.integers(2**31)))
            clouds.append(np.column_stack([xyz, mesh.face_normals[faces]]).astype(np.float32))
            labels.append(label)
    return np.stack(clouds), np.array(labels, dtype=np.int64)


def fps_order(clouds: np.ndarray, count: int, exact: int = 2048) -> np.ndarray:
    """``count`` points of each cloud ``(N, P, C)`` as Point-BERT's ``*_fps.dat`` files hold
    them, in farthest-point order (here from the first point): the first ``min(count, exact)``
    are exactly that; the rest follow in the cloud's order (a full 8,192-point farthest-point
    sampling takes about a second per cloud on a CPU, and tap3d reads at most the first 2,048)."""
    import torch

    from tap3d.geometry.pointops import farthest_point_sample

    first = farthest_point_sample(torch.from_numpy(clouds[..., :3]).contiguous(),
                                  min(count, exact)).numpy()
    index = np.stack([np.concatenate([row, np.setdiff1d(np.arange(clouds.shape[1]), row)])
                      for row in first])[:, :count]
    return np.take_along_axis(clouds, index[..., None], 1)


def write_modelnet40_resampled(root: str, train, test, classes, dat_sizes=(1024, 8192),
                               txt: bool = True) -> str:
    """``modelnet40_normal_resampled/`` (PointNet++ / Point-BERT): ``modelnet40_shape_names.txt``,
    ``modelnet40_{train,test}.txt`` (shape ids ``<class>_NNNN``, numbered per class, training
    shapes first), ``<class>/<id>.txt`` (``x,y,z,nx,ny,nz`` lines, 6 decimals) when ``txt``, and
    ``modelnet40_{train,test}_<P>pts_fps.dat`` for each ``P`` of ``dat_sizes``: a pickle of
    ``[list_of_points ((P, 6) float32, farthest-point order), list_of_labels ((1,) int32)]``
    written by ``pickle.dump`` as Point-BERT's ``ModelNet.py`` writes it. ``train`` and
    ``test``: ``(clouds (N, points, 6), labels (N,))``."""
    import pickle

    folder = os.path.join(root, "modelnet40_normal_resampled")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "modelnet40_shape_names.txt"), "w") as f:
        f.write("\n".join(classes) + "\n")
    number = {name: 0 for name in classes}
    for split, (clouds, labels) in (("train", train), ("test", test)):
        ids = []
        for cloud, label in zip(clouds, labels):
            name = classes[label]
            number[name] += 1
            ids.append(f"{name}_{number[name]:04d}")
            if txt:
                os.makedirs(os.path.join(folder, name), exist_ok=True)
                np.savetxt(os.path.join(folder, name, f"{ids[-1]}.txt"), cloud, fmt="%.6f",
                           delimiter=",")
        with open(os.path.join(folder, f"modelnet40_{split}.txt"), "w") as f:
            f.write("\n".join(ids) + "\n")
        ordered_all = fps_order(clouds, max(dat_sizes)) if dat_sizes else None
        for size in dat_sizes:
            ordered = ordered_all[:, :size]  # the first k of farthest-point order: its k sample
            with open(os.path.join(folder, f"modelnet40_{split}_{size}pts_fps.dat"), "wb") as f:
                pickle.dump([list(ordered), [np.array([y]).astype(np.int32) for y in labels]], f)
    return folder


def write_fewshot_folds(root: str, train, test, way: int, shot: int, folds: int, query: int = 20,
                        seed: int = 0) -> str:
    """Point-BERT's ``ModelNetFewshot/<way>way_<shot>shot/<fold>.pkl`` (its
    ``generate_few_shot_data.py``): per fold ``way`` random classes; ``shot`` training clouds
    (from ``train``) and ``query`` test clouds (from ``test``) of each, as ``(points, i,
    class)`` tuples (``i`` the fold's class 0 .. way - 1, ``class`` the label as a numpy int32),
    shuffled; ``{"train": [...], "test": [...]}`` written by ``pickle.dump``. Returns the
    ``ModelNetFewshot`` folder."""
    import pickle

    rng = np.random.default_rng(seed)
    top = os.path.join(root, "ModelNetFewshot")
    folder = os.path.join(top, f"{way}way_{shot}shot")
    os.makedirs(folder, exist_ok=True)
    for fold in range(folds):
        content = {"train": [], "test": []}
        for i, key in enumerate(rng.permutation(np.unique(train[1]))[:way]):
            for split, (clouds, labels), count in (("train", train, shot),
                                                   ("test", test, query)):
                chosen = rng.permutation(np.flatnonzero(labels == key))[:count]
                content[split] += [(clouds[j], i, np.int32(key)) for j in chosen]
        for split in content:
            content[split] = [content[split][j] for j in rng.permutation(len(content[split]))]
        with open(os.path.join(folder, f"{fold}.pkl"), "wb") as f:
            pickle.dump(content, f)
    return top
