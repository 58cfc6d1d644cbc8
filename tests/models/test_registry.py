"""A new backbone is its module and one registry entry: a toy backbone registered here (and only
here) works through every place that takes a backbone name: construction, part segmentation,
the authors' naming both ways, and backbone files written and read back."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tap3d.models.backbones import (REGISTRY, Backbone, BackboneEntry, PointwiseBlock,
                                    make_backbone)
from tap3d.models.naming import Rule, block
from tap3d.models.openpoints import backbone_from_openpoints, backbone_to_openpoints
from tap3d.models.segmentation import PartSegmenter, make_segmenter
from tap3d.train.weights import export_backbone, load_backbone


class Toy(Backbone):
    """Two point-wise layers: ``(B, N, in_channels)`` -> ``(B, N, 2 embed_dim)``."""

    def __init__(self, in_channels: int = 4, embed_dim: int = 8):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, 2 * embed_dim
        self.first = PointwiseBlock(in_channels, embed_dim)
        self.second = PointwiseBlock(embed_dim, 2 * embed_dim)

    def forward(self, features):
        self.check_features(features)
        return self.second(self.first(features)), features[..., :3]


class ToySegHead(nn.Module):
    def __init__(self, backbone: Toy, parts: int, categories: int):
        super().__init__()
        self.out = nn.Linear(backbone.out_channels + categories, parts)

    def forward(self, levels, features, onehot):
        x = levels[-1][0]
        return self.out(torch.cat([x, onehot[:, None].expand(-1, x.shape[1], -1)], -1))


def toy_rules() -> list[Rule]:
    return block("first", "stem.conv", 1) + block("second", "body.conv", 1)


def toy_kwargs(state: dict) -> dict:
    weight = state["first.linear.weight"]
    return {"in_channels": int(weight.shape[1]), "embed_dim": int(weight.shape[0])}


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(REGISTRY, "toy", BackboneEntry(Toy, ToySegHead, tuple(toy_rules()),
                                                       toy_kwargs))
    return "toy"


def test_one_entry_makes_a_backbone_usable_everywhere(toy, tmp_path):
    torch.manual_seed(0)
    model = make_backbone(toy, in_channels=6, embed_dim=4)
    features = torch.randn(2, 32, 6)
    assert model(features)[0].shape == (2, 32, 8)
    segmenter = make_segmenter(toy, parts=5, categories=2, in_channels=6, embed_dim=4)
    assert segmenter(features, torch.tensor([0, 1])).shape == (2, 32, 5)
    theirs = backbone_to_openpoints(toy, model.state_dict())
    assert "stem.conv.0.weight" in theirs and theirs["stem.conv.0.weight"].dim() == 3
    name, ours = backbone_from_openpoints(theirs)
    assert name == toy and ours.keys() == model.state_dict().keys()
    # a backbone file in both namings reads back with the constructor arguments from the shapes
    torch.save({"model": model.state_dict()}, tmp_path / "toy.pt")
    for format_ in ("tap3d", "openpoints"):
        out = tmp_path / f"toy-{format_}.pt"
        export_backbone(tmp_path / "toy.pt", out, format=format_)
        loaded, weights = load_backbone(str(out))
        assert weights.backbone == toy and weights.kwargs == {"in_channels": 6, "embed_dim": 4}
        for key, value in model.state_dict().items():
            torch.testing.assert_close(loaded.state_dict()[key], value)


def test_an_unregistered_backbone_is_named(toy):
    REGISTRY.pop(toy)
    with pytest.raises(ValueError, match="unknown backbone 'toy'"):
        make_backbone(toy)
    with pytest.raises(ValueError, match="Toy is not a registered backbone"):
        PartSegmenter(Toy(), 5, 2)
