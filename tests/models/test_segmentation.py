"""Segmentation heads for every registered backbone, and loading a classification-pre-trained
backbone into a segmenter with a report of what was not loaded."""

from __future__ import annotations

import pytest
import torch

from tap3d.train.weights import to_openpoints
from tap3d.models.backbones import BACKBONES, PointMLP
from tap3d.models.segmentation import make_segmenter
from tap3d.train.weights import load_pretrained_backbone


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_segments_every_point(name):
    torch.manual_seed(0)
    model = make_segmenter(name, parts=10, categories=3, embed_dim=8).eval()
    features = torch.randn(2, 256, 6)
    logits = model(features, torch.tensor([0, 2]))
    assert logits.shape == (2, 256, 10) and logits.dtype == torch.float32
    other = model(features, torch.tensor([1, 2]))
    assert not torch.allclose(other[0], logits[0])  # the category enters every point
    torch.testing.assert_close(other[1], logits[1])  # shapes do not mix in eval mode
    model.train()
    model(features, torch.tensor([0, 2])).square().mean().backward()
    assert model.backbone.forward_levels  # the head reads the backbone's levels
    grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_forward_levels_ends_with_forward(name):
    torch.manual_seed(0)
    backbone = make_segmenter(name, 4, 2, embed_dim=8).backbone.eval()
    features = torch.randn(2, 400, 6)  # 25 points in PointMLP's last stage (k = 24)
    levels = backbone.forward_levels(features)
    assert [f.shape[-1] for f, _ in levels] == backbone.level_channels
    final, xyz = backbone(features)
    torch.testing.assert_close(levels[-1][0], final)
    torch.testing.assert_close(levels[-1][1], xyz)


def test_pointmlp_segmentor_has_the_authors_shape():
    model = make_segmenter("pointmlp", parts=50, categories=16)
    backbone, head = model.backbone, model.head
    assert backbone.level_channels == [64, 128, 256, 512, 1024]
    assert backbone.embedding[0].in_channels == 6
    assert [d.mlp[-1].linear.out_features for d in head.decoders] == [512, 256, 128, 128]
    assert [len(d.blocks) for d in head.decoders] == [4, 4, 4, 4]
    assert head.classifier[0].in_channels == 64 + 64 + 128
    assert head.category[0][0].in_channels == 16
    assert all(m.bias is None for m in head.modules() if isinstance(m, torch.nn.Conv1d))


def test_pretrained_backbone_loads_with_every_skipped_tensor_named(tmp_path):
    torch.manual_seed(1)
    pretrained = PointMLP(in_channels=4, embed_dim=8)  # xyz + height, as TAP pre-trains
    path = tmp_path / "openpoints.pth"
    torch.save({"model": {f"encoder.{k}": v for k, v in
                          to_openpoints(pretrained.state_dict()).items()}}, path)
    model = make_segmenter("pointmlp", parts=10, categories=3, embed_dim=8)
    report = load_pretrained_backbone(model, str(path))
    assert report.skipped == {"embedding.0.weight (openpoints embedding.net.0.weight)":
                              "shape (8, 4, 1) in the checkpoint, (8, 6, 1) here"}
    assert "embedding.0.weight (openpoints" in report.format()
    state, theirs = model.backbone.state_dict(), pretrained.state_dict()
    assert len(report.loaded) == len(theirs) - 1
    for key in report.loaded:
        torch.testing.assert_close(state[key], theirs[key])
    assert not torch.equal(state["embedding.0.weight"][:, :4], theirs["embedding.0.weight"])


def test_pretrained_backbone_with_fewer_stages_reports_the_missing_ones(tmp_path):
    small = PointMLP(in_channels=6, embed_dim=8, stages=3)
    path = tmp_path / "three_stages.pt"
    torch.save({"format": "tap3d.backbone", "version": 1, "backbone": "pointmlp",
                "backbone_args": {"in_channels": 6, "embed_dim": 8, "stages": 3},
                "state_dict": small.state_dict(), "config": {}, "step": 5}, path)
    model = make_segmenter("pointmlp", parts=10, categories=3, embed_dim=8)
    report = load_pretrained_backbone(model, str(path))
    missing = {k for k, why in report.skipped.items() if why == "not in the checkpoint"}
    assert missing and all(".stages.3." in f".{k}" for k in missing)
    stage_3 = [k for k in model.backbone.state_dict() if k.startswith("stages.3.")]
    assert len(missing) == len(stage_3)
    assert len(report.loaded) == len(small.state_dict())


def test_poly1_focal_loss_by_hand():
    import math

    from tap3d.train.loss import poly1_focal_loss

    # logits 0: p = 1/2 for both classes, BCE = ln 2, p_t = 1/2; alpha_t = 0.25 on the target,
    # 0.75 on the other; the poly term is (1 - p_t)^3 = 1/8 per class
    loss = poly1_focal_loss(torch.zeros(1, 2), torch.tensor([0]))
    expected = ((0.25 + 0.75) / 2) * math.log(2) * 0.25 + 0.125
    assert float(loss) == pytest.approx(expected)
    # a confident right answer costs less than a confident wrong one
    right = poly1_focal_loss(torch.tensor([[5.0, -5.0]]), torch.tensor([0]))
    wrong = poly1_focal_loss(torch.tensor([[-5.0, 5.0]]), torch.tensor([0]))
    assert float(right) < 1e-3 < float(wrong)


def test_multistep_schedule():
    from tap3d.train.optim import multistep_schedule

    factor = multistep_schedule([210 * 3, 270 * 3], 0.1)  # 3 steps per epoch
    assert [factor(s) for s in (0, 629, 630, 809, 810, 899)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01])
