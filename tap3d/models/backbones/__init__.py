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

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from tap3d.models.backbones import dgcnn, pointmlp, pointnet2, transformer
from tap3d.models.backbones.base import Backbone, PointwiseBlock
from tap3d.models.backbones.dgcnn import DGCNN, EdgeConv
from tap3d.models.backbones.pointmlp import PointMLP
from tap3d.models.backbones.pointnet2 import PointNet2, SetAbstraction
from tap3d.models.backbones.transformer import PointTransformer
from tap3d.models.naming import Rule
from tap3d.settings import one_of, setting, settings

__all__ = ["Backbone", "PointwiseBlock", "PointMLP", "DGCNN", "EdgeConv", "PointNet2",
           "SetAbstraction", "PointTransformer", "BackboneEntry", "REGISTRY", "BACKBONES",
           "make_backbone", "entry_of", "BackboneName", "BackboneSettings"]


@dataclass(frozen=True)
class BackboneEntry:
    """Everything tap3d knows of one backbone, each part in the backbone's own module.

    Attributes:
        backbone: the :class:`Backbone` class (its constructor takes ``embed_dim`` and
            ``in_channels``).
        seg_head: its part-segmentation head class, ``head(backbone, parts, categories)``
            (:class:`tap3d.models.segmentation.PartSegmenter`).
        openpoints_rules: the renaming of its state-dict entries to the TAP authors' names
            and back (:mod:`tap3d.models.openpoints`).
        kwargs_from_state: its constructor arguments read off a tap3d state dict of it
            (raises ``KeyError`` when the state dict is not one of it).
    """

    backbone: type[Backbone]
    seg_head: type[nn.Module]
    openpoints_rules: tuple[Rule, ...]
    kwargs_from_state: Callable[[dict], dict]


def _entry(module, backbone: type[Backbone], head: type[nn.Module]) -> BackboneEntry:
    return BackboneEntry(backbone, head, tuple(module.openpoints_rules()),
                         module.kwargs_from_state)


#: The backbones by name: a new backbone is its module (class, segmentation head,
#: ``openpoints_rules``, ``kwargs_from_state``) and one entry here.
REGISTRY = {
    "pointmlp": _entry(pointmlp, PointMLP, pointmlp.PointMLPSegHead),
    "dgcnn": _entry(dgcnn, DGCNN, dgcnn.DGCNNSegHead),
    "pointnet2": _entry(pointnet2, PointNet2, pointnet2.PointNet2SegHead),
    "transformer": _entry(transformer, PointTransformer, transformer.TransformerSegHead),
}

#: Backbone name -> class (the settings' and the command line's choices).
BACKBONES = {name: entry.backbone for name, entry in REGISTRY.items()}

#: A backbone name: a key of :data:`BACKBONES`.
BackboneName = one_of(BACKBONES)


@settings
class BackboneSettings:
    """Which backbone, and how wide: what every model built on a backbone is given."""

    backbone: BackboneName = setting("pointmlp", "Backbone (tap3d.models.backbones.BACKBONES).")
    embed_dim: int = setting(64, "The backbone's base width; its other widths are multiples.")


def entry_of(backbone: Backbone) -> tuple[str, BackboneEntry]:
    """``(name, entry)`` of a backbone instance.

    Raises:
        ValueError: a backbone of a class that is not registered.
    """
    found = next(((n, e) for n, e in REGISTRY.items() if type(backbone) is e.backbone), None)
    if found is None:
        raise ValueError(f"{type(backbone).__name__} is not a registered backbone "
                         f"({', '.join(REGISTRY)})")
    return found


def make_backbone(name: str, **kwargs) -> Backbone:
    """Build a backbone by name (a key of :data:`REGISTRY`) with constructor ``kwargs``
    (``embed_dim`` is understood by all). Raises ``ValueError`` on unknown names."""
    if name not in REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name].backbone(**kwargs)
