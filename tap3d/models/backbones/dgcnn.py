"""DGCNN (Wang et al., "Dynamic Graph CNN for Learning on Point Clouds", ACM TOG 2019).

The configuration TAP pre-trains (``cfgs/shapenet/dgcnn_pretrain.yaml`` and
``cfgs/scanobjectnn/dgcnn_finetune.yaml`` in wangzy22/TAP: ``in_channels: 4``, ``channels: 64``,
``emb_dims: 1024``, ``n_blocks: 5``, ``conv: edge``, ``k: 20``, BatchNorm, LeakyReLU 0.2):
four EdgeConv layers of 64, 64, 128 and 256 channels (the first on the kNN graph of xyz, the
others on the kNN graph of their input features, rebuilt per layer), their outputs concatenated
(512) and fused by a point-wise layer to 1024 channels. Nothing is sampled: every input point
keeps its feature, and all of them are the Photograph module's memory.
"""

from __future__ import annotations

import torch
from torch import nn

from tap3d.models.naming import Rule, block
from tap3d.models.backbones.base import Backbone, PointwiseBlock
from tap3d.geometry.pointops import gather, knn

__all__ = ["DGCNNSegHead", "openpoints_rules", "kwargs_from_state", "DGCNN", "EdgeConv"]


class EdgeConv(nn.Module):
    """EdgeConv: ``max_j LeakyReLU(BN(W [x_i, x_j - x_i]))`` over the ``k`` neighbours ``j`` of
    each point ``i``.

    ``W`` is one ``(out, 2 * in)`` matrix without bias (the authors' 1x1 ``Conv2d``). It is
    applied as ``(W_1 - W_2) x_i + W_2 x_j``, an identity that computes the linear part once per
    point instead of once per edge; BatchNorm and the activation still see every edge.

    ``forward(x (B, N, C_in), neighbours (B, N, k) int64)`` -> ``(B, N, C_out)``.
    """

    def __init__(self, in_channels: int, out_channels: int, negative_slope: float = 0.2):
        super().__init__()
        self.in_channels = in_channels
        self.linear = nn.Linear(2 * in_channels, out_channels, bias=False)
        self.norm = nn.BatchNorm1d(out_channels)
        self.negative_slope = negative_slope

    def forward(self, x: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
        w_centre, w_edge = self.linear.weight.split(self.in_channels, dim=1)
        centre, edge = nn.functional.linear(x, torch.cat([w_centre - w_edge, w_edge])).chunk(2, -1)
        h = gather(edge, neighbours) + centre[:, :, None, :]  # (B, N, k, C_out)
        h = self.norm(h.reshape(-1, h.shape[-1])).reshape(h.shape)
        h = nn.functional.leaky_relu(h, self.negative_slope, inplace=True)
        return h.max(dim=2).values


class DGCNN(Backbone):
    """DGCNN encoder (ACM TOG 2019) without its classification head.

    Args:
        in_channels: input channels (4: xyz + height, as the authors' TAP configs).
        embed_dim: width of the first EdgeConv (64); the others are ``embed_dim``,
            ``2 embed_dim`` and ``4 embed_dim``, the fused output ``16 embed_dim`` (1024).
        k: neighbours per point (20).
        negative_slope: of the LeakyReLU (0.2).

    ``forward(features (B, N, in_channels))`` -> ``((B, N, 16 embed_dim), xyz (B, N, 3))``: every
    input point. ``forward_pooled`` concatenates the maximum and the mean over the points
    (``2 * 16 embed_dim`` = 2048 channels, the authors' ``DGCNN.forward_cls_feat``).

    Parameters at the defaults: 617,984 (the DGCNN paper's 1.8M counts its classification head,
    2048 -> 512 -> 256 -> 40, about 1.19M; its first layer reads 3 channels instead of 4).
    The kNN graphs include each point itself (distance 0), as the authors' ``DilatedKNN``.
    """

    def __init__(self, in_channels: int = 4, embed_dim: int = 64, k: int = 20,
                 negative_slope: float = 0.2):
        super().__init__()
        if in_channels < 3:
            raise ValueError(f"DGCNN: in_channels must be >= 3 (xyz first), got {in_channels}")
        self.in_channels, self.k = in_channels, k
        widths = [embed_dim, embed_dim, 2 * embed_dim, 4 * embed_dim]
        inputs = [in_channels] + widths[:-1]
        self.edges = nn.ModuleList(EdgeConv(i, o, negative_slope) for i, o in zip(inputs, widths))
        self.fusion = PointwiseBlock(sum(widths), 16 * embed_dim,
                                     nn.LeakyReLU(negative_slope, inplace=True))
        self.out_channels = 16 * embed_dim

    @property
    def pooled_channels(self) -> int:
        return 2 * self.out_channels

    def forward(self, features: torch.Tensor):
        return self.forward_levels(features)[-1]

    def forward_levels(self, features: torch.Tensor):
        """Each EdgeConv's output, then the fused features; all on every input point."""
        self.check_features(features)
        xyz = features[..., :3].contiguous()
        k = min(self.k, features.shape[1])
        x, outputs = features, []
        for i, edge in enumerate(self.edges):
            neighbours = knn(xyz if i == 0 else x, xyz if i == 0 else x, k)
            x = edge(x, neighbours)
            outputs.append(x)
        return [(o, xyz) for o in outputs] + [(self.fusion(torch.cat(outputs, dim=-1)), xyz)]

    @property
    def level_channels(self) -> list[int]:
        return [e.linear.out_features for e in self.edges] + [self.out_channels]

    def forward_pooled(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, N, in_channels)`` -> ``(B, 2 * out_channels)``: [max, mean] over the points."""
        x, _ = self(features)
        return torch.cat([x.max(dim=1).values, x.mean(dim=1)], dim=-1)


class DGCNNSegHead(nn.Module):
    """DGCNN's segmentation head (Wang et al., ACM TOG 2019, Fig. 3, part segmentation): the
    point-wise 1024-channel features max-pooled to a global feature, the category one-hot
    mapped to ``e`` (64) channels, both repeated at every point and concatenated with the
    EdgeConv outputs (the local features), then point-wise layers ``{4e, 4e, 2e}``
    ({256, 256, 128}) with dropout 0.5 after the first two, and a linear layer to the parts
    (LeakyReLU 0.2 as the backbone).
    """

    def __init__(self, backbone: DGCNN, parts: int, categories: int, dropout: float = 0.5):
        super().__init__()
        levels = backbone.level_channels  # [e, e, 2e, 4e, 16e]
        e = levels[0]
        act = lambda: nn.LeakyReLU(backbone.edges[0].negative_slope, inplace=True)  # noqa: E731
        self.category = PointwiseBlock(categories, e, act())
        channels = sum(levels[:-1]) + levels[-1] + e
        self.mlp = nn.Sequential(PointwiseBlock(channels, 4 * e, act()), nn.Dropout(dropout),
                                 PointwiseBlock(4 * e, 4 * e, act()), nn.Dropout(dropout),
                                 PointwiseBlock(4 * e, 2 * e, act()), nn.Linear(2 * e, parts))

    def forward(self, levels, features, onehot):
        local = torch.cat([f for f, _ in levels[:-1]], -1)
        N = local.shape[1]
        pooled = levels[-1][0].amax(1)
        glob = torch.cat([pooled, self.category(onehot)], -1)[:, None].expand(-1, N, -1)
        return self.mlp(torch.cat([local, glob], -1))


def openpoints_rules() -> list[Rule]:
    """The renaming of this backbone's entries to the TAP authors' (openpoints) and back
    (:mod:`tap3d.models.openpoints`)."""
    # tap3d's four EdgeConvs are one list; theirs are the static ``head`` and the dynamic
    # ``backbone.0-2``
    rules = block("edges.0", "head.gconv.nn", 2)
    for i in range(1, 4):
        rules += block(f"edges.{i}", f"backbone.{i - 1}.gconv.nn", 2)
    return rules + block("fusion", "fusion_block", 1)


def kwargs_from_state(state: dict) -> dict:
    """Constructor arguments read off a tap3d DGCNN state dict (``k`` keeps its default).

    Raises:
        KeyError: no ``edges.0.linear.weight``: not a DGCNN state dict.
    """
    weight = state["edges.0.linear.weight"]
    return {"in_channels": int(weight.shape[1]) // 2, "embed_dim": int(weight.shape[0])}
