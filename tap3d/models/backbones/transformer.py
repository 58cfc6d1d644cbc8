"""The standard point Transformer (the Point-BERT encoder: Yu et al., "Point-BERT: Pre-training 3D
Point Cloud Transformers with Masked Point Modeling", CVPR 2022; also Point-MAE's).

The configuration TAP pre-trains (``cfgs/shapenet/transformer_pretrain.yaml`` in wangzy22/TAP:
``num_groups: 256``, ``group_size: 32``, ``subsample: fps``, ``group: ballquery``,
``radius: 0.1``, ``encoder_dims: 256``, ``trans_dim: 384``, ``depth: 12``, ``num_heads: 6``,
``drop_path_rate: 0.1``; xyz input): 256 farthest-point centres, 32 points around each
(offsets from the centre), a mini-PointNet per group (3 -> 128 -> 256, max, concatenated with
each point, 512 -> 512 -> 256, max), a linear map to 384 channels, a class token, 12 pre-norm
blocks of 6-head self-attention (q, k, v without bias) and a 4x GELU MLP with stochastic depth
rising linearly from 0 to 0.1, the position embedding (an MLP 3 -> 128 -> 384 of the centres,
with a learned one for the class token) added before every block, and a final LayerNorm.
"""

from __future__ import annotations

import torch
from torch import nn

from tap3d.models.naming import Rule, W, WB, block, count_indices
from tap3d.models.backbones.propagation import FeaturePropagation
from tap3d.models.backbones.base import Backbone, PointwiseBlock
from tap3d.geometry.pointops import ball_query, farthest_point_sample, gather, knn

__all__ = ["TransformerSegHead", "openpoints_rules", "kwargs_from_state", "PointTransformer",
           "DropPath"]


class DropPath(nn.Module):
    """Stochastic depth (Huang et al., ECCV 2016): zero a residual branch per sample with
    probability ``p`` while training, scaling the kept ones by ``1 / (1 - p)``."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, drop_path: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.drop_path = DropPath(drop_path)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(B, T, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attended = nn.functional.scaled_dot_product_attention(q, k, v)
        x = x + self.drop_path(self.proj(attended.transpose(1, 2).reshape(B, T, C)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class _GroupEmbedding(nn.Module):
    """Point-BERT's mini-PointNet: ``(B, G, k, 3)`` offsets -> ``(B, G, out)``.

    Every linear layer has a bias, as the authors' ``Encoder`` (``nn.Conv1d`` defaults).
    """

    def __init__(self, width: int, out: int):
        super().__init__()
        self.first = nn.Sequential(PointwiseBlock(3, 2 * width, bias=True),
                                   nn.Linear(2 * width, 4 * width))
        self.second = nn.Sequential(PointwiseBlock(8 * width, 8 * width, bias=True),
                                    nn.Linear(8 * width, out))

    def forward(self, groups):
        x = self.first(groups)  # (B, G, k, 4 width)
        pooled = x.max(dim=2, keepdim=True).values.expand_as(x)
        x = self.second(torch.cat([pooled, x], dim=-1))
        return x.max(dim=2).values


class PointTransformer(Backbone):
    """The standard point Transformer encoder (Point-BERT, CVPR 2022) without a head.

    Args:
        in_channels: channels of the features it is given (>= 3); it reads the first three (xyz)
            and ignores the rest (TAP's stream gives xyz + height).
        embed_dim: channels per attention head (64); the model is ``6 embed_dim`` wide (384),
            the group embedding ``4 embed_dim`` (256), its hidden layers 2, 4 and 8 times it.
        groups: farthest-point centres (256).
        group_size: points per group (32).
        grouping: ``ballquery`` (the authors' TAP config; radius ``radius``, padded with the
            nearest point) or ``knn`` (Point-BERT and Point-MAE).
        radius: ball radius, object units (0.1).
        depth: blocks (12).
        heads: attention heads (6).
        drop_path: largest stochastic-depth rate (0.1, reached by the last block).

    ``forward(features (B, N, C >= 3))`` -> ``((B, groups, 6 embed_dim), centres (B, groups, 3))``
    (the class token dropped, as the authors' ``PointTransformerGenEncoder``).
    ``forward_pooled`` -> ``(B, 12 embed_dim)``: the class token and the maximum over the groups
    (768 channels, the authors' ``PointTransformerEncoder.forward_cls_feat``).

    Parameters at the defaults: 21,858,816 (Point-BERT's 22.1M counts its classification head,
    768 -> 256 -> 256 -> 40, about 0.27M).
    """

    def __init__(self, in_channels: int = 3, embed_dim: int = 64, groups: int = 256,
                 group_size: int = 32, grouping: str = "ballquery", radius: float = 0.1,
                 depth: int = 12, heads: int = 6, drop_path: float = 0.1):
        super().__init__()
        if in_channels < 3:
            raise ValueError(f"PointTransformer: in_channels must be >= 3 (xyz first), "
                             f"got {in_channels}")
        if grouping not in ("ballquery", "knn"):
            raise ValueError(f"PointTransformer: grouping must be 'ballquery' or 'knn', "
                             f"got {grouping!r}")
        self.in_channels = 3
        self.groups, self.group_size, self.grouping, self.radius = groups, group_size, grouping, \
            radius
        dim = heads * embed_dim
        self.encoder = _GroupEmbedding(embed_dim, 4 * embed_dim)
        self.reduce = nn.Linear(4 * embed_dim, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.cls_pos = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embed = nn.Sequential(nn.Linear(3, 2 * embed_dim), nn.GELU(),
                                       nn.Linear(2 * embed_dim, dim))
        rates = torch.linspace(0, drop_path, depth).tolist()
        self.blocks = nn.ModuleList(_Block(dim, heads, rate) for rate in rates)
        self.norm = nn.LayerNorm(dim)
        self.out_channels = dim

    @property
    def pooled_channels(self) -> int:
        return 2 * self.out_channels

    def tokens(self, features: torch.Tensor, keep: tuple[int, ...] = ()):
        """``(B, N, C >= 3)`` -> ``(tokens (B, 1 + groups, dim), centres (B, groups, 3))``, the
        class token first; with ``keep`` (block indices), ``(tokens, centres, [the final
        LayerNorm of each kept block's output, (B, 1 + groups, dim)])``."""
        self.check_features(features)
        xyz = features[..., :3].contiguous()
        count = min(self.groups, xyz.shape[1])
        centres = gather(xyz, farthest_point_sample(xyz, count))
        size = min(self.group_size, xyz.shape[1])
        if self.grouping == "knn":
            index = knn(centres, xyz, size)
        else:
            index = ball_query(centres, xyz, self.radius, size)
        x = self.reduce(self.encoder(gather(xyz, index) - centres[:, :, None, :]))
        B = x.shape[0]
        x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1)  # float32 residual stream
        pos = torch.cat([self.cls_pos.expand(B, -1, -1), self.pos_embed(centres)], dim=1)
        kept = []
        for i, layer in enumerate(self.blocks):
            x = layer(x + pos)
            if i in keep:
                kept.append(self.norm(x))
        return (self.norm(x), centres, kept) if keep else (self.norm(x), centres)

    def forward(self, features: torch.Tensor):
        x, centres = self.tokens(features)
        return x[:, 1:], centres

    @property
    def level_blocks(self) -> tuple[int, ...]:
        """Blocks whose outputs :meth:`forward_levels` returns: 3, 7 and 11 of 12 (the
        segmentation model of Point-MAE, Pang et al. ECCV 2022, which follows Point-BERT's),
        ``round(depth * k / 3) - 1`` for ``k = 1, 2, 3`` in general."""
        depth = len(self.blocks)
        return tuple(sorted({max(0, round(depth * k / 3) - 1) for k in (1, 2, 3)}))

    def forward_levels(self, features: torch.Tensor):
        """The final LayerNorm of the :attr:`level_blocks` outputs on the groups (class token
        dropped), each ``((B, groups, dim), centres)``; the last equals ``forward``."""
        _, centres, kept = self.tokens(features, self.level_blocks)
        return [(k[:, 1:], centres) for k in kept]

    @property
    def level_channels(self) -> list[int]:
        return [self.out_channels] * len(self.level_blocks)

    def forward_pooled(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, N, C)`` -> ``(B, 2 * out_channels)``: [class token, max over the groups]."""
        x, _ = self.tokens(features)
        return torch.cat([x[:, 0], x[:, 1:].max(dim=1).values], dim=-1)


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


def openpoints_rules() -> list[Rule]:
    """The renaming of this backbone's entries to the TAP authors' (openpoints) and back
    (:mod:`tap3d.models.openpoints`)."""
    rules = []
    for ours, theirs in (("first", "first_conv"), ("second", "second_conv")):
        rules += block(f"encoder.{ours}.0", f"encoder.{theirs}", 1, bias=True)
        rules.append(Rule(f"encoder.{ours}.1.{{rest}}", f"encoder.{theirs}.3.{{rest}}", 1))
    rules += [Rule("reduce.{rest}", "reduce_dim.{rest}"), Rule("cls_token", "cls_token"),
              Rule("cls_pos", "cls_pos"), Rule("pos_embed.0.{rest}", "pos_embed.0.{rest}"),
              Rule("pos_embed.2.{rest}", "pos_embed.2.{rest}"),
              Rule("norm.{rest}", "norm.{rest}")]
    for ours, theirs in (("norm1", "norm1"), ("qkv", "attn.qkv"), ("proj", "attn.proj"),
                         ("norm2", "norm2"), ("mlp.0", "mlp.fc1"), ("mlp.2", "mlp.fc2")):
        rules.append(Rule(f"blocks.{{i}}.{ours}.{{rest}}",
                           f"blocks.blocks.{{i}}.{theirs}.{{rest}}",
                           rest=W if ours == "qkv" else WB))  # their qkv_bias: False
    return rules


def kwargs_from_state(state: dict) -> dict:
    """Constructor arguments read off a tap3d Transformer state dict (group counts and the
    drop-path rate keep their defaults).

    Raises:
        KeyError: no ``pos_embed.0.weight``: not a Transformer state dict.
    """
    embed = int(state["pos_embed.0.weight"].shape[0]) // 2  # the position MLP: 2 embed_dim
    return {"embed_dim": embed, "heads": int(state["reduce.weight"].shape[0]) // embed,
            "depth": count_indices(state, r"blocks\.(\d+)\.")}
