"""Part segmentation on top of a backbone: one interface, a head per registered backbone.

Every segmenter is a :class:`PartSegmenter`: ``forward(features (B, N, C_in) float32,
categories (B,) int64) -> logits (B, N, parts) float32``, the category given as a one-hot
vector, as the ShapeNetPart protocol does (the shape's category is known, its parts are not).
Its state-dict keys are ``backbone.*`` (the backbone's own names, so pre-trained weights load)
and ``head.*``. The heads read :meth:`Backbone.forward_levels`, the backbone's features at
every stage, finest first, and bring them back to every input point by feature propagation
(:class:`FeaturePropagation`) where a stage has fewer points.

===============  =====================================================================
backbone         head
===============  =====================================================================
``pointmlp``     PointMLP's part segmentor as the TAP authors build it
                 (:class:`PointMLPSegHead`)
``pointnet2``    PointNet++'s feature-propagation decoder (:class:`PointNet2SegHead`)
``dgcnn``        DGCNN's segmentation head (:class:`DGCNNSegHead`)
``transformer``  Point-BERT's multi-level features + upsampling
                 (:class:`TransformerSegHead`)
===============  =====================================================================

Widths are multiples of the backbone's ``embed_dim`` (64 in the papers), so a small backbone
gets a small head of the same shape.
"""

from __future__ import annotations


import torch
from torch import nn

from tap3d.models.backbones import (DGCNN, Backbone, PointMLP, PointNet2, PointTransformer,
                                    PointwiseBlock, make_backbone)
from tap3d.models.backbones.pointmlp import ConvBNReLU, ResidualBlock
from tap3d.geometry.pointops import gather, knn

__all__ = ["interpolate", "FeaturePropagation", "PartSegmenter", "PointMLPSegHead",
           "PointNet2SegHead", "DGCNNSegHead", "TransformerSegHead", "make_segmenter"]


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


class PointNet2SegHead(nn.Module):
    """PointNet++'s part-segmentation decoder (Qi et al., NeurIPS 2017, the SSG part-segmentation
    network of their ``pointnet2_part_seg`` model): feature propagation from the last stage
    back through the others, MLPs ``[4e, 4e]`` ([256, 256]), ``[4e, 2e]`` ([256, 128]) and
    ``[2e, 2e, 2e]`` ([128, 128, 128]), the last one reading the input features and the category
    one-hot at every point; then a point-wise layer ``2e`` (128), dropout 0.5 and a linear
    layer to the parts.
    """

    def __init__(self, backbone: PointNet2, parts: int, categories: int, dropout: float = 0.5):
        super().__init__()
        levels = backbone.level_channels  # [C_in, 2e, 4e, 16e]
        e = levels[1] // 2
        mlps = [[4 * e, 4 * e], [4 * e, 2 * e], [2 * e, 2 * e, 2 * e]]
        skips = [levels[2], levels[1], levels[0] + categories]
        coarse, decoders = levels[-1], []
        for skip, mlp in zip(skips, mlps):
            decoders.append(FeaturePropagation(skip + coarse, mlp))
            coarse = mlp[-1]
        self.decoders = nn.ModuleList(decoders)
        self.classifier = nn.Sequential(PointwiseBlock(coarse, 2 * e), nn.Dropout(dropout),
                                        nn.Linear(2 * e, parts))

    def forward(self, levels, features, onehot):
        x, xyz = levels[-1]
        skips = list(reversed(levels[:-1]))
        for i, (decoder, (skip, skip_xyz)) in enumerate(zip(self.decoders, skips)):
            if i == len(skips) - 1:
                skip = torch.cat([skip, onehot[:, None].expand(-1, skip.shape[1], -1)], -1)
            x = decoder(skip_xyz, skip, xyz, x)
            xyz = skip_xyz
        return self.classifier(x)


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


class TransformerSegHead(nn.Module):
    """The standard Transformer's segmentation head (Point-BERT, Yu et al. CVPR 2022, and
    Point-MAE, Pang et al. ECCV 2022, which describe the same model): the outputs of blocks 4, 8
    and 12 (:attr:`PointTransformer.level_blocks`) concatenated on the group centres
    (``3 * dim``, 1152 channels); their maximum and mean over the groups and the category
    one-hot mapped to ``e`` (64; Conv, BN, LeakyReLU 0.2) form a global feature; the group
    features are propagated to every input point (:class:`FeaturePropagation` with the xyz as
    skip, MLP ``[4 dim, 16 e]`` = [1536, 1024]) and concatenated with the global feature, then
    point-wise layers ``8e`` (512, dropout 0.5) and ``4e`` (256) and a linear layer to the
    parts.
    """

    def __init__(self, backbone: PointTransformer, parts: int, categories: int,
                 dropout: float = 0.5):
        super().__init__()
        dim, count = backbone.out_channels, len(backbone.level_blocks)
        e = dim // 6 if dim % 6 == 0 else max(1, dim // 6)
        self.category = PointwiseBlock(categories, e, nn.LeakyReLU(0.2, inplace=True))
        self.propagate = FeaturePropagation(3 + count * dim, [4 * dim, 16 * e])
        channels = 16 * e + 2 * count * dim + e
        self.mlp = nn.Sequential(PointwiseBlock(channels, 8 * e), nn.Dropout(dropout),
                                 PointwiseBlock(8 * e, 4 * e), nn.Linear(4 * e, parts))

    def forward(self, levels, features, onehot):
        centres = levels[-1][1]
        tokens = torch.cat([f for f, _ in levels], -1)  # (B, G, count * dim)
        xyz = features[..., :3]
        N = xyz.shape[1]
        glob = torch.cat([tokens.amax(1), tokens.mean(1), self.category(onehot)], -1)
        points = self.propagate(xyz, xyz, centres, tokens)
        return self.mlp(torch.cat([points, glob[:, None].expand(-1, N, -1)], -1))


_HEADS = {PointMLP: PointMLPSegHead, PointNet2: PointNet2SegHead, DGCNN: DGCNNSegHead,
          PointTransformer: TransformerSegHead}


class PartSegmenter(nn.Module):
    """A backbone and its segmentation head (module docstring).

    ``forward(features (B, N, C_in) float32, categories (B,) int64)`` -> ``(B, N, parts)``
    float32 logits over all parts of all categories (the metrics score only the shape's own
    category's, :mod:`tap3d.metrics`).

    Attributes:
        backbone, head: the modules (state-dict prefixes ``backbone.`` and ``head.``).
        parts, categories: output parts and number of categories of the one-hot.
    """

    def __init__(self, backbone: Backbone, parts: int, categories: int, **head_kwargs):
        super().__init__()
        head = next((h for kind, h in _HEADS.items() if isinstance(backbone, kind)), None)
        if head is None:
            raise ValueError(f"no segmentation head for {type(backbone).__name__}; heads exist "
                             f"for {', '.join(k.__name__ for k in _HEADS)}")
        self.backbone, self.parts, self.categories = backbone, parts, categories
        self.head = head(backbone, parts, categories, **head_kwargs)

    def forward(self, features: torch.Tensor, categories: torch.Tensor) -> torch.Tensor:
        onehot = nn.functional.one_hot(categories.long(), self.categories).to(features.dtype)
        return self.head(self.backbone.forward_levels(features), features, onehot)


def make_segmenter(backbone: str, parts: int, categories: int, in_channels: int = 6,
                   embed_dim: int = 64, **backbone_kwargs) -> PartSegmenter:
    """A :class:`PartSegmenter` on a new backbone ``backbone`` (a registry name) reading
    ``in_channels`` (6: xyz + normals, the authors' ShapeNetPart input; the Transformer reads
    the xyz of them).

    Raises:
        ValueError: unknown backbone.
    """
    return PartSegmenter(make_backbone(backbone, in_channels=in_channels, embed_dim=embed_dim,
                                       **backbone_kwargs), parts, categories)
