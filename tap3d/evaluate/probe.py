"""Linear probe of a frozen backbone: what ``tap-cli probe DATA`` calls.

The linear evaluation of point-cloud pre-training papers: the frozen backbone's per-point
features, max- and mean-pooled and concatenated, feed a linear SVM (scikit-learn's
``LinearSVC`` after standardizing each feature, so that random and trained features meet the
same regularization) trained on the training split and scored on the test split (OA, percent).

Few-shot (``NwayKshot``): 10 seeded folds built as Point-BERT builds its ModelNet40 folds: per
fold ``N`` random classes, ``K`` training samples (from the training split) and ``query`` (20)
test samples (from the test split) of each; an SVM per fold on the same frozen features;
reported as mean and standard deviation of the fold accuracies.

Two sources of few-shot folds:

- tap3d's (the default): drawn per ``seed`` from DATA's splits as above (:func:`few_shot_folds`);
  any labelled set, any ``NwayKshot``.
- Point-BERT's fixed files (``probe(..., few_shot_files=PATH)``, ``tap-cli probe DATA
  --few-shot-folds PATH``): the ModelNet40 folds that Point-BERT, Point-MAE and later papers
  report, ``ModelNetFewshot/<N>way_<K>shot/<fold>.pkl`` (folds 0-9 of 5/10-way 10/20-shot;
  lulutang0608/Point-BERT, ``datasets/generate_few_shot_data.py``), each a pickle of ``{"train":
  [(points, label, class), ...], "test": [...]}``: ``points`` ``(8192, 6)`` float32 (xyz,
  normals; farthest points of ``modelnet40_*_8192pts_fps.dat``), ``label`` the fold's class
  ``0 .. N - 1``, ``class`` the ModelNet40 label; ``N * K`` training and ``N * 20`` test
  samples (training ones from ModelNet40's training split, test ones from its test split).
  Read by :func:`read_fold_file` without running code
  (:func:`tap3d.clouds.safe_pickle.load_numpy_pickle`).
"""

from __future__ import annotations

import glob
import os
import re

import numpy as np
import torch

from tap3d.devices import resolve_device
from tap3d.clouds.pipeline import eval_features
from tap3d.clouds.labelled import LabelledDataError, load_labelled
from tap3d.train.weights import load_backbone

__all__ = ["pooled_features", "svm_accuracy", "parse_few_shot", "few_shot_folds",
           "few_shot_accuracy", "fold_files", "read_fold_file", "probe"]


@torch.no_grad()
def pooled_features(backbone, inputs: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """``(N, 2 C)`` float32: max- then mean-pooled features of the backbone (eval mode) on
    ``inputs`` ``(N, P, 4)``."""
    backbone.eval()
    out = []
    for start in range(0, len(inputs), batch_size):
        features, _ = backbone(inputs[start:start + batch_size])
        out.append(torch.cat([features.max(1).values, features.mean(1)], 1).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 2 * backbone.out_channels), "float32")


def svm_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                 test_y: np.ndarray, c: float = 0.01) -> float:
    """Test accuracy (percent) of a linear SVM (standardized features, ``C = c``)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    svm = make_pipeline(StandardScaler(), LinearSVC(C=c, max_iter=20000))
    svm.fit(train_x, train_y)
    return 100.0 * float((svm.predict(test_x) == test_y).mean())


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


def few_shot_folds(train_y: np.ndarray, test_y: np.ndarray, way: int, shot: int, query: int = 20,
                   folds: int = 10, seed: int = 0) -> list[dict]:
    """Seeded N-way K-shot folds.

    Args:
        train_y, test_y: ``(N,)`` labels of the training and test splits.
        way, shot, query: classes per fold, training and test samples per class.
        folds: number of folds.
        seed: the same seed gives the same folds.

    Returns:
        ``[{"classes": (way,), "train": (way * shot,), "test": (way * query,)}, ...]`` int64
        indices into the training and test splits.

    Raises:
        ValueError: fewer than ``way`` classes have ``shot`` training and ``query`` test samples.
    """
    eligible = [c for c in np.unique(train_y)
                if (train_y == c).sum() >= shot and (test_y == c).sum() >= query]
    if len(eligible) < way:
        raise ValueError(f"{way}way{shot}shot needs {way} classes with {shot} training and "
                         f"{query} test samples; {len(eligible)} have them")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(folds):
        classes = np.sort(rng.choice(eligible, way, replace=False))
        train = [rng.choice(np.flatnonzero(train_y == c), shot, replace=False) for c in classes]
        test = [rng.choice(np.flatnonzero(test_y == c), query, replace=False) for c in classes]
        out.append({"classes": classes, "train": np.concatenate(train),
                    "test": np.concatenate(test)})
    return out


def few_shot_accuracy(train_x, train_y, test_x, test_y, way: int, shot: int, query: int = 20,
                      folds: int = 10, seed: int = 0, c: float = 0.01) -> tuple[float, float]:
    """Mean and standard deviation (percent) of the SVM accuracy over the folds of
    :func:`few_shot_folds`."""
    scores = [svm_accuracy(train_x[f["train"]], train_y[f["train"]], test_x[f["test"]],
                           test_y[f["test"]], c)
              for f in few_shot_folds(train_y, test_y, way, shot, query, folds, seed)]
    return float(np.mean(scores)), float(np.std(scores))


def _fold_folders(root: str) -> dict[str, str]:
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
    folders = _fold_folders(root)
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
    from tap3d.clouds.safe_pickle import UnsafePickleError, load_numpy_pickle

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


def probe(data: str, backbone_checkpoint: str = "", backbone: str = "pointmlp",
          embed_dim: int = 64, few_shot=(), points: int = 1024, folds: int = 10,
          query: int = 20, svm_c: float = 0.01, seed: int = 0, device: str = "auto",
          variant: str = "pb_t50_rs", test_fraction: float = 0.2, up_axis: int = 1,
          batch_size: int = 64, few_shot_files: str = "", *, trust: bool = False) -> dict:
    """Linear SVM and few-shot accuracy of frozen backbone features.

    Args:
        data: labelled dataset (:func:`tap3d.clouds.labelled.load_labelled`).
        backbone_checkpoint: run folder, tap3d backbone file or the authors' checkpoint; empty
            for a randomly initialized backbone (``backbone``, ``embed_dim``, seeded).
        few_shot: settings such as ``"5way10shot"``.
        points: points per cloud (farthest-point sampled once, centred, unit radius, height).
        folds, query: few-shot folds and test samples per class (tap3d's seeded folds).
        svm_c: the SVM's ``C``.
        seed: backbone initialization and folds.
        device, variant, test_fraction, up_axis, batch_size: see ``FinetuneConfig``.
        few_shot_files: Point-BERT's ``ModelNetFewshot`` folder (module docstring): the
            few-shot scores are then those of its fixed fold files (every ``<fold>.pkl`` of each
            setting; all settings it holds when ``few_shot`` is empty) instead of seeded folds
            of DATA; ``folds`` and ``query`` are unused.
        trust: read a checkpoint that names types beyond tensors and numpy values with the
            full unpickler, which runs any code it holds
            (:func:`tap3d.train.torchfile.load_torch_file`; without it: CheckpointError).

    Returns:
        ``{"svm_oa", "few_shot": {"5way10shot": [mean, std], ...}, "few_shot_folds":
        {"5way10shot": folds scored, ...}, "few_shot_source", "dataset", "backbone",
        "backbone_checkpoint", "train", "test"}``, accuracies in percent; ``few_shot_source``
        is ``seeded`` or the fold files' folder.

    Raises:
        LabelledDataError, WeightsError, ValueError: bad data, fold file, checkpoint or setting.
    """
    settings = {s: parse_few_shot(s) for s in few_shot}
    files = {}
    if few_shot_files:
        if not settings:
            settings = {s: parse_few_shot(s) for s in _fold_folders(os.fspath(few_shot_files))}
            if not settings:
                raise LabelledDataError(f"{few_shot_files}: no <N>way_<K>shot folder of "
                                        "Point-BERT's few-shot folds")
        files = {name: fold_files(few_shot_files, name) for name in settings}
    device = torch.device(resolve_device(device))
    labelled = load_labelled(data, variant, test_fraction, seed)
    torch.manual_seed(seed)
    model, weights = load_backbone(backbone_checkpoint, backbone, embed_dim, trust=trust)
    backbone = weights.backbone if weights else backbone
    model.to(device)
    features = [pooled_features(model, eval_features(clouds, points, up_axis, device, batch_size),
                                batch_size)
                for clouds in (labelled.train_points, labelled.test_points)]
    (train_x, test_x), train_y, test_y = features, labelled.train_labels, labelled.test_labels
    result = {"svm_oa": svm_accuracy(train_x, train_y, test_x, test_y, svm_c), "few_shot": {},
              "few_shot_folds": {},
              "few_shot_source": str(few_shot_files) if few_shot_files else "seeded",
              "dataset": str(data), "backbone": backbone,
              "backbone_checkpoint": str(backbone_checkpoint or ""), "train": len(train_y),
              "test": len(test_y)}
    for name, (way, shot) in settings.items():
        if few_shot_files:
            scores = []
            for file in files[name]:
                fold = read_fold_file(file, way, shot)
                (fold_train, fold_train_y), (fold_test, fold_test_y) = fold["train"], fold["test"]
                fold_x = [pooled_features(model, eval_features(clouds, points, up_axis, device,
                                                               batch_size), batch_size)
                          for clouds in (fold_train, fold_test)]
                scores.append(svm_accuracy(fold_x[0], fold_train_y, fold_x[1], fold_test_y,
                                           svm_c))
            mean, std, count = float(np.mean(scores)), float(np.std(scores)), len(scores)
        else:
            mean, std = few_shot_accuracy(train_x, train_y, test_x, test_y, way, shot, query,
                                          folds, seed, svm_c)
            count = folds
        result["few_shot"][name] = [mean, std]
        result["few_shot_folds"][name] = count
    return result
