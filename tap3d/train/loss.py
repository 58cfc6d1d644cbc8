"""TAP's per-pixel loss (TAP, supplement Table 1b): ``w_fg * MSE(foreground) + w_bg * MSE(background)``,
foreground from the rendered mask, best at 20 : 1."""

from __future__ import annotations

import torch

__all__ = ["tap_loss", "poly1_focal_loss", "SEGMENTATION_LOSSES"]

#: Part segmentation's losses (``PartSegConfig.loss``): the authors' Poly-1 focal loss
#: (:func:`poly1_focal_loss`) or plain cross-entropy.
SEGMENTATION_LOSSES = ("poly1_focal", "cross_entropy")


def tap_loss(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
             w_fg: float = 20.0, w_bg: float = 1.0) -> dict[str, torch.Tensor]:
    """TAP's foreground/background-weighted per-pixel MSE.

    Args:
        prediction, target: ``(B, 3, S, S)`` float images in [0, 1].
        mask: ``(B, S, S)`` bool, True on the object (foreground).
        w_fg, w_bg: weights (TAP supplement Table 1b: 20 : 1).

    Returns:
        ``{"loss", "loss_fg", "loss_bg"}`` scalars; the MSEs are means over the foreground
        (background) pixels and channels of the batch, 0 where there are none.
    """
    error = ((prediction.float() - target.float()) ** 2).mean(1)  # (B, S, S)
    fg = mask.float()
    bg = 1.0 - fg
    loss_fg = (error * fg).sum() / fg.sum().clamp_min(1.0)
    loss_bg = (error * bg).sum() / bg.sum().clamp_min(1.0)
    return {"loss": w_fg * loss_fg + w_bg * loss_bg, "loss_fg": loss_fg, "loss_bg": loss_bg}


def poly1_focal_loss(logits: torch.Tensor, target: torch.Tensor, epsilon: float = 1.0,
                     alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Poly-1 focal loss (Leng et al., "PolyLoss", ICLR 2022, eq. 5), the TAP authors'
    ``Poly1FocalLoss`` for ShapeNetPart (openpoints ``loss/build.py``; its defaults
    ``epsilon = 1``, ``alpha = 0.25``, ``gamma = 2``, mean reduction).

    Every class is a sigmoid (one-vs-all) focal loss, ``alpha_t (1 - p_t)^gamma BCE``, plus
    ``epsilon (1 - p_t)^(gamma + 1)``, averaged over points and classes.

    Args:
        logits: ``(M, C)`` float logits (points x classes).
        target: ``(M,)`` int64 class indices.

    Returns:
        A scalar float32 tensor.
    """
    logits = logits.float()
    onehot = torch.nn.functional.one_hot(target, logits.shape[-1]).to(logits.dtype)
    p = torch.sigmoid(logits)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
    pt = onehot * p + (1 - onehot) * (1 - p)
    focal = bce * (1 - pt) ** gamma
    if alpha >= 0:
        focal = (alpha * onehot + (1 - alpha) * (1 - onehot)) * focal
    return (focal + epsilon * (1 - pt) ** (gamma + 1)).mean()
