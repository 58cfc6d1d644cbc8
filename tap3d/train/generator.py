"""The 2D generator of TAP and its per-pixel loss.

Generator (TAP, section 3.3 and DESIGN.md): four ``ConvTranspose2d`` (kernel 5 stride 4, then
kernel 3 stride 2 three times), channels halving, ReLU between, Sigmoid out: x32 upsampling,
7 -> 224. Loss (TAP, supplement Table 1b): ``w_fg * MSE(foreground) + w_bg * MSE(background)``,
foreground from the rendered mask, best at 20 : 1.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Generator", "tap_loss"]


class Generator(nn.Module):
    """``(B, C, G, G)`` features -> ``(B, 3, 32 G, 32 G)`` images in [0, 1]."""

    def __init__(self, in_channels: int = 128):
        super().__init__()
        c = [in_channels, in_channels // 2, in_channels // 4, in_channels // 8]
        self.net = nn.Sequential(
            nn.ConvTranspose2d(c[0], c[1], 5, stride=4, padding=1, output_padding=1), nn.ReLU(True),
            nn.ConvTranspose2d(c[1], c[2], 3, stride=2, padding=1, output_padding=1), nn.ReLU(True),
            nn.ConvTranspose2d(c[2], c[3], 3, stride=2, padding=1, output_padding=1), nn.ReLU(True),
            nn.ConvTranspose2d(c[3], 3, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid())

    def forward(self, x):
        return self.net(x)


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
