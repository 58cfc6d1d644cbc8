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
import dataclasses
import os

import numpy as np
import torch

from tap3d.devices import resolve_device
from tap3d.clouds.pipeline import eval_features
from tap3d.clouds.folds import fold_files, fold_folders, parse_few_shot, read_fold_file
from tap3d.clouds.labelled import SCANOBJECTNN_VARIANTS, LabelledDataError, load_labelled
from tap3d.evaluate.tsne import draw_tsne
from tap3d.settings import Device, UpAxis, one_of, settings
from tap3d.train.config import BackboneName
from tap3d.train.weights import load_backbone

__all__ = ["ProbeConfig", "pooled_features", "svm_accuracy", "few_shot_folds",
           "few_shot_accuracy", "tsne_panels", "probe"]


@settings
class ProbeConfig:
    """Settings of ``tap-cli probe`` (:mod:`tap3d.settings`: defaults < ``--config`` file <
    options); each is the :func:`probe` argument of the same name.

    Attributes:
        backbone_checkpoint: run folder, tap3d backbone file or the authors' checkpoint; empty
            for a randomly initialized backbone (``backbone``, ``embed_dim``, seeded).
        backbone, embed_dim: the random backbone's name and width.
        few_shot: NwayKshot settings, e.g. ``5way10shot`` (repeatable).
        few_shot_folds: Point-BERT's ModelNetFewshot folder (<N>way_<K>shot/<fold>.pkl): few-shot
            scores on its fixed folds (every setting in it without few_shot) instead of seeded
            folds of DATA.
        folds, query: seeded few-shot folds and test samples per class.
        points: points per cloud.
        svm_c: the linear SVM's C.
        variant, test_fraction: ScanObjectNN variant; test share of a tap3d dataset's split.
        up_axis: world up axis of the height feature (1: y-up).
        batch_size: clouds per forward pass.
        seed, device: backbone initialization and folds; auto, cpu or cuda.
        tsne: write a t-SNE picture of the test set's frozen features, coloured by class, to
            this PNG (next to the features of a randomly initialized backbone of the same
            architecture when backbone_checkpoint is given; :mod:`tap3d.evaluate.tsne`).
    """

    backbone_checkpoint: str = ""
    backbone: BackboneName = "pointmlp"
    embed_dim: int = 64
    few_shot: list[str] = dataclasses.field(default_factory=list)
    few_shot_folds: str = ""
    folds: int = 10
    query: int = 20
    points: int = 1024
    svm_c: float = 0.01
    variant: one_of(SCANOBJECTNN_VARIANTS) = "pb_t50_rs"
    test_fraction: float = 0.2
    up_axis: UpAxis = 1
    batch_size: int = 64
    seed: int = 0
    device: Device = "auto"
    tsne: str = ""


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


def probe(data: str, backbone_checkpoint: str = "", backbone: str = "pointmlp",
          embed_dim: int = 64, few_shot=(), points: int = 1024, folds: int = 10,
          query: int = 20, svm_c: float = 0.01, seed: int = 0, device: str = "auto",
          variant: str = "pb_t50_rs", test_fraction: float = 0.2, up_axis: int = 1,
          batch_size: int = 64, few_shot_files: str = "", *, tsne: str = "",
          trust: bool = False) -> dict:
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
        tsne: a PNG of the test features' t-SNE (:class:`ProbeConfig`); empty: none.
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
    settings = {s: parse_few_shot(s) for s in few_shot}
    files = {}
    if few_shot_files:
        if not settings:
            settings = {s: parse_few_shot(s) for s in fold_folders(os.fspath(few_shot_files))}
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
    inputs = [eval_features(clouds, points, up_axis, device, batch_size)
              for clouds in (labelled.train_points, labelled.test_points)]
    features = [pooled_features(model, x, batch_size) for x in inputs]
    (train_x, test_x), train_y, test_y = features, labelled.train_labels, labelled.test_labels
    result = {"svm_oa": svm_accuracy(train_x, train_y, test_x, test_y, svm_c), "few_shot": {},
              "few_shot_folds": {},
              "few_shot_source": str(few_shot_files) if few_shot_files else "seeded",
              "dataset": str(data), "backbone": backbone,
              "backbone_checkpoint": str(backbone_checkpoint or ""), "train": len(train_y),
              "test": len(test_y)}
    if tsne:
        result["tsne"] = {"file": str(tsne), "silhouette": draw_tsne(
            tsne, tsne_panels(model, bool(backbone_checkpoint), features[1], inputs[1], seed,
                              batch_size), test_y, labelled.classes, seed)}
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
