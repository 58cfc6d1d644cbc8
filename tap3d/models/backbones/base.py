"""The backbone interface and the point-wise layer the backbones share."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConvBNReLU", "ResidualBlock", "Backbone", "PointwiseBlock"]


class Backbone(nn.Module):
    """Interface of a backbone.

    ``forward(features)`` takes ``(B, N, C_in)`` float32 point features whose first three
    channels are xyz (the normalized object frame, unit radius), and returns
    ``(features (B, M, out_channels), xyz (B, M, 3))``: the last stage's per-point features and
    the coordinates they sit at, the memory of TAP's Photograph module.

    ``forward_levels(features)`` returns the features of every stage, finest first (what
    segmentation heads read, :mod:`tap3d.models.segmentation`).

    ``forward_pooled(features)`` returns ``(B, pooled_channels)``: the global feature that the
    authors' classification head reads when fine-tuning (``forward_cls_feat`` in their
    ``openpoints`` backbones). The default is the maximum over the last stage's points.

    Attributes:
        in_channels: channels the backbone reads (4: xyz + height, or 3: xyz).
        out_channels: ``C_out`` of ``forward``.
        pooled_channels: channels of ``forward_pooled``.
    """

    in_channels: int
    out_channels: int

    @property
    def pooled_channels(self) -> int:
        return self.out_channels

    def check_features(self, features: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``features`` is ``(B, N, C)`` floating point with
        ``C == in_channels`` (``C >= 3`` for a backbone that reads xyz only)."""
        name = type(self).__name__
        if features.dim() != 3 or not features.is_floating_point():
            raise ValueError(f"{name}: features must be a (B, N, C) float tensor, got "
                             f"{tuple(features.shape)} {features.dtype}")
        channels = features.shape[-1]
        if channels < 3 or (self.in_channels > 3 and channels != self.in_channels):
            raise ValueError(f"{name}: features have {channels} channels; this backbone reads "
                             f"{self.in_channels} (xyz first)")

    def forward_levels(self, features: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every level a segmentation head reads: ``[(features (B, M_l, C_l), xyz (B, M_l, 3)),
        ...]``, the finest first, the last equal to ``forward``'s output. The default is the
        last stage alone; :attr:`level_channels` gives ``C_l``."""
        return [self(features)]

    @property
    def level_channels(self) -> list[int]:
        """``C_l`` of each level of :meth:`forward_levels`."""
        return [self.out_channels]

    def forward_pooled(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, N, C_in)`` -> ``(B, pooled_channels)``: max over the last stage's points."""
        point_features, _ = self(features)
        return point_features.max(dim=1).values


class PointwiseBlock(nn.Module):
    """Linear -> BatchNorm -> activation on channels-last tensors ``(..., C_in)``.

    The same as the authors' 1x1 ``Conv1d``/``Conv2d`` + ``BatchNorm`` blocks ("conv-norm-act",
    no bias before a norm), laid out channels last so the linear layer is one matrix product.
    BatchNorm statistics run over every leading dimension.

    Args:
        in_channels, out_channels: channels.
        activation: a module applied last (default ReLU; ``nn.Identity()`` for none).
        bias: a bias on the linear layer (redundant before BatchNorm, but the Point-BERT group
            embedding has one: ``nn.Conv1d``'s default).
    """

    def __init__(self, in_channels: int, out_channels: int,
                 activation: nn.Module | None = None, bias: bool = False):
        super().__init__()
        self.linear = nn.Linear(in_channels, out_channels, bias=bias)
        self.norm = nn.BatchNorm1d(out_channels)
        self.activation = nn.ReLU(inplace=True) if activation is None else activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        y = self.norm(y.reshape(-1, y.shape[-1])).reshape(y.shape)
        return self.activation(y)


class ConvBNReLU(nn.Sequential):
    """1x1 ``Conv1d`` (no bias) -> BatchNorm1d -> ReLU on ``(B, C, N)``."""

    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv1d(cin, cout, 1, bias=False), nn.BatchNorm1d(cout),
                         nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """PointMLP's residual MLP block on ``(B, C, N)``: conv-BN-ReLU-conv-BN + identity, ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(channels, channels, 1, bias=False), nn.BatchNorm1d(channels),
            nn.ReLU(inplace=True), nn.Conv1d(channels, channels, 1, bias=False),
            nn.BatchNorm1d(channels))

    def forward(self, x):
        return torch.relu(self.net(x) + x)
