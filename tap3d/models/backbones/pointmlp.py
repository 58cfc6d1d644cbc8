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

from tap3d.models.naming import BN, Rule, W, count_indices
from tap3d.models.backbones.propagation import FeaturePropagation
from tap3d.models.backbones.base import Backbone, ConvBNReLU, ResidualBlock
from tap3d.geometry.pointops import farthest_point_sample, gather, knn

__all__ = ["PointMLPSegHead", "openpoints_rules", "kwargs_from_state", "PointMLP", "ConvBNReLU",
           "ResidualBlock"]




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


class PointMLPSegHead(nn.Module):
    """PointMLP's part segmentor (Ma et al., ICLR 2022) as the TAP authors build it
    (``openpoints/models/backbone/pointmlp_seg.py`` and ``cfgs/shapenetpart/
    pointmlp_finetune.yaml`` of wangzy22/TAP): on the encoder's 5 levels (the embedding and 4
    stages, ``e, 2e, 4e, 8e, 16e`` channels), 4 feature-propagation decoders of widths
    ``de_dims = [8e, 4e, 2e, 2e]`` ([512, 256, 128, 128]) with 4 residual blocks each, coarsest
    first; a global context: every level mapped to ``e`` (64) channels and max-pooled, the 5
    concatenated and mapped to ``e``; the category one-hot through two conv layers to ``e``
    (``cls_map``); a classifier Conv ``(2e + de_dims[-1]) -> 2e`` (128), BN, dropout 0.5, Conv
    to the parts; no biases (``bias: False``).

    The encoder is :class:`~tap3d.models.backbones.PointMLP` with 6 input channels (xyz +
    normals), anchors N/2, N/4, N/8, N/16 (1024/512/256/128 for 2048 points), k = 24, anchor
    normalization, no xyz in the grouped features: the authors' segmentor settings.
    """

    def __init__(self, backbone: PointMLP, parts: int, categories: int, residual: int = 4,
                 dropout: float = 0.5):
        super().__init__()
        levels = backbone.level_channels  # [e, 2e, 4e, 8e, 16e]
        e = levels[0]
        widths = [8 * e, 4 * e, 2 * e, 2 * e][:len(levels) - 1]
        coarse = levels[-1]
        decoders = []
        for skip, width in zip(reversed(levels[:-1]), widths):
            decoders.append(FeaturePropagation(skip + coarse, [width], residual))
            coarse = width
        self.decoders = nn.ModuleList(decoders)
        self.context = nn.ModuleList(ConvBNReLU(c, e) for c in levels)
        self.context_end = ConvBNReLU(e * len(levels), e)
        self.category = nn.Sequential(ConvBNReLU(categories, e), ConvBNReLU(e, e))
        self.classifier = nn.Sequential(
            nn.Conv1d(2 * e + coarse, 2 * e, 1, bias=False), nn.BatchNorm1d(2 * e),
            nn.Dropout(dropout), nn.Conv1d(2 * e, parts, 1, bias=False))

    def forward(self, levels, features, onehot):
        x, xyz = levels[-1]
        for decoder, (skip, skip_xyz) in zip(self.decoders, reversed(levels[:-1])):
            x = decoder(skip_xyz, skip, xyz, x)
            xyz = skip_xyz
        pooled = [m(f.transpose(1, 2)).amax(-1, keepdim=True)
                  for m, (f, _) in zip(self.context, levels)]
        context = self.context_end(torch.cat(pooled, 1))  # (B, e, 1)
        category = self.category(onehot[..., None])  # (B, e, 1)
        N = x.shape[1]
        x = torch.cat([x.transpose(1, 2), context.expand(-1, -1, N),
                       category.expand(-1, -1, N)], 1)
        return self.classifier(x).transpose(1, 2)


def openpoints_rules() -> list[Rule]:
    """The renaming of this backbone's entries to the TAP authors' (openpoints) and back
    (:mod:`tap3d.models.openpoints`)."""
    # their config: bias False on every convolution (each is followed by BatchNorm)
    rules = [Rule("embedding.0.{rest}", "embedding.net.0.{rest}", rest=W),
             Rule("embedding.1.{rest}", "embedding.net.1.{rest}", rest=BN),
             Rule("stages.{i}.alpha", "local_grouper_list.{i}.affine_alpha"),
             Rule("stages.{i}.beta", "local_grouper_list.{i}.affine_beta"),
             Rule("stages.{i}.transfer.0.{rest}", "pre_blocks_list.{i}.transfer.net.0.{rest}",
                   rest=W),
             Rule("stages.{i}.transfer.1.{rest}", "pre_blocks_list.{i}.transfer.net.1.{rest}",
                   rest=BN)]
    # tap3d's residual block is one Sequential (conv, BN, ReLU, conv, BN); theirs is net1
    # (conv, BN, ReLU) and net2 (conv, BN); both keep Conv1d weights
    for ours, theirs in (("pre", "pre_blocks_list"), ("pos", "pos_blocks_list")):
        for layer, their_layer, rest in (("0", "net1.0", W), ("1", "net1.1", BN),
                                         ("3", "net2.0", W), ("4", "net2.1", BN)):
            rules.append(Rule(f"stages.{{i}}.{ours}.{{j}}.net.{layer}.{{rest}}",
                               f"{theirs}.{{i}}.operation.{{j}}.{their_layer}.{{rest}}",
                               rest=rest))
    return rules


def kwargs_from_state(state: dict) -> dict:
    """Constructor arguments read off a tap3d PointMLP state dict's names and shapes (what the
    weights do not hold, such as ``k``, keeps the authors' defaults).

    Raises:
        KeyError: no ``embedding.0.weight``: not a PointMLP state dict.
    """
    weight = state["embedding.0.weight"]
    return {"in_channels": int(weight.shape[1]), "embed_dim": int(weight.shape[0]),
            "stages": count_indices(state, r"stages\.(\d+)\."),
            "pre_blocks": count_indices(state, r"stages\.0\.pre\.(\d+)\."),
            "pos_blocks": count_indices(state, r"stages\.0\.pos\.(\d+)\.")}
