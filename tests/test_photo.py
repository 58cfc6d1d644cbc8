"""TAP as its authors configured it, inputs as fine-tuning sees them, and whether pre-training
takes photos: Photograph presets, TAP's queries, unit-sphere samples whose cameras follow,
generator factors, held-out objects and the IoU / PSNR metrics beside their baselines."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
import yaml

from tap3d.build import BuildConfig, build
from tap3d.models.generator import Generator
from tap3d.models.photograph import PhotographModule, tap_queries, tap_view_rotation
from tap3d.pretrain import load_config, train
from tap3d.pretrain.quality import holdout_split
from tap3d.stream import ViewStream

from helpers import project, tap_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
S = 64


@pytest.fixture(scope="module")
def mvcnn_set(tmp_path_factory, mesh_folder):
    """The 8 real meshes, 12 MVCNN views (elevation 30, azimuth 0..330) of 64 x 64."""
    out = str(tmp_path_factory.mktemp("photo") / "mvcnn.zarr")
    build(mesh_folder, out, BuildConfig(views=12, layout="mvcnn", image_size=S, points=1024,
                                        shard_size=4), workers=0, progress=False)
    return out


def _dilate(mask: np.ndarray) -> np.ndarray:
    """3 x 3 binary dilation: one pixel of tolerance."""
    padded = np.pad(mask, 1)
    return np.any([padded[dy:dy + mask.shape[0], dx:dx + mask.shape[1]]
                   for dy in range(3) for dx in range(3)], axis=0)


def test_public_config_is_the_authors(tmp_path):
    """configs/tap-public.yaml is cfgs/shapenet/pointmlp_pretrain.yaml of wangzy22/TAP: 6 x 256,
    32 heads of 32, dropout 0.1, no q/k/v bias, memory MLP 1027 wide; 18.6M parameters (their
    18,649,172 less the unused pad_memory, 256, plus tap3d's 7 extra LayerNorms, 3,584)."""
    public = load_config(os.path.join(ROOT, "configs", "tap-public.yaml"))
    assert (public.photograph_depth, public.photograph_dim, public.photograph_heads,
            public.photograph_head_dim, public.photograph_dropout, public.photograph_qkv_bias,
            public.photograph_memory_hidden) == (6, 256, 32, 32, 0.1, False, 1027)
    module = PhotographModule(1024, dim=256, depth=6, heads=32, head_dim=32, dropout=0.1,
                              qkv_bias=False, memory_hidden=1027, query="tap")
    assert sum(p.numel() for p in module.parameters()) == 18_649_172 - 256 + 3_584
    supplement = load_config(os.path.join(ROOT, "configs", "tap.yaml"))
    assert (supplement.photograph_depth, supplement.photograph_dim) == (2, 128)
    assert supplement.normalize == public.normalize == "unit_sphere"
    for name in ("tap.yaml", "tap-public.yaml"):  # each says what it is and what it expects
        text = open(os.path.join(ROOT, "configs", name)).read()
        assert "--preset tap" in text and ("Table 1a" in text) and "pointmlp_pretrain" in text


def test_tap_queries_are_a_parallel_projection_fitted_to_the_cloud(mvcnn_set):
    """Each cell's point grid is where the cell centre falls on the view plane through the
    origin, for a parallel projection that spans 200/224 of the image along the cloud's longer
    extent and centres it (within the authors' flooring): rows go down the image, columns
    right. The 4th-6th channels are the world up axis in TAP's view frame."""
    stream = ViewStream(mvcnn_set, points=512, views_per_sample=12, normalize="unit_sphere",
                        scale_range=None, shuffle=False)
    grid, obj = 8, round(S * 200 / 224)
    for sample in list(stream)[:4]:
        points, w2c = sample["points"], sample["world_to_camera"]
        queries = tap_queries(points[None].double(), w2c[None].double(), grid, S)[0].numpy()
        assert queries.shape == (12, grid * grid, 8)
        p, R = points.double().numpy(), w2c[:, :3, :3].double().numpy()
        for v in range(12):
            right, down, forward = R[v]  # OpenCV camera axes in the world frame
            plane = np.stack([p @ down, p @ right], 1)  # (row, column) coordinates of the cloud
            low, high = plane.min(0), plane.max(0)
            per_pixel = (high - low).max() / (obj - 3)
            centres = (np.arange(grid) + 0.5) * S / grid
            cells = np.stack(np.meshgrid(centres, centres, indexing="ij"), -1).reshape(-1, 2)
            expected = (low + high) / 2 + (cells - S / 2) * per_pixel
            point_grid = queries[v, :, :3]
            np.testing.assert_allclose(point_grid @ forward, 0, atol=1e-6)  # plane through 0
            got = np.stack([point_grid @ down, point_grid @ right], 1)
            assert np.abs(got - expected).max() <= 2.5 * per_pixel, v  # flooring: < 2.5 px
            up = np.array([down[1], right[1], -forward[1]])  # world y in (down, right, back)
            np.testing.assert_allclose(queries[v, :, 3:6], np.broadcast_to(up, (grid ** 2, 3)),
                                       atol=1e-6)
            np.testing.assert_allclose(queries[v, [0, grid - 1, -1], 6:], [[0, 0], [0, 1], [1, 1]])
    rotation = tap_view_rotation(w2c.double())
    np.testing.assert_allclose(torch.linalg.det(rotation).numpy(), 1.0, atol=1e-6)


def test_unit_sphere_samples_still_project_onto_the_masks(mvcnn_set):
    """Centred on the centroid, scaled to unit radius and by U[0.9, 1.1): the stream's cameras
    follow, so >= 98% of every view's points land on its mask (one pixel of tolerance)."""
    import zarr

    stored = zarr.open_group(mvcnn_set)["points"][:]
    assert np.linalg.norm(stored.mean(1), axis=1).max() > 0.05  # the centroid shift is real
    stream = ViewStream(mvcnn_set, points=1024, views_per_sample=12, normalize="unit_sphere",
                        scale_range=(0.9, 1.1), shuffle=False, seed=5)
    radii = []
    for sample in stream:
        points = sample["points"].numpy()
        np.testing.assert_allclose(points.mean(0), 0, atol=1e-5)
        radii.append(np.linalg.norm(points, axis=1).max())
        assert sample["features"][:, 3].min() == 0  # height above the sample's lowest point
        np.testing.assert_allclose(sample["features"][:, 3], points[:, 1] - points[:, 1].min())
        for v in range(12):
            uv, z = project(points, sample["K"][v].numpy(), sample["world_to_camera"][v].numpy())
            assert (z > 0).all()
            pix = np.round(uv).astype(int)
            inside = ((pix >= 0) & (pix < S)).all(1)
            hit = np.zeros(len(pix), bool)
            hit[inside] = _dilate(sample["masks"][v].numpy())[pix[inside, 1], pix[inside, 0]]
            assert hit.mean() >= 0.98, (int(sample["index"]), v, hit.mean())
    assert 0.9 <= min(radii) and max(radii) < 1.1 and max(radii) - min(radii) > 0.02


def test_holdout_split_is_seeded_and_the_stream_skips_held_out_objects(mvcnn_set):
    training, held_out = holdout_split(mvcnn_set, 0.25, seed=3)
    assert len(held_out) == 2 and len(training) == 6 and not set(training) & set(held_out)
    np.testing.assert_array_equal(holdout_split(mvcnn_set, 0.25, seed=3)[1], held_out)
    assert any(not np.array_equal(holdout_split(mvcnn_set, 0.25, seed=s)[1], held_out)
               for s in range(4, 10))
    stream = ViewStream(mvcnn_set, points=64, objects=training, seed=1)
    assert len(stream) == 6 and sorted(int(s["index"]) for s in stream) == list(training)
    with pytest.raises(ValueError, match="eval_fraction"):
        holdout_split(mvcnn_set, 1.0)


@pytest.mark.parametrize("factor", [8, 16, 32])
def test_generator_factor_sets_the_query_grid(factor):
    module = PhotographModule(32, dim=32, depth=1, image_size=S, factor=factor)
    assert module.grid == S // factor
    grid = torch.randn(2, 32, S // factor, S // factor)
    assert Generator(32, factor)(grid).shape == (2, 3, S, S)
    with pytest.raises(ValueError, match=f"multiple of {factor}"):
        PhotographModule(32, image_size=S + 4, factor=factor)
    with pytest.raises(ValueError, match="factor"):
        Generator(32, 4)
