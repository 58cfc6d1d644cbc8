"""Feature propagation (PointNet++, Qi et al. NeurIPS 2017): coarse features brought back to
finer points, the building block of the part-segmentation heads of every backbone."""

from __future__ import annotations

import torch
from torch import nn

from tap3d.geometry.pointops import gather, knn
from tap3d.models.backbones.base import PointwiseBlock, ResidualBlock

__all__ = ["interpolate", "FeaturePropagation"]


def interpolate(xyz: torch.Tensor, coarse_xyz: torch.Tensor, coarse: torch.Tensor,
                k: int = 3) -> torch.Tensor:
    """Features of ``coarse`` points ``(B, S, C)`` at ``xyz`` ``(B, N, 3)``: inverse squared
    distance weights over the ``k = 3`` nearest ``coarse_xyz`` ``(B, S, 3)`` (PointNet++, Qi et
    al. NeurIPS 2017, eq. 2 with p = 2, k = 3). ``S == 1`` repeats the one feature."""
    if coarse.shape[1] == 1:
        return coarse.expand(-1, xyz.shape[1], -1)
    k = min(k, coarse.shape[1])
    index = knn(xyz, coarse_xyz, k)  # (B, N, k)
    distance = (gather(coarse_xyz, index) - xyz[:, :, None]).pow(2).sum(-1)
    weight = 1.0 / (distance + 1e-8)
    weight = weight / weight.sum(-1, keepdim=True)
    return (gather(coarse, index) * weight[..., None].to(coarse.dtype)).sum(2)


class FeaturePropagation(nn.Module):
    """PointNet++'s feature propagation: coarse features interpolated onto the finer points
    (:func:`interpolate`), concatenated with the finer level's own (skip), then point-wise
    layers ``widths`` and ``residual`` PointMLP residual blocks (0 for PointNet++, 4 in the TAP
    authors' PointMLP decoder, ``de_blocks``).

    ``forward(xyz (B, N, 3), skip (B, N, C_skip) or None, coarse_xyz (B, S, 3), coarse (B, S,
    C))`` -> ``(B, N, widths[-1])``.
    """

    def __init__(self, in_channels: int, widths, residual: int = 0):
        super().__init__()
        channels = [in_channels] + list(widths)
        self.mlp = nn.Sequential(*[PointwiseBlock(a, b) for a, b in zip(channels, channels[1:])])
        self.blocks = nn.Sequential(*[ResidualBlock(channels[-1]) for _ in range(residual)])

    def forward(self, xyz, skip, coarse_xyz, coarse):
        x = interpolate(xyz, coarse_xyz, coarse)
        if skip is not None:
            x = torch.cat([skip, x], dim=-1)
        x = self.mlp(x)
        return self.blocks(x.transpose(1, 2)).transpose(1, 2) if len(self.blocks) else x
