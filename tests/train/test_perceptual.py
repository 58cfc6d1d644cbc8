"""The perceptual loss of the TAP supplement (eq. 2-3), against a direct computation of eq. 2,
with a VGG-16 of seeded random weights saved to a file (nothing is downloaded)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
import torchvision

from tap3d.train import load_config, train
from tap3d.train.perceptual import VGG16_LAYERS, PerceptualLoss
from tap3d.train.torchfile import WeightsError

LAYERS = ["relu1_2", "relu2_2", "relu3_3"]


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """VGG-16 features up to relu3_3 with seeded random weights, as torchvision names them in
    its full state dict (``features.*``)."""
    torch.manual_seed(0)
    features = torchvision.models.vgg16(weights=None).features[:VGG16_LAYERS["relu3_3"] + 1]
    path = str(tmp_path_factory.mktemp("vgg") / "vgg16-features.pth")
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return path, features.eval()


@pytest.fixture(scope="module")
def train_set(make_dataset, duck_and_mug_meshes):
    """The duck and the mug, 2 views of 32 x 32."""
    return make_dataset("perceptual", duck_and_mug_meshes, views=2, image_size=32, points=256,
                        shard_size=2)


def _images(seed, batch=3, size=32):
    return torch.from_numpy(np.random.default_rng(seed).random((batch, 3, size, size))
                            .astype(np.float32))


def test_the_loss_is_equation_2(vgg_file):
    path, features = vgg_file
    loss = PerceptualLoss(LAYERS, path)
    generated, target = _images(0), _images(1)
    got = loss(generated, target)
    # eq. 2 by hand: ImageNet normalization, then per layer the squared distance over the
    # feature map's size, averaged over the layers and the batch
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    a, b = (generated - mean) / std, (target - mean) / std
    expected = torch.zeros(())
    with torch.no_grad():
        for index, module in enumerate(features):
            a, b = module(a), module(b)
            if index in [VGG16_LAYERS[name] for name in LAYERS]:
                c, h, w = a.shape[1:]
                expected = expected + ((a - b) ** 2).sum((1, 2, 3)).mean() / (c * h * w)
    expected = expected / len(LAYERS)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=0)
    assert float(loss(target, target)) == 0.0
    generated.requires_grad_(True)
    loss(generated, target).backward()
    assert generated.grad.abs().sum() > 0 and not any(
        p.requires_grad for p in loss.parameters())  # the loss network stays frozen


def test_missing_weights_fail_before_training_and_say_where(tmp_path, monkeypatch, train_set):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    config = load_config(None, w_feat=2.0, batch_size=2, points=256, views_per_sample=2,
                         photograph_dim=32, embed_dim=8, max_steps=2, device="cpu")
    with pytest.raises(WeightsError, match="vgg16-397923af.pth") as error:
        train(train_set, str(tmp_path / "run"), config, progress=False)
    assert str(tmp_path / "torch-home") in str(error.value)
    assert not os.path.exists(tmp_path / "run")
    with pytest.raises(WeightsError, match="no such file"):
        PerceptualLoss(LAYERS, str(tmp_path / "nothing.pth"))


def test_h1_trains_on_the_perceptual_loss_alone(tmp_path, vgg_file, train_set):
    """Table 1b's H1 (w_fg = w_bg = 0, w_feat = 2) at toy size: the step loss is 2 L_feat."""
    path, _ = vgg_file
    config = load_config(None, w_fg=0.0, w_bg=0.0, w_feat=2.0, feat_layers=LAYERS,
                         feat_weights=path, batch_size=2, points=256, views_per_sample=2,
                         photograph_dim=32, embed_dim=8, max_steps=4, log_every=1,
                         checkpoint_every=10**6, sample_every=10**6, device="cpu")
    train(train_set, str(tmp_path / "h1"), config, progress=False)
    records = [json.loads(line) for line in open(tmp_path / "h1" / "metrics.jsonl")]
    steps = [r for r in records if "loss_feat" in r]
    assert len(steps) == 4 and all(r["loss_feat"] > 0 for r in steps)
    for r in steps:
        assert r["loss"] == pytest.approx(2 * r["loss_feat"], rel=1e-5)
