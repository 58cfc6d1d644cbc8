"""Point-cloud backbones: points -> per-point features and their coordinates.

Every backbone follows :class:`Backbone` and reads ``(B, N, C_in)`` features, xyz first; each
takes ``embed_dim``, its base width, 64 in every one of the authors' configurations, every other
width being a fixed multiple of it (so ``embed_dim: 8`` gives a small model of the same shape).

===============  =======================  ==========  ============================  ==========
name             paper                    input       output for 1024 points        parameters
===============  =======================  ==========  ============================  ==========
``pointmlp``     Ma et al., ICLR 2022     xyz+height  1024 channels on 64 points    12,570,624
``dgcnn``        Wang et al., TOG 2019    xyz+height  1024 channels on 1024 points     617,984
``pointnet2``    Qi et al., NeurIPS 2017  xyz+height  1024 channels on 64 points       805,440
``transformer``  Yu et al., CVPR 2022     xyz         384 channels on 256 groups    21,858,816
===============  =======================  ==========  ============================  ==========

Parameters are the backbones' alone; the papers' figures (DGCNN 1.8M, PointNet++ SSG 1.5M,
Point-BERT 22.1M) include their classification heads.
"""

from tap3d.models.backbones.base import Backbone, PointwiseBlock
from tap3d.models.backbones.dgcnn import DGCNN, EdgeConv
from tap3d.models.backbones.pointmlp import PointMLP
from tap3d.models.backbones.pointnet2 import PointNet2, SetAbstraction
from tap3d.models.backbones.transformer import PointTransformer

__all__ = ["Backbone", "PointwiseBlock", "PointMLP", "DGCNN", "EdgeConv", "PointNet2",
           "SetAbstraction", "PointTransformer", "BACKBONES", "make_backbone"]

BACKBONES = {"pointmlp": PointMLP, "dgcnn": DGCNN, "pointnet2": PointNet2,
             "transformer": PointTransformer}


def make_backbone(name: str, **kwargs) -> Backbone:
    """Build a backbone by name (a key of :data:`BACKBONES`) with constructor ``kwargs``
    (``embed_dim`` is understood by all). Raises ``ValueError`` on unknown names."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    return BACKBONES[name](**kwargs)
