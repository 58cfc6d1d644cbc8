"""Labelled point clouds for downstream evaluation, recognised from the path.

Four layouts (docs/evaluation.md, "Downstream files"):

- ScanObjectNN (Uy et al., ICCV 2019), the ``h5_files`` folder (or one of its split folders):
  ``main_split/{training,test}_objectdataset_augmentedrot_scale75.h5`` (variant ``pb_t50_rs``,
  11,416 / 2,882 samples), ``main_split/{training,test}_objectdataset.h5`` (``obj_bg``),
  ``main_split_nobg/{training,test}_objectdataset.h5`` (``obj_only``); keys ``data``
  ``(N, 2048, 3)`` float and ``label`` ``(N,)`` of any integer dtype; 15 classes, or one a line
  in ``shape_names.txt`` beside the split folders (a set in this layout with its own classes,
  as :mod:`tap3d.clouds.robot_parts` writes).
- ModelNet40 ``modelnet40_ply_hdf5_2048/`` (or its parent): ``ply_data_{train,test}*.h5`` with
  ``data`` ``(N, 2048, 3)``, ``label`` ``(N, 1)`` uint8 and ``normal``; class names in
  ``shape_names.txt``.
- ModelNet40 ``modelnet40_normal_resampled/`` (or its parent), as PointNet++ (Qi et al. 2017,
  charlesq34/pointnet2), Point-BERT (lulutang0608/Point-BERT), Point-MAE and PointMLP use it:
  ``modelnet40_shape_names.txt`` (40 names, label order), ``modelnet40_{train,test}.txt`` (one
  shape id a line, ``airplane_0001``: 9,843 / 2,468), ``<class>/<shape id>.txt`` (10,000 lines
  ``x,y,z,nx,ny,nz``), and Point-BERT's preprocessed ``modelnet40_{train,test}_<P>pts_fps.dat``
  (``P`` 1024 or 8192: a pickle of ``[list_of_points, list_of_labels]``, each points ``(P, 6)``
  float32 in farthest-point order, each label ``(1,)`` int32; read by
  :func:`tap3d.clouds.safe_pickle.load_numpy_pickle`, which runs no code).
- a tap3d dataset (``tap3d.views``): ``points`` and ``label`` of the done objects; the ``split``
  array where the source defines one (ModelNet meshes), else a seeded per-category split.

All are y-up (ScanObjectNN's and ModelNet40's ``gravity_dim`` is 1 in the TAP authors'
code, and ``modelnet40_normal_resampled`` shares the h5 files' frame; ShapeNetCore is y-up; a mesh
folder keeps its own axes).
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field

import numpy as np

from tap3d.clouds.errors import LabelledDataError
from tap3d.clouds.modelnet_resampled import read_lines, read_modelnet40_resampled, resampled_folder

__all__ = ["LabelledPoints", "LabelledDataError", "SCANOBJECTNN_CLASSES", "SCANOBJECTNN_VARIANTS",
           "seeded_split", "dataset_split", "open_done_objects",
           "load_labelled"]

#: ScanObjectNN's 15 classes in label order (the dataset's release; TAP's ``scanobjectnn.py``).
SCANOBJECTNN_CLASSES = ("bag", "bin", "box", "cabinet", "chair", "desk", "display", "door",
                        "shelf", "table", "bed", "pillow", "sink", "sofa", "toilet")
#: variant -> (split folder, file stem); files are ``{training,test}_<stem>.h5``.
SCANOBJECTNN_VARIANTS = {
    "pb_t50_rs": ("main_split", "objectdataset_augmentedrot_scale75"),
    "obj_bg": ("main_split", "objectdataset"),
    "obj_only": ("main_split_nobg", "objectdataset"),
}


@dataclass
class LabelledPoints:
    """A classification benchmark held in memory.

    Attributes:
        name: ``scanobjectnn/<variant>``, ``modelnet40`` or ``tap3d``.
        path: where it was read from.
        classes: class names; label ``i`` is ``classes[i]``.
        train_points, test_points: ``(N, P, 3)`` float32 point clouds, y-up.
        train_labels, test_labels: ``(N,)`` int64 in ``[0, len(classes))``.
        up_axis: index of the up axis (1).
        notes: how the split was made, points dropped, ...
        train_normals, test_normals: ``(N, P, 3)`` float32 normals of the points where the
            files hold them (ModelNet40's h5 ``normal``, ``modelnet40_normal_resampled``), else
            None.
    """

    name: str
    path: str
    classes: list[str]
    train_points: np.ndarray
    train_labels: np.ndarray
    test_points: np.ndarray
    test_labels: np.ndarray
    up_axis: int = 1
    notes: list[str] = field(default_factory=list)
    train_normals: np.ndarray | None = None
    test_normals: np.ndarray | None = None

    def summary(self) -> str:
        """One line: name, sizes, classes."""
        return (f"{self.name} ({self.path}): {len(self.train_labels)} train / "
                f"{len(self.test_labels)} test clouds of {self.train_points.shape[1]} points, "
                f"{len(self.classes)} classes")


def _read_h5(path: str, classes: int | None = None, normals: list | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """``data`` ``(N, P, 3)`` float32 and ``label`` ``(N,)`` int64 of one h5 file; with a list
    ``normals``, the file's ``normal`` ``(N, P, 3)`` float32 (or None) is appended to it."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            missing = [key for key in ("data", "label") if key not in f]
            if missing:
                raise LabelledDataError(f"{path}: no {' or '.join(missing)} in the file "
                                        f"(keys: {', '.join(f.keys())})")
            data, label = np.asarray(f["data"]), np.asarray(f["label"])
            if normals is not None:
                normal = np.asarray(f["normal"]) if "normal" in f else None
                normals.append(normal[..., :3].astype(np.float32) if normal is not None
                               and normal.shape[:2] == data.shape[:2] else None)
    except OSError as error:
        raise LabelledDataError(f"{path}: not a readable HDF5 file ({error})") from None
    if data.ndim != 3 or data.shape[2] < 3:
        raise LabelledDataError(f"{path}: data has shape {data.shape}, expected (N, points, 3)")
    if label.dtype.kind not in "iu" or label.size != data.shape[0]:
        raise LabelledDataError(f"{path}: label has shape {label.shape} and dtype {label.dtype}, "
                                f"expected {data.shape[0]} integers")
    label = label.reshape(-1).astype(np.int64)
    if label.min() < 0 or (classes is not None and label.max() >= classes):
        raise LabelledDataError(f"{path}: labels {label.min()}..{label.max()} outside "
                                f"0..{(classes or 1) - 1}")
    return np.ascontiguousarray(data[..., :3], dtype=np.float32), label


def _scanobjectnn(path: str, variant: str) -> LabelledPoints:
    if variant not in SCANOBJECTNN_VARIANTS:
        raise LabelledDataError(f"unknown ScanObjectNN variant {variant!r}; choose one of "
                                f"{', '.join(SCANOBJECTNN_VARIANTS)}")
    folder, stem = SCANOBJECTNN_VARIANTS[variant]
    base = os.path.basename(os.path.normpath(path))
    if base in ("main_split", "main_split_nobg"):
        if base != folder:
            raise LabelledDataError(f"{path}: ScanObjectNN {variant} is read from {folder}/, "
                                    f"not {base}/ (pass the h5_files folder or --variant)")
        root = path
    else:
        root = os.path.join(path, folder)
    classes, notes = list(SCANOBJECTNN_CLASSES), []
    names_file = os.path.join(os.path.dirname(os.path.normpath(root)), "shape_names.txt")
    if os.path.isfile(names_file):  # a set in ScanObjectNN's layout with its own classes
        classes = read_lines(names_file)
        notes.append(f"classes: {names_file}")
    splits = []
    for split in ("training", "test"):
        file = os.path.join(root, f"{split}_{stem}.h5")
        if not os.path.isfile(file):
            raise LabelledDataError(f"{path}: ScanObjectNN {variant} needs {file}, which is "
                                    "missing")
        splits.append(_read_h5(file, len(classes)))
    (train, train_y), (test, test_y) = splits
    return LabelledPoints(f"scanobjectnn/{variant}", path, classes, train, train_y, test,
                          test_y, notes=notes)


def _modelnet40_files(folder: str, split: str) -> list[str]:
    """``ply_data_<split>N.h5`` files in numeric order."""
    files = glob.glob(os.path.join(folder, f"ply_data_{split}*.h5"))
    number = re.compile(rf"ply_data_{split}(\d*)\.h5$")
    return sorted(files, key=lambda f: int(number.search(f).group(1) or 0)
                  if number.search(f) else 0)


def _modelnet40(path: str) -> LabelledPoints:
    folder = path
    if not _modelnet40_files(folder, "train"):
        folder = os.path.join(path, "modelnet40_ply_hdf5_2048")
    names_file = os.path.join(folder, "shape_names.txt")
    if not os.path.isfile(names_file):
        raise LabelledDataError(f"{path}: ModelNet40 h5 needs {names_file} (the class names), "
                                "which is missing")
    classes = read_lines(names_file)
    parts = []
    for split in ("train", "test"):
        files = _modelnet40_files(folder, split)
        if not files:
            raise LabelledDataError(f"{path}: no ply_data_{split}*.h5 in {folder}")
        normals: list = []
        read = [_read_h5(file, len(classes), normals) for file in files]
        parts.append((np.concatenate([r[0] for r in read]), np.concatenate([r[1] for r in read]),
                      None if any(n is None for n in normals) else np.concatenate(normals)))
    (train, train_y, train_n), (test, test_y, test_n) = parts
    return LabelledPoints("modelnet40", path, classes, train, train_y, test, test_y,
                          train_normals=train_n, test_normals=test_n)


def _modelnet40_resampled(path: str, max_points: int) -> LabelledPoints:
    classes, ((train, train_y, train_n), (test, test_y, test_n)), notes = \
        read_modelnet40_resampled(path, max_points)
    return LabelledPoints("modelnet40", path, classes, train, train_y, test, test_y, notes=notes,
                          train_normals=train_n, test_normals=test_n)


def seeded_split(labels: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean test mask: per category, ``round(n * test_fraction)`` objects drawn with ``seed``
    (at least one left for training)."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        count = min(int(round(len(members) * test_fraction)), len(members) - 1)
        test[members[:max(count, 0)]] = True
    return test


def dataset_split(group, done: np.ndarray, labels: np.ndarray, test_fraction: float,
                  seed: int) -> tuple[np.ndarray, str]:
    """``(test mask (len(done),) bool, note)`` of a tap3d dataset's done objects ``done``
    (indices) with category ``labels``: the ``split`` array where it holds only ``train`` and
    ``test`` and some ``test``, else :func:`seeded_split`."""
    split = np.array([str(s) for s in group["split"][:]])[done] if "split" in group else None
    if split is not None and np.isin(split, ("train", "test")).all() and (split == "test").any():
        return split == "test", "split: the dataset's split array"
    return (seeded_split(labels, test_fraction, seed),
            f"split: seeded per category (test fraction {test_fraction}, seed {seed})")


def open_done_objects(path: str, arrays, error=None) -> tuple[object, np.ndarray]:
    """``(group, done)``: the tap3d dataset at ``path`` and the indices ``(D,)`` int64 of its
    done objects (``status`` 1), after checking that it holds ``arrays``.

    Raises:
        ``error`` (default :class:`LabelledDataError`): not a tap3d dataset, without one of
            ``arrays`` (named), or with no done object; the message names ``path``.
    """
    from tap3d.views.schema import STATUS_DONE, FormatError, open_views

    error = error or LabelledDataError
    try:
        group = open_views(path)
    except FormatError as failure:
        raise error(str(failure)) from None
    missing = [name for name in (*arrays, "status") if name not in group]
    if missing:
        raise error(f"{path}: tap3d dataset without {', '.join(missing)}")
    done = np.flatnonzero(group["status"][:] == STATUS_DONE)
    if len(done) == 0:
        raise error(f"{path}: no object is done (status 1)")
    return group, done


def _tap3d(path: str, test_fraction: float, seed: int, max_points: int) -> LabelledPoints:
    group, done = open_done_objects(path, ("points", "label"))
    # The stored samples are i.i.d. area-weighted surface samples: the first max_points are a
    # uniform random subset of them.
    points = np.asarray(group["points"][:, :max_points], dtype=np.float32)[done]
    labels = np.asarray(group["label"][:], dtype=np.int64)[done]
    categories = list(group.attrs["categories"])
    classes = list(group.attrs.get("category_names") or categories)
    test, note = dataset_split(group, done, labels, test_fraction, seed)
    return LabelledPoints("tap3d", path, classes, points[~test], labels[~test], points[test],
                          labels[test], notes=[note])


def load_labelled(path: str | os.PathLike, variant: str = "pb_t50_rs", test_fraction: float = 0.2,
                  seed: int = 0, max_points: int = 2048) -> LabelledPoints:
    """Read a labelled point-cloud dataset, recognised from its path.

    Args:
        path: a ScanObjectNN ``h5_files`` folder (or ``main_split``/``main_split_nobg``), a
            ModelNet40 ``modelnet40_ply_hdf5_2048`` or ``modelnet40_normal_resampled`` folder
            (or the parent of either), or a tap3d dataset (module docstring: the layouts).
        variant: ScanObjectNN variant: ``pb_t50_rs`` (hardest, the default), ``obj_bg``,
            ``obj_only``.
        test_fraction, seed: the per-category split of a tap3d dataset without ``split``.
        max_points: points kept per object of a tap3d dataset and of
            ``modelnet40_normal_resampled`` (the first ones: of a ``*pts_fps.dat`` file, the
            smallest with ``max_points`` points, else the largest, is read; without one, the
            first ``max_points`` lines of each ``<shape>.txt``); h5 files are read whole.

    Returns:
        A :class:`LabelledPoints`.

    Raises:
        LabelledDataError: the path does not exist, is none of these layouts, or lacks a file
            or array, a file is malformed, or a ``.dat`` pickle names a global other than numpy's
            array rebuilders (nothing in it is run); the message names the file and what is
            wrong.
    """
    path = os.fspath(path)
    if "://" not in path and not os.path.exists(path):
        raise LabelledDataError(f"{path}: does not exist")
    if os.path.isdir(path):
        if any(os.path.isdir(os.path.join(path, d)) for d in ("main_split", "main_split_nobg")) \
                or os.path.basename(os.path.normpath(path)) in ("main_split", "main_split_nobg"):
            return _scanobjectnn(path, variant)
        if _modelnet40_files(path, "train") or \
                os.path.isdir(os.path.join(path, "modelnet40_ply_hdf5_2048")):
            return _modelnet40(path)
        if resampled_folder(path):
            return _modelnet40_resampled(path, max_points)
        if not os.path.isfile(os.path.join(path, "zarr.json")):
            hint = (" (Point-BERT's few-shot folds are read by tap-cli probe --few-shot-folds)"
                    if glob.glob(os.path.join(path, "*way*shot", "*.pkl")) else "")
            raise LabelledDataError(
                f"{path}: not a labelled point-cloud dataset: expected ScanObjectNN "
                "(main_split/training_objectdataset_augmentedrot_scale75.h5, ...), ModelNet40 "
                "(ply_data_train*.h5 and shape_names.txt, or modelnet40_normal_resampled with "
                f"modelnet40_shape_names.txt) or a tap3d dataset (zarr.json){hint}")
    return _tap3d(path, test_fraction, seed, max_points)
