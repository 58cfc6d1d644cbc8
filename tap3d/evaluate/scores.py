"""Classification scores: overall accuracy (OA) and mean class accuracy (mAcc), in percent."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["accuracies", "evaluate_classifier"]


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
                        batch_size: int = 64, process=None) -> tuple[float, float]:
    """``(OA, mAcc)`` in percent of ``model`` (eval mode) on ``features`` ``(N, P, 4)`` and
    ``labels`` ``(N,)``; under torchrun the confusion matrices of all ranks are summed.
    ``features`` ``(votes, N, P, 4)`` (:func:`tap3d.evaluate.inputs.voting_features`): each
    cloud's class is the argmax of its copies' mean softmax."""
    model.eval()
    voted = features if features.dim() == 4 else features[None]
    confusion = torch.zeros(classes * classes, dtype=torch.long, device=features.device)
    for start in range(0, voted.shape[1], batch_size):
        predicted = torch.stack([model(copy[start:start + batch_size]).softmax(1)
                                 for copy in voted]).mean(0).argmax(1)
        confusion += torch.bincount(labels[start:start + batch_size] * classes + predicted,
                                    minlength=classes * classes)
    if process is not None and process.world > 1:
        torch.distributed.all_reduce(confusion)
    return accuracies(confusion.view(classes, classes).cpu().numpy())
