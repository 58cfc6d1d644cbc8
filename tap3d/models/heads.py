"""Classification on top of a backbone: its pooled global feature and an MLP head.

The head of TAP's fine-tuning recipe (``cfgs/scanobjectnn/pointmlp_finetune.yaml``, openpoints'
``ClsHead``): hidden layers ``[512, 256]``, each Linear -> BatchNorm1d -> ReLU -> Dropout(0.5),
then a Linear to the class logits.
"""

from __future__ import annotations

import torch
from torch import nn

from tap3d.models.backbones import Backbone

__all__ = ["ClassificationHead", "Classifier"]


class ClassificationHead(nn.Sequential):
    """MLP from a global feature ``(B, in_channels)`` to logits ``(B, classes)``.

    Args:
        in_channels: global feature channels.
        classes: number of classes.
        hidden: hidden widths (TAP: ``[512, 256]``).
        dropout: dropout after each hidden layer (TAP: 0.5; 0 for none).
    """

    def __init__(self, in_channels: int, classes: int, hidden=(512, 256), dropout: float = 0.5):
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(in_channels, width, bias=False), nn.BatchNorm1d(width),
                       nn.ReLU(inplace=True)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            in_channels = width
        layers.append(nn.Linear(in_channels, classes))
        super().__init__(*layers)


class Classifier(nn.Module):
    """Backbone -> its global feature (:meth:`Backbone.forward_pooled`: max pooling for PointMLP,
    max + mean for DGCNN, the class token + max for the Transformer, PointNet++'s group-all
    stage) -> :class:`ClassificationHead`.

    ``forward(features (B, N, C_in) float32)`` -> logits ``(B, classes)`` float32. The
    backbone's state-dict keys are prefixed ``backbone.``, the head's ``head.``.
    """

    def __init__(self, backbone: Backbone, classes: int, hidden=(512, 256), dropout: float = 0.5):
        super().__init__()
        self.backbone = backbone
        self.head = ClassificationHead(backbone.pooled_channels, classes, hidden, dropout)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.forward_pooled(features))
