"""``tap-cli import-tap``: the TAP authors' ShapeNet55 tree (PLY points + MVCNN-style JPEG views)
written from real renders, imported, checked, streamed and trained on; bad files."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import zarr

from tap3d.importers import TapDataError, discover_tap, import_tap
from tap3d.stream import StreamSettings, ViewStream

from helpers import (ROOT, assert_points_on_masks, mask_hits, tap_cli,
                     write_tap_tree)

S = 64


@pytest.fixture(scope="module")
def tree(tmp_path_factory, pybullet_root):
    root = str(tmp_path_factory.mktemp("ShapeNet55"))
    return root, write_tap_tree(root, pybullet_root, size=S)


@pytest.fixture(scope="module")
def imported(tree, tmp_path_factory):
    root, _ = tree
    out = str(tmp_path_factory.mktemp("imported") / "tap.zarr")
    run = tap_cli("import-tap", root, "-o", out, "--shard-size", "3", "--quiet")
    assert run.returncode == 0, run.stderr
    assert "4 objects, 4 done, 0 failed" in run.stdout
    return out


def test_arrays_split_and_order(tree, imported):
    root, written = tree
    g = zarr.open_group(imported, mode="r")
    ids = list(g["object_id"][:])
    # their loader's order: sorted listings of train, val, test
    assert ids == ["train/model_000000", "train/model_000001", "val/model_000002",
                   "test/model_000003"]
    assert list(g["split"][:]) == ["train", "train", "val", "test"]
    assert (g["status"][:] == 1).all() and (g["label"][:] == -1).all()
    attrs = dict(g.attrs)
    assert attrs["projection"] == "orthographic" and attrs["format_version"] == 2
    assert attrs["up_axis"] == 2 and attrs["views"] == 12 and attrs["image_size"] == S
    assert g["rgb"].shape == (4, 12, S, S, 3) and g["points"].shape == (4, 1024, 3)
    for i, object_id in enumerate(ids):
        source = written[object_id]["source"]
        points = g["points"][i]
        # their order and normalization: [2, 0, 1], centred on the centroid, unit radius
        theirs = source[:, [2, 0, 1]]
        expected = (theirs - theirs.mean(0)) / np.linalg.norm(theirs - theirs.mean(0), axis=1).max()
        np.testing.assert_allclose(points, expected, atol=1e-5)
        np.testing.assert_allclose(points * g["normalization/scale"][i]
                                   + g["normalization/center"][i], theirs, atol=1e-4)
        # JPEG decoded as is; mask by their rule (any channel below 255) on the decoded pixels
        rgb, mask = g["rgb"][i], g["mask"][i]
        np.testing.assert_array_equal(mask, (rgb < 255).any(-1))
        assert np.abs(rgb.astype(int) - written[object_id]["rgb"]).mean() < 3
        # the rule keeps every rendered pixel (grey <= 205) and adds JPEG ringing along the
        # silhouette, within the 8 x 8 JPEG blocks it crosses
        from scipy.ndimage import binary_dilation

        rendered = written[object_id]["mask"]
        assert mask[rendered].mean() > 0.999
        near = binary_dilation(rendered, np.ones((1, 15, 15), bool))
        assert near[mask].mean() > 0.99, object_id


def test_points_land_on_masks_through_the_stored_cameras(imported):
    K, w2c, mask, points, elevation, azimuth = (
        zarr.open_group(imported, mode="r")[n][:] for n in (
            "cameras/K", "cameras/world_to_camera", "mask", "points", "cameras/elevation",
            "cameras/azimuth"))
    np.testing.assert_allclose(elevation, 30.0, atol=1e-5)
    np.testing.assert_allclose(azimuth, np.broadcast_to(30.0 * np.arange(12), (4, 12)))
    assert_points_on_masks(points, K, w2c, mask, "orthographic")


def test_verify_and_stream(imported):
    from tap3d.views.verify import verify

    assert verify(imported).ok
    stream = ViewStream(imported, StreamSettings(points=1024, sampling="fixed", up_axis=2,
                                                 shuffle=False, scale_range=(0.9, 1.1),
                                                 normalize="unit_sphere"))
    assert stream.projection == "orthographic"
    for sample in stream:
        for v in range(6):
            hit, _ = mask_hits(sample["points"].numpy(), sample["K"][v].numpy(),
                               sample["world_to_camera"][v].numpy(), sample["masks"][v].numpy(),
                               "orthographic")
            assert hit.mean() >= 0.98


@pytest.mark.slow
def test_anisotropic_scaling_refits_every_view_as_the_authors_do(imported):
    """``anisotropic``: the points scaled per axis, then centred at unit radius; each view's K
    is the authors' fit of the sample's own projection (``fit_parallel``), the images stay."""
    import torch

    from tap3d.views.projection import TAP_FIT, fit_parallel

    plain = ViewStream(imported, StreamSettings(points=1024, sampling="fixed", shuffle=False,
                                                scale_range=None, normalize="unit_sphere"))
    scaled = ViewStream(imported, StreamSettings(points=1024, sampling="fixed", shuffle=False,
                                                 scale_range=(0.6, 1.4), normalize="unit_sphere",
                                                 anisotropic=True))
    for a, b in zip(plain, scaled):
        assert torch.equal(a["images"], b["images"]) and torch.equal(a["masks"], b["masks"])
        xyz = b["points"].double()
        assert abs(xyz.norm(dim=1).max().item() - 1) < 1e-5
        ratios = (xyz.amax(0) - xyz.amin(0)) / (a["points"].double().amax(0) -
                                                 a["points"].double().amin(0))
        assert ratios.max() / ratios.min() > 1.02  # the axes were scaled differently
        w2c = b["world_to_camera"].double()
        camera = xyz @ w2c[:, :3, :3].transpose(1, 2) + w2c[:, None, :3, 3]
        focal, centre = fit_parallel(camera[..., :2], S, TAP_FIT)
        torch.testing.assert_close(b["K"][:, 0, 0].double(), focal, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(b["K"][:, :2, 2].double(), centre, rtol=1e-5, atol=1e-3)
        # with every factor 1 the refit is the stored fit, which follows the normalization
    same = ViewStream(imported, StreamSettings(points=1024, sampling="fixed", shuffle=False,
                                               scale_range=(1.0, 1.0), normalize="unit_sphere",
                                               anisotropic=True))
    for a, b in zip(plain, same):
        torch.testing.assert_close(a["points"], b["points"])
        # the rule floors to whole pixels: the same fit within one pixel of offset
        assert (a["K"] - b["K"]).abs().max() <= 1.0 + 1e-4


def test_anisotropic_scaling_is_refused_without_a_fitted_parallel_projection(imported,
                                                                              tmp_path):
    copy = str(tmp_path / "no-fit.zarr")
    shutil.copytree(imported, copy)
    del zarr.open_group(copy, mode="r+").attrs["fit"]
    with pytest.raises(ValueError, match="anisotropic scaling needs"):
        ViewStream(copy, StreamSettings(points=64, normalize="unit_sphere", anisotropic=True))
    with pytest.raises(ValueError, match="anisotropic scaling needs"):
        ViewStream(imported, StreamSettings(points=64, normalize="none", anisotropic=True))


def test_it_trains(imported, tmp_path):
    """``tap-cli train`` on the imported dataset with ``query: tap`` (a few CPU steps)."""
    run = tap_cli("train", imported, "-o", str(tmp_path / "run"), "--config",
                  os.path.join(ROOT, "configs", "demo-cpu.yaml"),
                  "--max-steps", "2", "--batch-size", "2", "--query", "tap", "--device", "cpu")
    assert run.returncode == 0, run.stderr[-3000:]
    from tap3d.train import load_model

    model, config = load_model(str(tmp_path / "run"))
    assert model.photograph.projection == "orthographic"
    # demo-cpu.yaml names no up axis: the imported dataset's z-up (their gravity_dim 2) is used
    assert config.up_axis == 2 and model.photograph.up_axis == 2


def test_up_axis_comes_from_the_dataset_unless_the_config_names_one(imported):
    import dataclasses

    from tap3d.train import load_config
    from tap3d.train.config import resolve_up_axis
    from tap3d.views.schema import FormatError, open_views

    attrs = open_views(imported).attrs
    assert resolve_up_axis(load_config(None), attrs).up_axis == 2
    assert resolve_up_axis(load_config(None), {}).up_axis == 1  # a tap3d build: y-up
    assert resolve_up_axis(load_config(None, up_axis=0), attrs).up_axis == 0
    with pytest.raises(ValueError, match="up_axis must be"):
        resolve_up_axis(load_config(None, up_axis=3), attrs)
    with pytest.raises(FormatError, match="up_axis attribute"):
        resolve_up_axis(dataclasses.replace(load_config(None)), {"up_axis": 5})
    assert ViewStream(imported, StreamSettings(points=64)).up_axis == 2


def _copy(tree, tmp_path):
    root = str(tmp_path / "ShapeNet55")
    shutil.copytree(tree[0], root)
    return root


def test_bad_files_are_named_or_skipped(tree, tmp_path):
    import open3d as o3d

    root = _copy(tree, tmp_path)
    missing = os.path.join(root, "shapenet55v1", "train", "model_000001_007.jpg")
    os.remove(missing)
    broken = os.path.join(root, "shapenet55v1", "val", "model_000002_003.jpg")
    with open(broken, "wb") as f:
        f.write(b"\xff\xd8 not a jpeg")
    small = os.path.join(root, "pointclouds", "test", "model_000003.ply")
    cloud = o3d.io.read_point_cloud(small)
    o3d.io.write_point_cloud(small, cloud.select_by_index(list(range(1000))))
    with pytest.raises(TapDataError, match="model_000001_007.jpg: missing view"):
        import_tap(root, str(tmp_path / "a.zarr"), progress=False)
    run = tap_cli("import-tap", root, "-o", str(tmp_path / "b.zarr"), "--quiet")
    assert run.returncode != 0 and "model_000001_007.jpg: missing view" in run.stderr
    report = import_tap(root, str(tmp_path / "c.zarr"), skip_bad=True, shard_size=2,
                        progress=False)
    assert report.done == 1 and len(report.failed) == 3
    g = zarr.open_group(str(tmp_path / "c.zarr"), mode="r")
    np.testing.assert_array_equal(g["status"][:], [1, 2, 2, 2])
    errors = list(g["error"][:])
    assert errors[0] == "" and "model_000001_007.jpg: missing view" in errors[1]
    assert "model_000002_003.jpg: unreadable image" in errors[2]
    assert "model_000003.ply: 1000 points, expected 1024" in errors[3]
    stream = ViewStream(str(tmp_path / "c.zarr"), StreamSettings(points=512, shuffle=False))
    assert len(stream) == 1 and len(list(stream)) == 1


def test_an_existing_output_is_kept(tree, imported):
    run = tap_cli("import-tap", tree[0], "-o", imported, "--quiet")
    assert run.returncode != 0 and "exists" in run.stderr and imported in run.stderr
    assert zarr.open_group(imported, mode="r")["status"][:].tolist() == [1, 1, 1, 1]


def test_empty_or_wrong_tree(tmp_path):
    with pytest.raises(TapDataError, match="no train/val/test folders"):
        discover_tap(str(tmp_path))
    with pytest.raises(TapDataError, match="points must be one of"):
        discover_tap(str(tmp_path), points=4096)
