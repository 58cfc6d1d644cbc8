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
    ``labels`` ``(N,)``; under torchrun the confusion matrices of all ranks are summed."""
    model.eval()
    confusion = torch.zeros(classes * classes, dtype=torch.long, device=features.device)
    for start in range(0, len(features), batch_size):
        predicted = model(features[start:start + batch_size]).argmax(1)
        confusion += torch.bincount(labels[start:start + batch_size] * classes + predicted,
                                    minlength=classes * classes)
    if process is not None and process.world > 1:
        torch.distributed.all_reduce(confusion)
    return accuracies(confusion.view(classes, classes).cpu().numpy())
