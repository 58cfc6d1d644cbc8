"""Scores of downstream tasks, in percent: classification (overall accuracy OA, mean class
accuracy mAcc) and part segmentation as ShapeNetPart reports it.

Part segmentation follows the benchmark's protocol (Yi et al. 2016; Qi et al., PointNet,
CVPR 2017; the TAP authors' ``examples/shapenetpart/main.py``):

- per shape, the mean IoU over the parts of its ground-truth category; a part absent from both
  the prediction and the ground truth scores 100 (predictions outside the category count as
  wrong for every part of it: they enter no intersection and the union of the true part);
- instance mIoU: the mean over all shapes; class mIoU: the mean over categories of their
  shapes' mean (here over the categories that have shapes; ShapeNetPart's test set has all 16);
- ``refine``: points whose predicted part has fewer than 10 points in the shape, or lies outside
  the shape's category, are relabelled by a vote of their 11 nearest neighbours;
- test-time voting: the logits of the plain input and of ``votes`` passes with anisotropic
  scaling U[0.8, 1.2] per axis are averaged (the authors: 10 votes).
"""

from __future__ import annotations

import numpy as np
import torch

from tap3d.geometry.pointops import knn

__all__ = ["accuracies", "evaluate_classifier", "shape_miou", "part_scores", "summarize",
           "refine_parts", "predict_parts"]


def accuracies(confusion) -> tuple[float, float]:
    """``(OA, mAcc)`` in percent from a ``(C, C)`` confusion matrix (rows: true class); mAcc
    averages the classes that occur."""
    confusion = np.asarray(confusion, dtype=np.float64)
    total = confusion.sum(1)
    present = total > 0
    oa = 100.0 * np.trace(confusion) / max(total.sum(), 1)
    macc = 100.0 * float(np.mean(np.diag(confusion)[present] / total[present])) if present.any() \
        else 0.0
    return float(oa), macc


@torch.no_grad()
def evaluate_classifier(model, features: torch.Tensor, labels: torch.Tensor, classes: int,
                        batch_size: int = 64, reduce=None) -> tuple[float, float]:
    """``(OA, mAcc)`` in percent of ``model`` (eval mode) on ``features`` ``(N, P, 4)`` and
    ``labels`` ``(N,)``; under torchrun the confusion matrices of all ranks are summed by
    ``reduce`` (a tensor -> the tensor summed over the ranks, a collective:
    :func:`tap3d.train.distributed.reduce_across_processes` bound to the process).
    ``features`` ``(votes, N, P, 4)`` (:func:`tap3d.clouds.pipeline.voting_features`): each
    cloud's class is the argmax of its copies' mean softmax."""
    model.eval()
    voted = features if features.dim() == 4 else features[None]
    confusion = torch.zeros(classes * classes, dtype=torch.long, device=features.device)
    for start in range(0, voted.shape[1], batch_size):
        predicted = torch.stack([model(copy[start:start + batch_size]).softmax(1)
                                 for copy in voted]).mean(0).argmax(1)
        confusion += torch.bincount(labels[start:start + batch_size] * classes + predicted,
                                    minlength=classes * classes)
    if reduce is not None:
        confusion = reduce(confusion)
    return accuracies(confusion.view(classes, classes).cpu().numpy())



def shape_miou(predicted: np.ndarray, truth: np.ndarray, parts) -> float:
    """Mean IoU (percent) of one shape over ``parts`` (the global ids of its category).

    Args:
        predicted, truth: ``(P,)`` integer part ids of the shape's points.
        parts: the category's part ids.

    A part absent from both prediction and truth scores 100.
    """
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    if predicted.shape != truth.shape:
        raise ValueError(f"predicted {predicted.shape} and truth {truth.shape} differ")
    ious = []
    for part in parts:
        p, t = predicted == part, truth == part
        union = np.logical_or(p, t).sum()
        ious.append(100.0 if union == 0 else 100.0 * np.logical_and(p, t).sum() / union)
    return float(np.mean(ious))


def part_scores(predicted, truth, categories, category_parts, names=None) -> dict:
    """Instance mIoU, class mIoU and per-category mIoU (percent) of a set of shapes.

    Args:
        predicted, truth: sequences of ``(P_i,)`` integer part ids, one per shape.
        categories: ``(N,)`` ground-truth category index of each shape.
        category_parts: global part ids of each category.
        names: category names (default ``0``, ``1``, ...).

    Returns:
        ``{"instance_miou", "class_miou", "category_miou": {name: mIoU of the categories that
        have shapes}, "category_shapes": {name: count}, "shapes"}``.
    """
    names = list(names) if names is not None else [str(i) for i in range(len(category_parts))]
    categories = np.asarray(categories, dtype=np.int64)
    if not (len(predicted) == len(truth) == len(categories)):
        raise ValueError(f"{len(predicted)} predictions, {len(truth)} truths and "
                         f"{len(categories)} categories")
    per_shape = [shape_miou(p, t, category_parts[c])
                 for p, t, c in zip(predicted, truth, categories)]
    return summarize(per_shape, categories, names)


def summarize(per_shape, categories, names) -> dict:
    """:func:`part_scores` from the shapes' mIoUs ``(N,)`` (percent) and categories ``(N,)``
    (e.g. gathered from every rank); ``names`` the category names."""
    per_shape = np.asarray(per_shape, dtype=np.float64)
    categories = np.asarray(categories, dtype=np.int64)
    present = sorted(set(categories.tolist()))
    category_miou = {names[c]: float(per_shape[categories == c].mean()) for c in present}
    return {"instance_miou": float(per_shape.mean()) if len(per_shape) else 0.0,
            "class_miou": float(np.mean(list(category_miou.values()))) if present else 0.0,
            "category_miou": category_miou,
            "category_shapes": {names[c]: int((categories == c).sum()) for c in present},
            "shapes": int(len(per_shape))}


def refine_parts(predicted: np.ndarray, xyz: np.ndarray, parts, min_points: int = 10,
                 neighbours: int = 11) -> np.ndarray:
    """Relabel a shape's doubtful points by a vote of their nearest neighbours.

    A predicted part is doubtful when fewer than ``min_points`` points carry it or it is not a
    part of the shape's category. Doubtful parts are taken in increasing id order; each point of
    one is given the part that most of its ``neighbours`` nearest points (itself included, as the
    authors' ``part_seg_refinement`` with ``n + 1`` neighbours) carry at that moment, among the
    category's parts other than the doubtful one; ties, and points whose neighbours carry no
    such part, go to the category part most frequent in the shape, then the lowest id.

    Args:
        predicted: ``(P,)`` integer part ids.
        xyz: ``(P, 3)`` coordinates.
        parts: the category's part ids.
        min_points, neighbours: 10 and 11 (the authors' ``refine_n`` = 10).

    Returns:
        ``(P,)`` int64, a new array; points of parts that are not doubtful are unchanged.
    """
    out = np.asarray(predicted, dtype=np.int64).copy()
    parts = np.asarray(sorted(parts), dtype=np.int64)
    labels, counts = np.unique(out, return_counts=True)
    doubtful = [int(label) for label, count in zip(labels, counts)
                if count < min_points or label not in parts]
    if not doubtful:
        return out
    points = torch.as_tensor(np.asarray(xyz, dtype=np.float32))[None]
    k = min(neighbours, len(out))
    for label in doubtful:
        index = np.flatnonzero(out == label)
        near = knn(points[:, index], points, k)[0].numpy()  # (n, k)
        votes = (out[near][..., None] == parts).sum(1).astype(np.float64)  # (n, parts)
        votes[:, parts == label] = -1
        frequency = (out[:, None] == parts).mean(0)  # tie-break, < 1 vote
        votes = votes + 0.5 * frequency - 1e-6 * np.arange(len(parts))
        out[index] = parts[votes.argmax(1)]
    return out


@torch.no_grad()
def predict_parts(model, features: torch.Tensor, categories: torch.Tensor, votes: int = 0,
                  scale=(0.8, 1.2), seed: int = 0, batch_size: int = 16) -> torch.Tensor:
    """Part logits of a segmenter, averaged over test-time votes.

    Args:
        model: ``model(features (B, N, C), categories (B,)) -> (B, N, parts)`` logits (eval
            mode is set here).
        features: ``(S, N, C)`` test inputs, xyz first (centred, unit radius).
        categories: ``(S,)`` int64 ground-truth categories.
        votes: passes with anisotropic scaling U[``scale``] per axis of xyz added to the plain
            pass (the authors: 10).
        seed: seeds the scalings (vote ``v`` of every batch uses ``[seed, v]``).
        batch_size: shapes per forward pass.

    Returns:
        ``(S, N, parts)`` float32 mean logits on the features' device.
    """
    model.eval()
    out = []
    for start in range(0, len(features), batch_size):
        batch, cats = features[start:start + batch_size], categories[start:start + batch_size]
        total = model(batch, cats).float()
        for vote in range(votes):
            rng = np.random.default_rng([seed, vote])
            factors = torch.ones(batch.shape[-1], device=batch.device)
            factors[:3] = torch.from_numpy(rng.uniform(*scale, size=3)).float()
            total += model(batch * factors, cats).float()
        out.append(total / (votes + 1))
    return torch.cat(out) if out else torch.zeros(0)
