"""Every task's loss under bf16 autocast (what ``--device cuda`` trains with), on CPU: a dtype
bug of a backbone, head, the Photograph module or a loss fails here instead of on a GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tap3d.geometry.features import backbone_input
from tap3d.models import TAPModel
from tap3d.models.backbones import BACKBONES, make_backbone
from tap3d.models.heads import Classifier
from tap3d.models.segmentation import make_segmenter
from tap3d.train import load_config, poly1_focal_loss, tap_loss
from tap3d.train.config import model_config

from helpers import real_cloud


def _cloud(points: int = 256, batch: int = 2) -> torch.Tensor:
    """``(batch, points, 3)``: surface samples of real meshes, a different mesh per sample."""
    return torch.from_numpy(np.stack([real_cloud(i, points) for i in range(batch)])).float()


def _classification(name):
    model = Classifier(make_backbone(name, embed_dim=8), 4, [16], 0.5)
    features = backbone_input(_cloud())
    return model, lambda: F.cross_entropy(model(features), torch.tensor([0, 3]),
                                          label_smoothing=0.3)


def _part_segmentation(name):
    model = make_segmenter(name, parts=6, categories=2, in_channels=6, embed_dim=8)
    xyz = _cloud()
    normals = F.normalize(xyz, dim=-1)
    features, categories = torch.cat([xyz, normals], -1), torch.tensor([0, 1])
    target = (xyz[..., 1] > 0).long() + 2 * categories[:, None]
    return model, lambda: poly1_focal_loss(model(features, categories).reshape(-1, 6),
                                           target.reshape(-1))


def _pretraining(name):
    config = load_config(None, backbone=name, embed_dim=8, photograph_dim=32, points=256)
    model = TAPModel(model_config(config, 64, "perspective"))
    K = torch.tensor([[55.4, 0, 31.5], [0, 55.4, 31.5], [0, 0, 1]]).expand(2, 2, 3, 3)
    w2c = torch.eye(4).expand(2, 2, 4, 4).clone()
    w2c[..., 2, 3] = 2.0
    w2c[:, 1, 0, 3] = 0.3
    features = backbone_input(_cloud())
    target = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    mask = target[:, 0] > 0.5

    def loss():
        generated = model(features, K, w2c).flatten(0, 1)
        return tap_loss(generated, target, mask)["loss"]

    return model, loss


@pytest.mark.parametrize("name", sorted(BACKBONES))
@pytest.mark.parametrize("task", [_classification, _part_segmentation, _pretraining],
                         ids=["classify", "partseg", "pretrain"])
def test_every_task_loss_trains_under_bf16_autocast(name, task):
    torch.manual_seed(0)
    model, loss = task(name)
    model.eval()  # the same dropout (none) and normalization statistics in both passes
    full = loss()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = loss()
    assert half.dtype == torch.float32  # the losses are computed in float32
    assert torch.isfinite(half)
    # bf16 keeps 8 bits of mantissa: the same loss to a few percent, not another one
    assert abs(half.item() - full.item()) <= 0.05 * abs(full.item()) + 1e-3, (half, full)
    model.zero_grad()
    half.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    reached = [g for g in grads if g is not None and g.abs().sum() > 0]
    assert all(torch.isfinite(g).all() for g in reached)
    assert len(reached) >= 0.8 * len(grads), f"{len(reached)} of {len(grads)} got gradients"
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast keeps fp32 weights
