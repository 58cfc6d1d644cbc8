"""The TAP authors' checkpoints: openpoints naming <-> tap3d naming, strictly (CPU, seconds)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tap3d.train.weights import (WeightsError, export_backbone, from_openpoints, load_backbone_weights, to_openpoints)
from tap3d.models import PointMLP

from helpers import tap_cli


def authors_pointmlp_state(in_channels=4, embed=64, stages=4, blocks=2, seed=0) -> dict:
    """Entries and shapes of the authors' ``PointMLPEncoder`` with their public config
    (``cfgs/scanobjectnn/pointmlp_finetune.yaml``: in_channels 4, embed_dim 64, bias False,
    use_xyz False, anchor normalization, res_expansion 1, dim_expansion 2, 2 pre and 2 pos
    blocks per stage), written from the structure of ``openpoints/models/backbone/pointmlp.py``
    (``ConvBNReLU1D.net``, ``LocalGrouper.affine_alpha/beta``, ``PreExtraction.transfer`` and
    ``.operation``, ``ConvBNReLURes1D.net1/net2``), with random values."""
    generator = torch.Generator().manual_seed(seed)
    state = {}

    def conv_bn(prefix, cin, cout):
        state[f"{prefix}.0.weight"] = torch.randn(cout, cin, 1, generator=generator) / cin ** 0.5
        state[f"{prefix}.1.weight"] = torch.rand(cout, generator=generator) + 0.5
        state[f"{prefix}.1.bias"] = torch.randn(cout, generator=generator)
        state[f"{prefix}.1.running_mean"] = torch.randn(cout, generator=generator)
        state[f"{prefix}.1.running_var"] = torch.rand(cout, generator=generator) + 0.5
        state[f"{prefix}.1.num_batches_tracked"] = torch.tensor(123)

    conv_bn("embedding.net", in_channels, embed)
    channels = embed
    for i in range(stages):
        state[f"local_grouper_list.{i}.affine_alpha"] = torch.randn(1, 1, 1, channels,
                                                                    generator=generator)
        state[f"local_grouper_list.{i}.affine_beta"] = torch.randn(1, 1, 1, channels,
                                                                   generator=generator)
        out = 2 * channels
        conv_bn(f"pre_blocks_list.{i}.transfer.net", 2 * channels, out)  # use_xyz False: 2 C in
        for group in ("pre_blocks_list", "pos_blocks_list"):
            for j in range(blocks):
                conv_bn(f"{group}.{i}.operation.{j}.net1", out, out)
                conv_bn(f"{group}.{i}.operation.{j}.net2", out, out)
        channels = out
    return state


def _parameters(state: dict) -> int:
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    return sum(v.numel() for k, v in state.items() if not k.endswith(buffers))


def test_authors_public_pointmlp_converts_strictly(tmp_path):
    theirs = authors_pointmlp_state()
    assert len(theirs) == 230 and _parameters(theirs) == 12_570_624
    ours = from_openpoints(theirs)
    model = PointMLP()
    model.load_state_dict(ours, strict=True)  # every entry, every shape
    for key, value in model.state_dict().items():
        assert torch.equal(value, ours[key]), key
    # the same through a file shaped like the authors' fine-tuning checkpoint (BaseCls under
    # DistributedDataParallel): module. and encoder. prefixes, a head that is left out
    path = tmp_path / "authors.pth"
    torch.save({"model": {**{f"module.encoder.{k}": v for k, v in theirs.items()},
                          "module.prediction.head.0.0.weight": torch.zeros(512, 1024)},
                "epoch": 250, "best_val": 88.5}, path)
    weights = load_backbone_weights(path)
    assert weights.origin == "openpoints" and weights.dropped == ["prediction"]
    assert weights.kwargs["embed_dim"] == 64 and weights.kwargs["in_channels"] == 4
    built = weights.build()
    assert torch.equal(built.state_dict()["stages.3.pos.1.net.4.running_var"],
                       theirs["pos_blocks_list.3.operation.1.net2.1.running_var"])


@pytest.mark.parametrize("layout", ["model", "state_dict", "bare"])
def test_every_checkpoint_layout_reads_the_same(tmp_path, layout):
    theirs = authors_pointmlp_state(embed=16, seed=1)
    body = {"model": {"model": theirs}, "state_dict": {"state_dict": theirs}, "bare": theirs}
    torch.save(body[layout], tmp_path / "c.pth")
    weights = load_backbone_weights(tmp_path / "c.pth")
    assert weights.kwargs["embed_dim"] == 16
    assert all(torch.equal(v, theirs[k]) for k, v in to_openpoints(weights.state_dict).items())


def test_tap3d_openpoints_tap3d_is_the_identity(tmp_path):
    torch.manual_seed(0)
    model = PointMLP(embed_dim=16)
    ours = model.state_dict()
    theirs = to_openpoints(ours)
    assert "pre_blocks_list.2.operation.1.net2.0.weight" in theirs
    back = from_openpoints(theirs)
    assert list(back) == list(ours) and all(torch.equal(back[k], ours[k]) for k in ours)
    # through files: tap3d backbone file -> openpoints file -> tap3d backbone file
    torch.save({"format": "tap3d.backbone", "version": 1, "backbone": "pointmlp",
                "state_dict": ours, "config": {"embed_dim": 16}, "step": 5}, tmp_path / "tap3d.pt")
    done = tap_cli("export-backbone", str(tmp_path / "tap3d.pt"), "-o",
                   str(tmp_path / "openpoints.pth"), "--format", "openpoints")
    assert done.returncode == 0, done.stderr
    saved = torch.load(tmp_path / "openpoints.pth", weights_only=True)
    assert set(saved) == {"model"} and set(saved["model"]) == set(theirs)
    export_backbone(tmp_path / "openpoints.pth", tmp_path / "again.pt", "tap3d")
    again = torch.load(tmp_path / "again.pt", weights_only=True)
    assert again["backbone"] == "pointmlp" and again["backbone_args"]["embed_dim"] == 16
    assert all(torch.equal(again["state_dict"][k], ours[k]) for k in ours)


def test_an_unknown_key_fails_and_is_listed(tmp_path):
    theirs = authors_pointmlp_state(embed=16)
    theirs["pre_blocks_list.0.operation.0.net3.0.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError, match=r"net3\.0\.weight"):
        from_openpoints(theirs)
    torch.save({"model": theirs}, tmp_path / "bad.pth")
    done = tap_cli("export-backbone", str(tmp_path / "bad.pth"), "-o", str(tmp_path / "x.pt"))
    assert done.returncode != 0
    assert "bad.pth" in done.stderr and "pre_blocks_list.0.operation.0.net3.0.weight" in done.stderr
    # tap3d naming: an entry the backbone does not have, and a shape that does not fit
    ours = PointMLP(embed_dim=16).state_dict()
    torch.save({"format": "tap3d.backbone", "version": 1, "backbone": "pointmlp",
                "state_dict": {**ours, "stages.0.gamma": torch.ones(3)}, "step": 0},
               tmp_path / "extra.pt")
    with pytest.raises(WeightsError, match=r"unknown keys: stages\.0\.gamma"):
        load_backbone_weights(tmp_path / "extra.pt").build()
    # a backbone file that names another backbone than its tensors are
    torch.save({"format": "tap3d.backbone", "version": 1, "backbone": "dgcnn",
                "state_dict": ours, "backbone_args": {}}, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match=r"unknown keys: embedding\.0\.weight"):
        export_backbone(tmp_path / "other.pt", tmp_path / "o.pth", "openpoints")


def test_a_pretraining_run_exports_in_both_namings(tmp_path):
    """A tap3d TAP checkpoint (backbone + Photograph module + generator) as SOURCE."""
    from tap3d.models import TAPModel
    from tap3d.train import load_config
    from tap3d.train.checkpoint import save_checkpoint
    from tap3d.train.config import model_config

    config = load_config(None, embed_dim=8, photograph_dim=32)
    model = TAPModel(model_config(config, 64, "perspective"))
    save_checkpoint(str(tmp_path / "run" / "checkpoints"),
                    {"model": model.state_dict(), "step": 7, "config": dataclasses.asdict(config),
                     "model_args": dataclasses.asdict(model.config)})
    done = tap_cli("export-backbone", str(tmp_path / "run"), "-o", str(tmp_path / "op.pth"),
                   "--format", "openpoints")
    assert done.returncode == 0, done.stderr
    assert "left out generator, photograph" in done.stdout
    weights = load_backbone_weights(tmp_path / "op.pth")
    expected = model.backbone.state_dict()
    assert all(torch.equal(weights.state_dict[k], v) for k, v in expected.items())
