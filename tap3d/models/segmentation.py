"""Part segmentation on top of a backbone: one interface, a head per registered backbone.

Every segmenter is a :class:`PartSegmenter`: ``forward(features (B, N, C_in) float32,
categories (B,) int64) -> logits (B, N, parts) float32``, the category given as a one-hot
vector, as the ShapeNetPart protocol does (the shape's category is known, its parts are not).
Its state-dict keys are ``backbone.*`` (the backbone's own names, so pre-trained weights load)
and ``head.*``. The heads read :meth:`Backbone.forward_levels`, the backbone's features at
every stage, finest first, and bring them back to every input point by feature propagation
(:class:`~tap3d.models.backbones.propagation.FeaturePropagation`) where a stage has fewer
points. Each head lives in its backbone's module and is named by its
:data:`~tap3d.models.backbones.REGISTRY` entry.

===============  =====================================================================
backbone         head
===============  =====================================================================
``pointmlp``     PointMLP's part segmentor as the TAP authors build it
                 (``backbones/pointmlp.py``)
``pointnet2``    PointNet++'s feature-propagation decoder (``pointnet2.py``)
``dgcnn``        DGCNN's segmentation head (``dgcnn.py``)
``transformer``  Point-BERT's multi-level features + upsampling
                 (``transformer.py``)
===============  =====================================================================

Widths are multiples of the backbone's ``embed_dim`` (64 in the papers), so a small backbone
gets a small head of the same shape.
"""

from __future__ import annotations

import torch
from torch import nn

from tap3d.models.backbones import Backbone, entry_of, make_backbone

__all__ = ["PartSegmenter", "make_segmenter"]


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
        head = entry_of(backbone)[1].seg_head  # ValueError: not a registered backbone
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
