"""Linear probe of a frozen backbone: what ``tap-cli probe DATA`` calls.

The linear evaluation of point-cloud pre-training papers: the frozen backbone's per-point
features, max- and mean-pooled and concatenated, feed a linear SVM (scikit-learn's
``LinearSVC`` after standardizing each feature, so that random and trained features meet the
same regularization) trained on the training split and scored on the test split (OA, percent).

Few-shot (``NwayKshot``): 10 seeded folds built as Point-BERT builds its ModelNet40 folds: per
fold ``N`` random classes, ``K`` training samples (from the training split) and ``query`` (20)
test samples (from the test split) of each; an SVM per fold on the same frozen features;
reported as mean and standard deviation of the fold accuracies.

Two sources of few-shot folds: tap3d's (the default), drawn per ``seed`` from DATA's splits as
above (:func:`few_shot_folds`), any labelled set, any ``NwayKshot``; or Point-BERT's fixed fold
files (``tap-cli probe DATA --few-shot-folds PATH``, read by :mod:`tap3d.clouds.folds`).
"""

from __future__ import annotations

import copy
import os

import numpy as np
import torch

from tap3d.devices import resolve_device
from tap3d.clouds.pipeline import eval_features
from tap3d.clouds.folds import fold_files, fold_folders, parse_few_shot, read_fold_file
from tap3d.clouds.labelled import SCANOBJECTNN_VARIANTS, LabelledDataError, load_labelled
from tap3d.evaluate.tsne import draw_tsne
from tap3d.settings import Device, UpAxis, one_of, setting, settings
from tap3d.models.backbones import BackboneName
from tap3d.train.weights import load_backbone

__all__ = ["ProbeConfig", "pooled_features", "svm_accuracy", "few_shot_folds",
           "few_shot_accuracy", "tsne_panels", "probe"]


@settings
class ProbeConfig:
    """Settings of ``tap-cli probe`` and :func:`probe` (:mod:`tap3d.settings`: defaults <
    ``--config`` file < options); docs/evaluation.md ("Weights and the probe") explains them."""

    backbone_checkpoint: str = setting(
        "", "Run folder, tap3d backbone file or the authors' checkpoint; empty: a random "
        "backbone (backbone, embed_dim, seeded).")
    backbone: BackboneName = setting("pointmlp", "The random backbone's architecture.")
    embed_dim: int = setting(64, "The random backbone's base width.")
    few_shot: list[str] = setting(help="NwayKshot settings, e.g. 5way10shot (repeatable).",
                                  default_factory=list)
    few_shot_folds: str = setting(
        "", "Point-BERT's ModelNetFewshot folder: score its fixed folds instead of seeded ones.")
    folds: int = setting(10, "Seeded few-shot folds.")
    query: int = setting(20, "Test samples per class of a seeded few-shot fold.")
    points: int = setting(1024, "Points per cloud (farthest points, once).")
    svm_c: float = setting(0.01, "The linear SVM's C.")
    variant: one_of(SCANOBJECTNN_VARIANTS) = setting("pb_t50_rs", "ScanObjectNN variant.")
    test_fraction: float = setting(0.2, "Test share of a tap3d dataset's seeded split.")
    up_axis: UpAxis = setting(1, "World up axis of the height feature (1: y-up).")
    batch_size: int = setting(64, "Clouds per forward pass.")
    seed: int = setting(0, "Seed of the random backbone and of the few-shot folds.")
    device: Device = setting("auto", "auto (CUDA when present), cpu, cuda or cuda:N.")
    tsne: str = setting(
        "", "Write a t-SNE picture of the test features, coloured by class, to this PNG.")


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


def tsne_panels(model, pretrained: bool, features: np.ndarray, inputs: torch.Tensor, seed: int,
                batch_size: int = 64) -> dict[str, np.ndarray]:
    """The t-SNE panels of the probe: ``features`` under its initialization's name, and for a
    pre-trained ``model`` first the features of a copy re-initialized with ``seed`` (every
    module's ``reset_parameters``), so both panels share the architecture."""
    if not pretrained:
        return {"random initialization": features}
    fresh = copy.deepcopy(model)
    torch.manual_seed(seed)
    for module in fresh.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
    return {"random initialization": pooled_features(fresh, inputs, batch_size),
            "pre-trained": features}


def probe(data: str, config: ProbeConfig | None = None, *, trust: bool = False) -> dict:
    """Linear SVM and few-shot accuracy of frozen backbone features.

    Args:
        data: labelled dataset (:func:`tap3d.clouds.labelled.load_labelled`).
        config: the settings (default :class:`ProbeConfig`'s). With ``few_shot_folds`` the
            few-shot scores are those of Point-BERT's fold files (module docstring; every
            ``<fold>.pkl`` of each setting, all settings it holds when ``few_shot`` is empty);
            ``folds`` and ``query`` are then unused.
        trust: read a checkpoint that names types beyond tensors and numpy values with the
            full unpickler, which runs any code it holds
            (:func:`tap3d.train.torchfile.load_torch_file`; without it: CheckpointError).

    Returns:
        ``{"svm_oa", "few_shot": {"5way10shot": [mean, std], ...}, "few_shot_folds":
        {"5way10shot": folds scored, ...}, "few_shot_source", "dataset", "backbone",
        "backbone_checkpoint", "train", "test"}`` (and with ``tsne`` ``"tsne": {"file",
        "silhouette": {panel: score}}``), accuracies in percent; ``few_shot_source`` is
        ``seeded`` or the fold files' folder.

    Raises:
        LabelledDataError, WeightsError, ValueError: bad data, fold file, checkpoint or setting.
    """
    c = config or ProbeConfig()
    few_shot_files, batch_size = c.few_shot_folds, c.batch_size
    settings = {s: parse_few_shot(s) for s in c.few_shot}
    files = {}
    if few_shot_files:
        if not settings:
            settings = {s: parse_few_shot(s) for s in fold_folders(os.fspath(few_shot_files))}
            if not settings:
                raise LabelledDataError(f"{few_shot_files}: no <N>way_<K>shot folder of "
                                        "Point-BERT's few-shot folds")
        files = {name: fold_files(few_shot_files, name) for name in settings}
    device = torch.device(resolve_device(c.device))
    labelled = load_labelled(data, c.variant, c.test_fraction, c.seed)
    torch.manual_seed(c.seed)
    model, weights = load_backbone(c.backbone_checkpoint, c.backbone, c.embed_dim, trust=trust)
    backbone = weights.backbone if weights else c.backbone
    model.to(device)
    inputs = [eval_features(clouds, c.points, c.up_axis, device, batch_size)
              for clouds in (labelled.train_points, labelled.test_points)]
    features = [pooled_features(model, x, batch_size) for x in inputs]
    (train_x, test_x), train_y, test_y = features, labelled.train_labels, labelled.test_labels
    result = {"svm_oa": svm_accuracy(train_x, train_y, test_x, test_y, c.svm_c), "few_shot": {},
              "few_shot_folds": {},
              "few_shot_source": str(few_shot_files) if few_shot_files else "seeded",
              "dataset": str(data), "backbone": backbone,
              "backbone_checkpoint": str(c.backbone_checkpoint or ""), "train": len(train_y),
              "test": len(test_y)}
    if c.tsne:
        result["tsne"] = {"file": str(c.tsne), "silhouette": draw_tsne(
            c.tsne, tsne_panels(model, bool(c.backbone_checkpoint), features[1], inputs[1],
                                c.seed, batch_size), test_y, labelled.classes, c.seed)}
    for name, (way, shot) in settings.items():
        if few_shot_files:
            scores = []
            for file in files[name]:
                fold = read_fold_file(file, way, shot)
                (fold_train, fold_train_y), (fold_test, fold_test_y) = fold["train"], fold["test"]
                fold_x = [pooled_features(model, eval_features(clouds, c.points, c.up_axis,
                                                               device, batch_size), batch_size)
                          for clouds in (fold_train, fold_test)]
                scores.append(svm_accuracy(fold_x[0], fold_train_y, fold_x[1], fold_test_y,
                                           c.svm_c))
            mean, std, count = float(np.mean(scores)), float(np.std(scores)), len(scores)
        else:
            mean, std = few_shot_accuracy(train_x, train_y, test_x, test_y, way, shot, c.query,
                                          c.folds, c.seed, c.svm_c)
            count = c.folds
        result["few_shot"][name] = [mean, std]
        result["few_shot_folds"][name] = count
    return result
