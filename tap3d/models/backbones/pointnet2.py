"""PointNet++ with single-scale grouping (Qi et al., "PointNet++: Deep Hierarchical Feature
Learning on Point Sets in a Metric Space", NeurIPS 2017).

The configuration TAP pre-trains (``cfgs/shapenet/pointnet++_pretrain.yaml`` in wangzy22/TAP):
three set-abstraction stages with strides 2, 4, 2 (1024 -> 512 -> 128 -> 64 points),
ball-query radii 0.2, 0.4, 0.2 and 32, 64, 32 neighbours, MLPs [64, 64, 128],
[128, 128, 256], [256, 512, 1024], neighbour features concatenated with their offsets from the
centre (``feature_type: dp_fj``, offsets not divided by the radius), 1x1 convolution ->
BatchNorm -> ReLU, max pooling; 4 input channels. The radii are in units of the normalized
object frame (unit radius), which is what the authors' configs assume as well (their transforms
centre the cloud and scale it to unit radius). Fine-tuning (``cfgs/scanobjectnn/
pointnet++_finetune.yaml``: strides [2, 4, 1], radius null) runs the last stage's MLP on all
points of stage 2 at once, with absolute coordinates (``GroupAll``): :meth:`forward_pooled`.
"""

from __future__ import annotations

import torch
from torch import nn

from tap3d.models.naming import Rule, block
from tap3d.models.backbones.propagation import FeaturePropagation
from tap3d.models.backbones.base import Backbone, PointwiseBlock
from tap3d.geometry.pointops import ball_query, farthest_point_sample, gather

__all__ = ["PointNet2SegHead", "openpoints_rules", "kwargs_from_state", "PointNet2",
           "SetAbstraction"]


class SetAbstraction(nn.Module):
    """One set-abstraction stage: farthest-point centres, ball query, shared MLP, max pool.

    Args:
        in_channels: feature channels of the input points (3 offset channels are added).
        mlp: output channels of each point-wise layer.
        stride: input points per centre.
        radius: ball radius (object units).
        neighbours: points per ball: the first inside in index order, padded with the first
            found (PointNet++'s CUDA ball query, :func:`tap3d.geometry.pointops.ball_query`).

    ``forward(xyz (B, N, 3), features (B, N, C), order (B, >= N / stride) int64 or None)`` ->
    ``(xyz (B, N / stride, 3), features (B, N / stride, mlp[-1]))``: the centres are the first
    ``N / stride`` of ``order``, a farthest-point ordering of ``xyz`` (computed when None).
    ``forward_all`` pools every point into one feature ``(B, mlp[-1])`` (PointNet++'s group-all
    stage; absolute coordinates).
    """

    def __init__(self, in_channels: int, mlp: list[int], stride: int, radius: float,
                 neighbours: int):
        super().__init__()
        self.stride, self.radius, self.neighbours = stride, radius, neighbours
        channels = [in_channels + 3] + list(mlp)
        self.mlp = nn.Sequential(*[PointwiseBlock(a, b) for a, b in zip(channels, channels[1:])])

    def forward(self, xyz: torch.Tensor, features: torch.Tensor,
                order: torch.Tensor | None = None):
        count = max(1, xyz.shape[1] // self.stride)
        if order is None:
            order = farthest_point_sample(xyz, count)
        centres = gather(xyz, order[:, :count])  # (B, S, 3)
        index = ball_query(centres, xyz, self.radius, self.neighbours)  # (B, S, k)
        offsets = gather(xyz, index) - centres[:, :, None, :]
        grouped = torch.cat([offsets.to(features.dtype), gather(features, index)], dim=-1)
        return centres, self.mlp(grouped).max(dim=2).values

    def forward_all(self, xyz: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        grouped = torch.cat([xyz.to(features.dtype), features], dim=-1)
        return self.mlp(grouped).max(dim=1).values


class PointNet2(Backbone):
    """PointNet++ SSG encoder (NeurIPS 2017) without its classification head.

    Args:
        in_channels: input channels (4: xyz + height, as the authors' TAP configs).
        embed_dim: base width (64); the stage MLPs are [1, 1, 2], [2, 2, 4] and [4, 8, 16] times
            it: [64, 64, 128], [128, 128, 256], [256, 512, 1024].
        strides: points per centre of each stage ((2, 4, 2)).
        radii: ball radii ((0.2, 0.4, 0.2), object units).
        neighbours: points per ball ((32, 64, 32)).

    ``forward(features (B, N, in_channels))`` -> ``((B, N / 16, 16 embed_dim), (B, N / 16, 3))``;
    for 1024 points: 1024 channels on 64 points. ``forward_pooled`` -> ``(B, 16 embed_dim)``:
    the last stage's MLP over all points of stage 2 (the authors' fine-tuning encoder).

    Parameters at the defaults: 805,440 (the PointNet++ paper's 1.5M counts its classification
    head, 1024 -> 512 -> 256 -> 40, about 0.67M).
    """

    def __init__(self, in_channels: int = 4, embed_dim: int = 64,
                 strides: tuple[int, ...] = (2, 4, 2), radii: tuple[float, ...] = (0.2, 0.4, 0.2),
                 neighbours: tuple[int, ...] = (32, 64, 32)):
        super().__init__()
        if in_channels < 3:
            raise ValueError(f"PointNet2: in_channels must be >= 3 (xyz first), got {in_channels}")
        if not len(strides) == len(radii) == len(neighbours) == 3:
            raise ValueError("PointNet2: strides, radii and neighbours need one value per stage "
                             "(3 stages)")
        e = embed_dim
        mlps = [[e, e, 2 * e], [2 * e, 2 * e, 4 * e], [4 * e, 8 * e, 16 * e]]
        inputs = [in_channels, 2 * e, 4 * e]
        self.in_channels = in_channels
        self.stages = nn.ModuleList(SetAbstraction(*args) for args in
                                    zip(inputs, mlps, strides, radii, neighbours))
        self.out_channels = 16 * e

    def _run(self, features: torch.Tensor, stages: int):
        """The input and the first ``stages`` stages' outputs: one farthest-point ordering of
        the input serves all of them (the centres of a stage are in that order, so the next
        samples a prefix)."""
        self.check_features(features)
        xyz, x = features[..., :3].contiguous(), features
        levels = [(x, xyz)]
        order = farthest_point_sample(xyz, max(1, xyz.shape[1] // self.stages[0].stride))
        for stage in self.stages[:stages]:
            xyz, x = stage(xyz, x, order)
            levels.append((x, xyz))
            order = torch.arange(xyz.shape[1], device=xyz.device).expand(xyz.shape[0], -1)
        return levels

    def forward(self, features: torch.Tensor):
        return self._run(features, len(self.stages))[-1]

    def forward_levels(self, features: torch.Tensor):
        """The input features on every point, then each set-abstraction stage's output."""
        return self._run(features, len(self.stages))

    @property
    def level_channels(self) -> list[int]:
        return [self.in_channels] + [s.mlp[-1].linear.out_features for s in self.stages]

    def forward_pooled(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, N, in_channels)`` -> ``(B, out_channels)``: stages 1 and 2, then the last stage
        on all their points at once."""
        x, xyz = self._run(features, len(self.stages) - 1)[-1]
        return self.stages[-1].forward_all(xyz, x)


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


def openpoints_rules() -> list[Rule]:
    """The renaming of this backbone's entries to the TAP authors' (openpoints) and back
    (:mod:`tap3d.models.openpoints`)."""
    return block("stages.{i}.mlp.{j}",
                  "SA_modules.{i}.local_aggregations.0.SA_CONFIG_operator.convs.{j}", 2)


def kwargs_from_state(state: dict) -> dict:
    """Constructor arguments read off a tap3d PointNet++ state dict (radii and group counts
    keep their defaults).

    Raises:
        KeyError: no ``stages.0.mlp.0.linear.weight``: not a PointNet++ state dict.
    """
    weight = state["stages.0.mlp.0.linear.weight"]
    return {"in_channels": int(weight.shape[1]) - 3, "embed_dim": int(weight.shape[0])}
