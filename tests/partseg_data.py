"""Part-labelled point clouds from real meshes (URDF robots of pybullet_data posed at seeded
joint angles, :mod:`tap3d.clouds.posed_robots`), written in the ShapeNetPart layout and as a
tap3d dataset with part labels.

Each robot stands in for one ShapeNetPart category with as many parts (kuka: Lamp, 4 parts;
panda: Earphone, 3; laikago: Table, 3), so the folder uses the benchmark's real category list,
synset ids and part-id blocks.

Categories of one's own in the same layout (:data:`MESH_CATEGORIES`, none of the 16): the random
meshes of ``pybullet_data/random_urdfs`` with geometric part labels (thirds of the height, halves
of the width), one mesh per shape, so that shapes of different splits are different meshes.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from tap3d.clouds.parts import SHAPENETPART_CATEGORIES, SHAPENETPART_PARTS, part_blocks
from tap3d.clouds.posed_robots import ROBOTS, posed_robot

#: robot -> the ShapeNetPart category it is written as (same number of parts)
ROBOT_CATEGORY = {"kuka": "Lamp", "panda": "Earphone", "laikago": "Table"}
CATEGORY_INDEX = {name: i for i, (name, _) in enumerate(SHAPENETPART_CATEGORIES)}
SYNSET = dict(SHAPENETPART_CATEGORIES)


def robot_shapes(per_robot: int, points: int, seed: int = 0, robots=tuple(ROBOT_CATEGORY)):
    """``[(robot, token, points (P, 3), normals (P, 3), local part (P,)), ...]``, ``per_robot``
    poses each (seeds ``seed * 1000 + i``)."""
    out = []
    for robot in robots:
        for i in range(per_robot):
            xyz, normals, part = posed_robot(robot, seed * 1000 + i, points)
            token = hashlib.sha1(f"{robot}-{seed}-{i}".encode()).hexdigest()[:31]
            out.append((robot, token, xyz, normals, part))
    return out


def global_part(robot: str, part: np.ndarray) -> np.ndarray:
    """Local part indices of a robot -> the global ids of its ShapeNetPart category."""
    return np.asarray(part_blocks(SHAPENETPART_PARTS)[CATEGORY_INDEX[ROBOT_CATEGORY[robot]]])[part]


def assign_splits(shapes, val: int = 1, test: int = 2) -> list[str]:
    """Per robot: the last ``test`` poses test, the ``val`` before them val, the rest train."""
    splits, seen = [], {}
    for robot, *_ in shapes:
        seen[robot] = seen.get(robot, 0) + 1
    counter = {}
    for robot, *_ in shapes:
        i = counter[robot] = counter.get(robot, -1) + 1
        n = seen[robot]
        splits.append("test" if i >= n - test else "val" if i >= n - test - val else "train")
    return splits


def write_shapenetpart(root: str, shapes, splits) -> str:
    """Write ``shapes`` in the exact ShapeNetPart layout under
    ``root/shapenetcore_partanno_segmentation_benchmark_v0_normal`` and return that folder:
    ``synsetoffset2category.txt`` (all 16 categories, tab-separated), ``<synset>/<token>.txt``
    (``x y z nx ny nz part`` with 6 decimals, as the release), and
    ``train_test_split/shuffled_{train,val,test}_file_list.json``."""
    return write_part_folder(root, SHAPENETPART_CATEGORIES, [
        (SYNSET[ROBOT_CATEGORY[robot]], token, xyz, normals, global_part(robot, part))
        for robot, token, xyz, normals, part in shapes], splits)


#: Categories of one's own, in the order of their ``synsetoffset2category.txt`` lines: name ->
#: (synset, parts, first global part id). Slab is listed first but owns the later ids.
MESH_CATEGORIES = {"Slab": ("90000002", 2, 3), "Totem": ("90000001", 3, 0)}


def geometric_parts(xyz: np.ndarray, bounds: np.ndarray, category: str) -> np.ndarray:
    """Local part of each point of a mesh with bounds ``(2, 3)`` (y-up): Totem, the thirds of
    the height (bottom, middle, top); Slab, the halves of the width along x (left, right)."""
    axis, count = (1, 3) if category == "Totem" else (0, 2)
    share = (xyz[:, axis] - bounds[0, axis]) / (bounds[1, axis] - bounds[0, axis])
    return np.clip((share * count).astype(np.int64), 0, count - 1)


def mesh_part_shapes(pybullet_root: str, category: str, meshes, points: int, seed: int = 0):
    """``[(synset, token, points (P, 3), normals (P, 3), global part (P,)), ...]``: one shape per
    ``random_urdfs/<NNN>/<NNN>.obj`` mesh number in ``meshes``, turned y-up, scaled to unit
    radius, sampled by area (normals of the sampled faces), labelled by
    :func:`geometric_parts`."""
    import trimesh

    from evaluate_data import load_y_up

    synset, _, first = MESH_CATEGORIES[category]
    out = []
    for number in meshes:
        mesh = load_y_up(pybullet_root, f"random_urdfs/{number:03d}/{number:03d}.obj")
        mesh.vertices = (mesh.vertices - mesh.centroid) / np.linalg.norm(
            mesh.vertices - mesh.centroid, axis=1).max()
        xyz, faces = trimesh.sample.sample_surface(mesh, points, seed=seed * 1000 + number)
        part = first + geometric_parts(xyz, mesh.bounds, category)
        token = hashlib.sha1(f"{category}-{number}".encode()).hexdigest()[:31]
        out.append((synset, token, xyz, mesh.face_normals[faces], part))
    return out


def write_part_folder(root: str, categories, shapes, splits) -> str:
    """The ShapeNetPart layout of ``shapes`` ``[(synset, token, points, normals, global part),
    ...]`` with ``categories`` ``[(name, synset), ...]`` the lines of
    ``synsetoffset2category.txt``, as :func:`write_shapenetpart` describes."""
    folder = os.path.join(root, "shapenetcore_partanno_segmentation_benchmark_v0_normal")
    os.makedirs(os.path.join(folder, "train_test_split"), exist_ok=True)
    with open(os.path.join(folder, "synsetoffset2category.txt"), "w") as f:
        f.writelines(f"{name}\t{synset}\n" for name, synset in categories)
    lists = {"train": [], "val": [], "test": []}
    for (synset, token, xyz, normals, part), split in zip(shapes, splits):
        os.makedirs(os.path.join(folder, synset), exist_ok=True)
        table = np.column_stack([xyz, normals, part])
        np.savetxt(os.path.join(folder, synset, f"{token}.txt"), table, fmt="%.6f")
        lists[split].append(f"shape_data/{synset}/{token}")
    for split, entries in lists.items():
        with open(os.path.join(folder, "train_test_split", f"shuffled_{split}_file_list.json"),
                  "w") as f:
            json.dump(entries, f)
    return folder


def write_tap3d_parts(path: str, shapes, splits) -> str:
    """The shapes as a tap3d dataset with the optional ``part`` array and ``parts`` attribute
    (every robot its own category, its parts named as in :data:`ROBOTS`); images and cameras
    left empty (points-only objects), ``status`` done."""
    from tap3d.views.schema import STATUS_DONE, array_specs
    from tap3d.views.writer import create_dataset

    robots = sorted({s[0] for s in shapes})
    offsets = dict(zip(robots, np.cumsum([0] + [len(ROBOTS[r].parts) for r in robots])))
    points = len(shapes[0][2])
    specs = array_specs(len(shapes), 1, 4, points, part_labels=True)
    index = {"object_id": np.array([s[1] for s in shapes]),
             "category": np.array([s[0] for s in shapes]),
             "label": np.array([robots.index(s[0]) for s in shapes], dtype=np.int32),
             "split": np.array(["test" if s == "test" else "train" for s in splits])}
    attributes = {"categories": robots, "category_names": robots,
                  "parts": {r: [name for name, _ in ROBOTS[r].parts] for r in robots}}
    group = create_dataset(path, specs, len(shapes), attributes, index)
    group["points"][:] = np.stack([s[2] for s in shapes])
    group["normals"][:] = np.stack([s[3] for s in shapes])
    group["part"][:] = np.stack([s[4] + offsets[s[0]] for s in shapes]).astype(np.int16)
    group["status"][:] = np.full(len(shapes), STATUS_DONE, dtype=np.uint8)
    return path
