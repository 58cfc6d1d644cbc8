"""PointMLP (Ma et al., "Rethinking Network Design and Local Geometry in Point Cloud: A Simple
Residual MLP Framework", ICLR 2022) in the configuration TAP pre-trains (the authors'
``cfgs/shapenet/pointmlp_pretrain.yaml``, see docs/pretraining.md): embedding 64, 4 stages with
channel expansion 2 and point reduction 2, 2 pre- and 2 pos-blocks per stage, k = 24
neighbours, anchor normalization of the groups, no xyz in the grouped features; 1024 points in,
1024-channel features on 64 points out.
"""

from __future__ import annotations

import torch
from torch import nn

from tap3d.models.backbones.base import Backbone
from tap3d.geometry.pointops import farthest_point_sample, gather, knn

__all__ = ["PointMLP", "ConvBNReLU", "ResidualBlock"]


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


class _Stage(nn.Module):
    """Group around the centres ``centre_index`` (B, S) (kNN, anchor normalization), pre-blocks,
    max-pool, pos-blocks."""

    def __init__(self, cin: int, cout: int, k: int, pre: int, pos: int):
        super().__init__()
        self.k = k
        # geometric affine of the anchor-normalized groups (alpha, beta per channel)
        self.alpha = nn.Parameter(torch.ones(1, 1, 1, cin))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, cin))
        self.transfer = ConvBNReLU(2 * cin, cout)
        self.pre = nn.Sequential(*[ResidualBlock(cout) for _ in range(pre)])
        self.pos = nn.Sequential(*[ResidualBlock(cout) for _ in range(pos)])

    def forward(self, xyz, features, centre_index):
        B, N, C = features.shape
        new_xyz = gather(xyz, centre_index)  # (B, S, 3)
        anchor = gather(features, centre_index)  # (B, S, C)
        neighbours = knn(new_xyz, xyz, self.k)  # (B, S, k)
        grouped = gather(features, neighbours)  # (B, S, k, C)
        offset = grouped - anchor[:, :, None, :]
        std = offset.reshape(B, -1).std(dim=-1).reshape(B, 1, 1, 1)
        grouped = self.alpha * offset / (std + 1e-5) + self.beta
        grouped = torch.cat([grouped, anchor[:, :, None, :].expand(-1, -1, self.k, -1)], -1)
        S = grouped.shape[1]
        x = grouped.permute(0, 1, 3, 2).reshape(B * S, 2 * C, self.k)
        x = self.pre(self.transfer(x)).max(dim=-1).values  # (B * S, C_out)
        x = x.reshape(B, S, -1).permute(0, 2, 1)
        x = self.pos(x).permute(0, 2, 1)  # (B, S, C_out)
        return new_xyz, x


class PointMLP(Backbone):
    """PointMLP (ICLR 2022) encoder, without its classification head.

    Args:
        in_channels: input feature channels (4: xyz + height, as TAP).
        embed_dim: embedding channels (64).
        stages: number of stages (4); channels double and points halve at each.
        k: neighbours per group (24).
        pre_blocks, pos_blocks: residual blocks before and after pooling per stage (2, 2).
        reducer: point reduction per stage (2).

    ``forward(features (B, N, in_channels))`` -> ``((B, N / reducer^stages, embed_dim *
    2^stages), (B, N / reducer^stages, 3))``; for 1024 points: 1024 channels on 64 points.
    Each stage samples its centres by farthest-point sampling of the previous stage's points;
    one ordering of the input serves all stages (:func:`farthest_point_sample`: the first
    samples of an ordering are the ordering of those samples).

    Parameters at the defaults: 12,570,624 (the authors' ``PointMLPEncoder``, docs/pretraining.md).
    """

    def __init__(self, in_channels: int = 4, embed_dim: int = 64, stages: int = 4, k: int = 24,
                 pre_blocks: int = 2, pos_blocks: int = 2, reducer: int = 2):
        super().__init__()
        self.in_channels = in_channels
        self.reducer = reducer
        self.embedding = ConvBNReLU(in_channels, embed_dim)
        channels = [embed_dim * 2 ** i for i in range(stages + 1)]
        self.stages = nn.ModuleList(
            _Stage(channels[i], channels[i + 1], k, pre_blocks, pos_blocks) for i in range(stages))
        self.out_channels = channels[-1]

    def forward(self, features: torch.Tensor):
        return self.forward_levels(features)[-1]

    def forward_levels(self, features: torch.Tensor):
        """The embedding on every input point, then each stage's output (module docstring of
        :class:`~tap3d.models.backbones.base.Backbone`)."""
        self.check_features(features)
        xyz = features[..., :3].contiguous()
        x = self.embedding(features.transpose(1, 2)).transpose(1, 2)
        levels = [(x, xyz)]
        # one farthest-point ordering serves every stage: each samples a prefix of it
        count = max(1, xyz.shape[1] // self.reducer)
        index = farthest_point_sample(xyz, count)
        for stage in self.stages:
            xyz, x = stage(xyz, x, index)
            levels.append((x, xyz))
            count = max(1, count // self.reducer)
            index = torch.arange(count, device=xyz.device).expand(xyz.shape[0], -1)
        return levels

    @property
    def level_channels(self) -> list[int]:
        return [self.embedding[0].out_channels] + [s.transfer[0].out_channels
                                                   for s in self.stages]

