"""ModelNet40's ``modelnet40_normal_resampled`` layout, as PointNet++ (Qi et al. 2017,
charlesq34/pointnet2), Point-BERT (lulutang0608/Point-BERT), Point-MAE and PointMLP read it:
``modelnet40_shape_names.txt``, ``modelnet40_{train,test}.txt``, ``<class>/<shape id>.txt``
(``x,y,z,nx,ny,nz`` lines) and Point-BERT's ``modelnet40_{train,test}_<P>pts_fps.dat`` pickles
(read by :func:`tap3d.clouds.safe_pickle.load_numpy_pickle`, which runs no code). Used by
:func:`tap3d.clouds.labelled.load_labelled`.
"""

from __future__ import annotations

import os
import re

import numpy as np

from tap3d.clouds.errors import LabelledDataError
from tap3d.clouds.safe_pickle import UnsafePickleError, load_numpy_pickle

__all__ = ["resampled_folder", "read_lines", "read_modelnet40_resampled"]


#: Point-BERT's / PointMLP's / Point-MAE's preprocessed ModelNet40 files (module docstring).
_FPS_DAT = re.compile(r"modelnet40_(train|test)_(\d+)pts_fps\.dat$")


def resampled_folder(path: str) -> str | None:
    """The ``modelnet40_normal_resampled`` folder at ``path`` or inside it, else None."""
    for folder in (path, os.path.join(path, "modelnet40_normal_resampled")):
        if os.path.isfile(os.path.join(folder, "modelnet40_shape_names.txt")):
            return folder
    return None


def read_lines(path: str) -> list[str]:
    """The non-empty lines of a text file (class names, shape ids), stripped."""
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def _read_fps_dat(path: str, classes: int, max_points: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(points (N, P, 3), labels (N,) int64, normals (N, P, 3) or None)`` of one
    ``modelnet40_<split>_<P>pts_fps.dat``, the first ``max_points`` of each cloud (farthest-point
    order: the first ``k`` are a farthest-point sample of ``k``)."""
    try:
        content = load_numpy_pickle(path)
    except UnsafePickleError as error:
        raise LabelledDataError(str(error)) from None
    if not isinstance(content, (list, tuple)) or len(content) not in (2, 3) or \
            not all(isinstance(c, (list, tuple)) for c in content):
        raise LabelledDataError(f"{path}: expected a pickle of [list_of_points, list_of_labels] "
                                f"(Point-BERT's layout), got {type(content).__name__}")
    clouds, labels = content[0], content[1]
    if len(clouds) != len(labels) or not clouds:
        raise LabelledDataError(f"{path}: {len(clouds)} point clouds and {len(labels)} labels")
    shapes = {np.shape(cloud) for cloud in clouds}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2 or next(iter(shapes))[1] < 3 or \
            any(np.asarray(cloud).dtype.kind != "f" for cloud in clouds):
        raise LabelledDataError(f"{path}: expected float clouds of one shape (P, 3 or 6), got "
                                f"shapes {sorted(shapes)[:3]}")
    table = np.stack([np.asarray(cloud)[:max_points] for cloud in clouds]).astype(np.float32)
    flat = [np.asarray(label).reshape(-1) for label in labels]
    if any(f.size != 1 or f.dtype.kind not in "iu" for f in flat):
        raise LabelledDataError(f"{path}: expected one integer label per cloud")
    label = np.concatenate(flat).astype(np.int64)
    if label.min() < 0 or label.max() >= classes:
        raise LabelledDataError(f"{path}: labels {label.min()}..{label.max()} outside "
                                f"0..{classes - 1}")
    normals = table[..., 3:6] if table.shape[2] >= 6 else None
    return np.ascontiguousarray(table[..., :3]), label, normals


def _read_resampled_txt(folder: str, ids: list[str], classes: list[str], max_points: int,
                        ids_file: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(points (N, P, 3), labels (N,), normals (N, P, 3))`` from ``<class>/<id>.txt``, the
    first ``max_points`` lines of each (as PointNet++ without ``uniform``)."""
    index = {name: i for i, name in enumerate(classes)}
    points, labels = [], []
    for number, shape in enumerate(ids, 1):
        name = shape.rsplit("_", 1)[0]
        if name not in index:
            raise LabelledDataError(f"{ids_file}:{number}: shape {shape!r} is of class "
                                    f"{name!r}, not in modelnet40_shape_names.txt")
        file = os.path.join(folder, name, f"{shape}.txt")
        if not os.path.isfile(file):
            raise LabelledDataError(f"{file}: listed in {ids_file} but missing")
        try:
            table = np.loadtxt(file, delimiter=",", max_rows=max_points, dtype=np.float32,
                               ndmin=2)
        except ValueError as error:
            raise LabelledDataError(f"{file}: not comma-separated x,y,z,nx,ny,nz lines "
                                    f"({error})") from None
        if table.shape[1] != 6 or not len(table):
            raise LabelledDataError(f"{file}: {table.shape[1]} columns, expected 6 "
                                    "(x,y,z,nx,ny,nz)")
        points.append(table)
        labels.append(index[name])
    counts = {len(table) for table in points}
    if len(counts) != 1:
        raise LabelledDataError(f"{folder}: shapes of {ids_file} have {min(counts)} to "
                                f"{max(counts)} points (of the first {max_points}); expected "
                                "the same number")
    table = np.stack(points)
    return (np.ascontiguousarray(table[..., :3]), np.array(labels, dtype=np.int64),
            np.ascontiguousarray(table[..., 3:6]))


def read_modelnet40_resampled(path: str, max_points: int):
    """The ``modelnet40_normal_resampled`` folder at ``path`` (or inside it): Point-BERT's
    ``.dat`` files where present (the smallest with ``max_points`` points, else the largest),
    else the ``<class>/<shape id>.txt`` files of each split's list.

    Returns:
        ``(classes, [(points (N, P, 3) float32, labels (N,) int64, normals (N, P, 3) or None)
        for train, test], notes)``: the class names in label order, each split, and one line a
        split saying what was read.

    Raises:
        LabelledDataError: a missing list or file, a malformed file (named with its line where
            it has one), labels outside the classes.
    """
    folder = resampled_folder(path)
    classes = read_lines(os.path.join(folder, "modelnet40_shape_names.txt"))
    dat: dict[str, dict[int, str]] = {"train": {}, "test": {}}
    for name in sorted(os.listdir(folder)):
        match = _FPS_DAT.fullmatch(name)
        if match:
            dat[match.group(1)][int(match.group(2))] = os.path.join(folder, name)
    splits, notes = [], []
    for split in ("train", "test"):
        ids_file = os.path.join(folder, f"modelnet40_{split}.txt")
        ids = read_lines(ids_file) if os.path.isfile(ids_file) else None
        if dat[split]:  # the smallest file with max_points points, else the largest
            sizes = sorted(dat[split])
            size = next((n for n in sizes if n >= max_points), sizes[-1])
            points, labels, normals = _read_fps_dat(dat[split][size], len(classes), max_points)
            if ids is not None and len(ids) != len(labels):
                raise LabelledDataError(f"{dat[split][size]}: {len(labels)} clouds, but "
                                        f"{ids_file} lists {len(ids)} shapes")
            notes.append(f"{split}: {os.path.basename(dat[split][size])} (first "
                         f"{points.shape[1]} of {size} farthest points)")
        elif ids is not None:
            points, labels, normals = _read_resampled_txt(folder, ids, classes, max_points,
                                                          ids_file)
            notes.append(f"{split}: {len(ids)} <class>/<shape>.txt files (first "
                         f"{points.shape[1]} points)")
        else:
            raise LabelledDataError(f"{path}: ModelNet40 (modelnet40_normal_resampled) needs "
                                    f"{ids_file} or modelnet40_{split}_<P>pts_fps.dat in "
                                    f"{folder}; neither is there")
        splits.append((points, labels, normals))
    return classes, splits, notes
