"""TAP's per-pixel loss (TAP, supplement Table 1b): ``w_fg * MSE(foreground) + w_bg * MSE(background)``,
foreground from the rendered mask, best at 20 : 1."""

from __future__ import annotations

import torch

__all__ = ["tap_loss"]


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
