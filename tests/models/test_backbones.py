"""Every backbone on real point clouds: shapes, gradients, DGCNN's order invariance, point
operations against brute force, and a few TAP pre-training steps per backbone (CPU)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from tap3d.builder import BuildConfig, build
from tap3d.cli.train import train_command
from tap3d.clouds.pipeline import eval_features
from tap3d.models import BACKBONES, make_backbone
from tap3d.geometry.pointops import ball_query, farthest_point_sample, gather, knn
from tap3d.train import load_config, train

from evaluate_data import CLASS_MESHES, load_y_up

#: name -> (points, channels) of ``forward`` and channels of ``forward_pooled`` at the authors'
#: configuration, for 1024 input points.
SHAPES = {"pointmlp": (64, 1024, 1024), "dgcnn": (1024, 1024, 2048),
          "pointnet2": (64, 1024, 1024), "transformer": (256, 384, 768)}


@pytest.fixture(scope="module")
def views(tmp_path_factory, mesh_folder):
    """The 8 real meshes, 6 views of 64 x 64, 1024 surface points each."""
    out = str(tmp_path_factory.mktemp("backbones") / "views.zarr")
    build(mesh_folder, out, BuildConfig(views=6, image_size=64, points=1024, shard_size=4),
          workers=0, progress=False)
    return out


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models run many small operations (sampling loops, narrow layers), where a second
    intra-op thread mostly adds synchronization: on a busy 2-core machine it made this module
    several times slower. Restored after the module (an in-process build restores it too)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clouds(pybullet_root):
    """``(4, 1024, 4)`` float32 features (xyz + height, y-up, centred, unit radius) of 1024
    surface points of four real meshes (duck, teddy, mug, bunny; nothing rendered), as
    fine-tuning's test-time inputs make them."""
    import trimesh

    xyz = [trimesh.sample.sample_surface(load_y_up(pybullet_root, CLASS_MESHES[name]), 1024,
                                         seed=seed)[0]
           for seed, name in enumerate(("duck", "teddy", "mug", "bunny"))]
    return eval_features(np.stack(xyz).astype(np.float32), 1024, 1, "cpu")


def test_shapes_dtypes_and_coordinates(clouds):
    """The authors' configuration of each backbone on 1024 real points: the documented output
    shapes, float32, and output coordinates that are input points (or group centres)."""
    features = clouds[:1]
    assert set(SHAPES) == set(BACKBONES)
    for name, (points, channels, pooled) in SHAPES.items():
        backbone = make_backbone(name).eval()
        with torch.no_grad():
            out, xyz = backbone(features)
            global_feature = backbone.forward_pooled(features)
        assert out.shape == (1, points, channels) and out.dtype == torch.float32, name
        assert xyz.shape == (1, points, 3) and xyz.dtype == torch.float32, name
        assert backbone.out_channels == channels and backbone.pooled_channels == pooled, name
        assert global_feature.shape == (1, pooled) and global_feature.dtype == torch.float32
        assert torch.isfinite(out).all() and torch.isfinite(global_feature).all(), name
        distance = torch.cdist(xyz, features[..., :3],
                               compute_mode="donot_use_mm_for_euclid_dist").min(-1).values
        assert distance.max() < 1e-6, name  # every output point is an input point
        if points == 1024:
            torch.testing.assert_close(xyz, features[..., :3])


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_gradients_reach_every_parameter(name, clouds):
    torch.manual_seed(0)
    backbone = make_backbone(name, embed_dim=8).train()
    features = clouds[:2, :512]
    out, _ = backbone(features)
    pooled = backbone.forward_pooled(features)
    loss = (out * torch.randn_like(out)).sum() + (pooled * torch.randn_like(pooled)).sum()
    loss.backward()
    missing = [n for n, p in backbone.named_parameters()
               if p.grad is None or not torch.isfinite(p.grad).all() or not p.grad.abs().sum()]
    assert not missing, missing


def test_dgcnn_ignores_point_order(clouds):
    """DGCNN samples nothing: permuting the input points permutes its per-point features the
    same way and leaves the pooled feature unchanged (eval mode, BatchNorm statistics from a
    training batch)."""
    torch.manual_seed(0)
    backbone = make_backbone("dgcnn")
    with torch.no_grad():
        backbone(clouds)  # non-trivial running statistics
    backbone.eval()
    clouds = clouds[:2]
    permutation = torch.randperm(clouds.shape[1])
    with torch.no_grad():
        out, xyz = backbone(clouds)
        out_p, xyz_p = backbone(clouds[:, permutation])
        pooled, pooled_p = backbone.forward_pooled(clouds), backbone.forward_pooled(
            clouds[:, permutation])
    torch.testing.assert_close(xyz_p, xyz[:, permutation])
    torch.testing.assert_close(out_p, out[:, permutation], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(pooled_p, pooled, rtol=1e-4, atol=1e-5)
    assert pooled.std(0).mean() > 1e-3  # different objects, different features


def _reference_fps(xyz: np.ndarray, count: int, start: int) -> list[int]:
    chosen, distance = [start], np.full(len(xyz), np.inf)
    for _ in range(count - 1):
        distance = np.minimum(distance, np.linalg.norm(xyz - xyz[chosen[-1]], axis=1))
        chosen.append(int(distance.argmax()))
    return chosen


def test_farthest_point_sample_matches_brute_force_and_nests(clouds):
    xyz = clouds[..., :3].contiguous()
    chosen = farthest_point_sample(xyz, 256)
    assert chosen.shape == (4, 256) and chosen.dtype == torch.int64
    for b in range(4):
        assert chosen[b].tolist() == _reference_fps(xyz[b].double().numpy(), 256, 0)
    # sampling from the first 512 samples gives their first 128: one call serves all stages
    first = gather(xyz, farthest_point_sample(xyz, 512))
    assert (farthest_point_sample(first, 128) == torch.arange(128)).all()
    unbatched = farthest_point_sample(xyz[1], 16, start=7)
    assert unbatched.tolist() == _reference_fps(xyz[1].double().numpy(), 16, 7)
    with pytest.raises(ValueError, match="count"):
        farthest_point_sample(xyz, 1025)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_farthest_point_sample_cuda_graph_matches_eager(clouds, monkeypatch):
    import tap3d.geometry.pointops as pointops

    xyz = clouds[..., :3].cuda()
    graphed = [farthest_point_sample(xyz, 300, start=s) for s in (0, 5, 0)]  # records, replays
    monkeypatch.setattr(pointops, "CUDA_GRAPHS", False)
    assert (graphed[0] == farthest_point_sample(xyz, 300)).all()
    assert (graphed[1] == farthest_point_sample(xyz, 300, start=5)).all()
    assert (graphed[2] == graphed[0]).all()
    assert graphed[0].cpu().tolist()[0] == _reference_fps(xyz[0].double().cpu().numpy(), 300, 0)


def test_knn_and_ball_query_match_brute_force(clouds):
    xyz = clouds[..., :3].contiguous()
    centres = xyz[:, :50]
    distance = torch.cdist(centres.double(), xyz.double())
    index = knn(centres, xyz, 20)
    assert index.shape == (4, 50, 20) and (index[..., 0] == torch.arange(50)).all()
    near = distance.gather(-1, index)
    assert (near.max(-1).values <= distance.sort(-1).values[..., 19] + 1e-6).all()
    radius = 0.1
    nearest = ball_query(centres, xyz, radius, 32, order="nearest")
    inside = distance.gather(-1, nearest) <= radius + 1e-6
    assert inside.all()  # padding repeats the nearest point, never a point outside
    counts = (distance <= radius).sum(-1).clamp(max=32)
    assert (torch.tensor([[len(set(row.tolist())) for row in c] for c in nearest]) ==
            counts).all()
    # the default, PointNet++'s CUDA ball_query: scan the points in index order, keep the first
    # 32 inside, pad with the first one found (0 when none is inside)
    balls = ball_query(centres, xyz, radius, 32)
    far = torch.full((1, 1, 3), 10.0)
    assert ball_query(far, xyz[:1], radius, 4).tolist() == [[[0, 0, 0, 0]]]
    for b in range(len(xyz)):
        for s in range(centres.shape[1]):
            hits = torch.nonzero(distance[b, s] < radius).flatten()[:32].tolist()
            expected = hits + [hits[0]] * (32 - len(hits))
            assert balls[b, s].tolist() == expected, (b, s)
    with pytest.raises(ValueError, match="order"):
        ball_query(centres, xyz, radius, 32, order="random")


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_a_few_pretraining_steps_lower_the_loss(name, views, tmp_path):
    """24 steps of TAP pre-training on the real renders with each backbone (narrow widths): the
    TAP loss of the last window of 6 steps is at least 10% below the first (here 17-32%).
    Foreground and background weigh the same, so the loss moves within a few steps; what is
    learnt first is mostly the white background (at 20 : 1 it takes hundreds of steps, see
    tests/train/test_pretrain.py)."""
    config = load_config(None, backbone=name, embed_dim=8, photograph_dim=32, batch_size=4,
                         points=512, views_per_sample=3, lr=1e-2, warmup_steps=0, w_fg=1.0,
                         w_bg=1.0, max_steps=24, epochs=100, log_every=6,
                         checkpoint_every=10**6, sample_every=10**6, scale_low=1.0,
                         scale_high=1.0, device="cpu")
    train(views, str(tmp_path), config, progress=False)
    records = [json.loads(line) for line in open(os.path.join(tmp_path, "metrics.jsonl"))]
    assert len(records) == 4
    assert records[-1]["loss"] < 0.9 * records[0]["loss"], [r["loss"] for r in records]


def test_errors_and_cli_choices():
    with pytest.raises(ValueError, match="unknown backbone"):
        make_backbone("pointnet")
    with pytest.raises(ValueError, match="DGCNN: features have 3 channels"):
        make_backbone("dgcnn", embed_dim=8)(torch.zeros(1, 64, 3))
    choices = next(p for p in train_command.params if p.name == "backbone").type.choices
    assert sorted(choices) == sorted(BACKBONES)
