"""The 2D generator of TAP.

TAP, section 3.3 and DESIGN.md: four ``ConvTranspose2d`` (kernel 5 stride 4, then
kernel 3 stride 2 three times), channels halving, ReLU between, Sigmoid out: x32 upsampling,
7 -> 224. Loss (TAP, supplement Table 1b): ``w_fg * MSE(foreground) + w_bg * MSE(background)``,
foreground from the rendered mask, best at 20 : 1.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Generator"]


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
