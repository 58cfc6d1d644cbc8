"""Point-BERT's few-shot fold files: the fixed ModelNet40 folds that Point-BERT, Point-MAE and
later papers report (``tap-cli probe DATA --few-shot-folds PATH``).

``ModelNetFewshot/<N>way_<K>shot/<fold>.pkl`` (folds 0-9 of 5/10-way 10/20-shot;
lulutang0608/Point-BERT, ``datasets/generate_few_shot_data.py``), each a pickle of ``{"train":
[(points, label, class), ...], "test": [...]}``: ``points`` ``(8192, 6)`` float32 (xyz,
normals; farthest points of ``modelnet40_*_8192pts_fps.dat``), ``label`` the fold's class
``0 .. N - 1``, ``class`` the ModelNet40 label; ``N * K`` training and ``N * 20`` test samples
(training ones from ModelNet40's training split, test ones from its test split). Read without
running code (:func:`tap3d.clouds.safe_pickle.load_numpy_pickle`).
"""

from __future__ import annotations

import glob
import os
import re

import numpy as np

from tap3d.clouds.labelled import LabelledDataError
from tap3d.clouds.safe_pickle import UnsafePickleError, load_numpy_pickle

__all__ = ["parse_few_shot", "fold_folders", "fold_files", "read_fold_file"]


def parse_few_shot(setting: str) -> tuple[int, int]:
    """``"5way10shot"`` -> ``(5, 10)``.

    Raises:
        ValueError: not ``<N>way<K>shot``.
    """
    match = re.fullmatch(r"(\d+)way(\d+)shot", setting.strip().lower())
    if not match or int(match.group(1)) < 2 or int(match.group(2)) < 1:
        raise ValueError(f"few-shot setting {setting!r} is not NwayKshot (N >= 2, K >= 1), "
                         "e.g. 5way10shot")
    return int(match.group(1)), int(match.group(2))


def fold_folders(root: str) -> dict[str, str]:
    """``{"5way10shot": folder, ...}`` of Point-BERT's fold folders at ``root``: its
    ``<N>way_<K>shot`` (or ``<N>way<K>shot``) subfolders, or ``root`` itself when it is one."""
    pattern = re.compile(r"(\d+)way_?(\d+)shot")
    found = {}
    for folder in [root] + sorted(glob.glob(os.path.join(root, "*"))):
        match = pattern.fullmatch(os.path.basename(os.path.normpath(folder)))
        if match and os.path.isdir(folder):
            found.setdefault(f"{match.group(1)}way{match.group(2)}shot", folder)
    return found


def fold_files(root: str | os.PathLike, setting: str) -> list[str]:
    """Point-BERT's fold files of one setting, in fold order.

    Args:
        root: the ``ModelNetFewshot`` folder (``5way_10shot/0.pkl`` ... inside) or one
            setting's folder.
        setting: ``"5way10shot"`` (:func:`parse_few_shot`).

    Returns:
        ``[".../5way_10shot/0.pkl", ..., ".../9.pkl"]``: the ``<fold>.pkl`` files, by number.

    Raises:
        LabelledDataError: no folder of that setting, or none of its ``<fold>.pkl`` files.
    """
    root = os.fspath(root)
    way, shot = parse_few_shot(setting)
    folders = fold_folders(root)
    folder = folders.get(f"{way}way{shot}shot")
    if folder is None:
        raise LabelledDataError(
            f"{root}: no {way}way_{shot}shot folder of Point-BERT's few-shot folds "
            f"(ModelNetFewshot/<N>way_<K>shot/<fold>.pkl); found: "
            f"{', '.join(folders) or 'none'}")
    files = [f for f in glob.glob(os.path.join(folder, "*.pkl"))
             if os.path.basename(f)[:-4].isdigit()]
    if not files:
        raise LabelledDataError(f"{folder}: no <fold>.pkl files (0.pkl ... 9.pkl)")
    return sorted(files, key=lambda f: int(os.path.basename(f)[:-4]))


def read_fold_file(path: str | os.PathLike, way: int | None = None, shot: int | None = None
                   ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """One of Point-BERT's few-shot fold files (module docstring), read without running code.

    Args:
        path: ``<N>way_<K>shot/<fold>.pkl``.
        way, shot: when given, checked: ``way`` classes in the training samples with ``shot``
            samples each, and the test samples of the same classes.

    Returns:
        ``{"train": (points, labels), "test": (points, labels)}``: points ``(n, P, 3)`` float32
        (xyz of each sample's ``(P, 3 or 6)`` array; normals dropped), labels ``(n,)`` int64,
        the fold's classes ``0 .. way - 1``.

    Raises:
        LabelledDataError: a global other than numpy's array rebuilders in the pickle (file and
            global named; nothing in it runs), not ``{"train": [...], "test": [...]}`` of
            ``(points, label, ...)`` tuples, clouds of different shapes, or classes and counts
            other than ``way`` and ``shot``.
    """
    path = os.fspath(path)
    try:
        content = load_numpy_pickle(path)
    except UnsafePickleError as error:
        raise LabelledDataError(str(error)) from None
    if not isinstance(content, dict) or not {"train", "test"} <= set(content):
        raise LabelledDataError(f"{path}: expected a pickle of {{'train': [...], 'test': [...]}} "
                                "(Point-BERT's few-shot folds)")
    out = {}
    for split in ("train", "test"):
        samples = content[split]
        if not isinstance(samples, (list, tuple)) or not samples or not all(
                isinstance(s, (list, tuple)) and len(s) >= 2 for s in samples):
            raise LabelledDataError(f"{path}: {split} is not a list of (points, label, class) "
                                    "tuples")
        clouds = [np.asarray(s[0]) for s in samples]
        shapes = {c.shape for c in clouds}
        if len(shapes) != 1 or len(clouds[0].shape) != 2 or clouds[0].shape[1] < 3 or \
                any(c.dtype.kind != "f" for c in clouds):
            raise LabelledDataError(f"{path}: {split} clouds are not float arrays of one shape "
                                    f"(P, 3 or 6): {sorted(map(str, shapes))[:3]}")
        labels = [np.asarray(s[1]).reshape(-1) for s in samples]
        if any(label.size != 1 or label.dtype.kind not in "iu" or label[0] < 0
               for label in labels):
            raise LabelledDataError(f"{path}: {split} labels are not one integer >= 0 per "
                                    "sample")
        out[split] = (np.ascontiguousarray(np.stack(clouds)[..., :3], dtype=np.float32),
                      np.concatenate(labels).astype(np.int64))
    (_, train_y), (_, test_y) = out["train"], out["test"]
    counts = np.bincount(train_y)
    if way is not None and (len(set(train_y.tolist())) != way or
                            (shot is not None and set(counts[counts > 0]) != {shot})):
        raise LabelledDataError(f"{path}: the training samples hold {len(set(train_y.tolist()))} "
                                f"classes with {sorted(set(counts[counts > 0].tolist()))} "
                                f"samples each, not {way}way{shot}shot")
    if set(test_y.tolist()) != set(train_y.tolist()):
        raise LabelledDataError(f"{path}: test classes {sorted(set(test_y.tolist()))} differ "
                                f"from the training classes {sorted(set(train_y.tolist()))}")
    return out
