"""The 2D generator of TAP: an image feature grid -> the view image.

TAP, section 3.3, and the authors' ``ViewDecoder`` (docs/pretraining.md): four ``ConvTranspose2d``
(kernel 5 stride 4, then kernel 3 stride 2 three times), channels halving, ReLU between, Sigmoid
out: x32 upsampling, 7 -> 224. ``factor`` 16 and 8 drop the last one and two stride-2 layers, so a
64 or 96 px image gets a 4 x 4 or 8 x 8 (6 x 6 or 12 x 12) query grid instead of 2 x 2 (3 x 3): the
setting for small images on a CPU; 32 stays the default for 224 px.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["Generator", "FACTORS"]

#: Upsampling factors the generator offers (image size / query grid size).
FACTORS = (8, 16, 32)


class Generator(nn.Module):
    """``(B, C, G, G)`` features -> ``(B, 3, factor G, factor G)`` images in [0, 1].

    Args:
        in_channels: ``C``, the Photograph module's width (at least 8 for ``factor`` 32).
        factor: upsampling, 8, 16 or 32 (TAP: 32): one kernel-5 stride-4 layer, then
            ``log2(factor) - 2`` kernel-3 stride-2 layers, channels halving each time.

    Raises:
        ValueError: ``factor`` not in :data:`FACTORS`.
    """

    def __init__(self, in_channels: int = 128, factor: int = 32):
        super().__init__()
        if factor not in FACTORS:
            raise ValueError(f"generator factor must be one of {FACTORS}, got {factor}")
        self.factor = factor
        layers = int(math.log2(factor)) - 1  # 2, 3 or 4
        channels = [max(1, in_channels // 2 ** i) for i in range(layers)] + [3]
        modules: list[nn.Module] = []
        for i in range(layers):
            kernel, stride = (5, 4) if i == 0 else (3, 2)
            modules.append(nn.ConvTranspose2d(channels[i], channels[i + 1], kernel, stride=stride,
                                              padding=1, output_padding=1))
            modules.append(nn.ReLU(True) if i < layers - 1 else nn.Sigmoid())
        self.net = nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
