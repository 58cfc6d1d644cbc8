"""Orthographic (parallel) views fitted per view: both backends, the stored cameras, the stream,
TAP's and the ray queries under them, and the authors' 12 poses."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import zarr

from tap3d.builder import build
from tap3d.buildconfig import preset_config
from tap3d.importers import tap_view_matrices
from tap3d.models.photograph import camera_rays, tap_queries
from tap3d.stream import StreamSettings, ViewStream
from tap3d.views.projection import TAP_FIT, fit_parallel

from helpers import MESHES, assert_points_on_masks, copy_obj, mask_hits, project

S = 64
NAMES = ("duck", "mug", "random005")


@pytest.fixture(scope="module")
def ortho_meshes(tmp_path_factory, pybullet_root):
    root = tmp_path_factory.mktemp("ortho-meshes")
    for name in NAMES:
        copy_obj(os.path.join(pybullet_root, MESHES[name]), str(root / "plain" / f"{name}.obj"))
    return str(root)


@pytest.fixture(scope="module", params=["embree", "pytorch3d"])
def ortho_set(request, tmp_path_factory, ortho_meshes):
    """The meshes as ``--preset tap`` builds them (12 views, orthographic, fitted to 200/224),
    64 x 64, on one backend."""
    out = str(tmp_path_factory.mktemp(f"ortho-{request.param}") / "tap.zarr")
    summary = build(ortho_meshes, out, preset_config("tap", image_size=S, points=2048,
                                                     backend=request.param, device="cpu"),
                    workers=0, progress=False)
    assert not summary.failed, summary.format()
    return out


def _arrays(store, *names):
    group = zarr.open_group(store, mode="r")
    return [group[n][:] for n in names]


def test_points_land_on_masks_and_views_are_fitted(ortho_set):
    K, w2c, mask, points, depth = _arrays(ortho_set, "cameras/K", "cameras/world_to_camera",
                                          "mask", "points", "depth")
    assert_points_on_masks(points, K, w2c, mask, "orthographic")
    obj = round(S * TAP_FIT)
    for i in range(len(NAMES)):
        for v in range(12):
            # fitted: the authors' obj - 3 pixels of extent (less what a thin tip's pixel
            # centres miss) along the longer side, the bounding box centred
            rows, cols = np.nonzero(mask[i, v])
            extent = max(rows.max() - rows.min(), cols.max() - cols.min())
            assert obj - 6 <= extent <= obj - 3, (i, v, extent)
            for low, high in ((rows.min(), rows.max()), (cols.min(), cols.max())):
                assert abs((low + high) / 2 - (S - 1) / 2) <= 2.5, (i, v)  # their floors
            # depth is the camera z of the first surface along each parallel ray: never
            # behind a point (the nearest covered depth around its pixel is not farther)
            uv, z = project(points[i], K[i, v], w2c[i, v], "orthographic")
            pix = np.clip(np.round(uv).astype(int), 0, S - 1) + 1
            d = np.pad(np.where(mask[i, v], depth[i, v].astype(np.float32), np.inf), 1,
                       constant_values=np.inf)
            near = np.min([d[pix[:, 1] + dy, pix[:, 0] + dx] for dy in (-1, 0, 1)
                           for dx in (-1, 0, 1)], axis=0)
            assert (near <= z + 0.02).all(), (i, v)


def test_stored_cameras_are_pytorch3d_orthographic_cameras(ortho_set):
    """``R``/``T`` with the NDC focal length and principal point of ``K`` give PyTorch3D's
    ``OrthographicCameras``, whose screen projection equals the stored matrices'."""
    from pytorch3d.renderer import OrthographicCameras

    R, T, K, w2c, points, fov = _arrays(ortho_set, "cameras/R", "cameras/T", "cameras/K",
                                        "cameras/world_to_camera", "points", "cameras/fov")
    attrs = dict(zarr.open_group(ortho_set, mode="r").attrs)
    assert attrs["projection"] == "orthographic" and attrs["format_version"] == 2
    assert attrs["fit"] == TAP_FIT and attrs["fov"] == 0 and (fov == 0).all()
    for i in range(len(NAMES)):
        focal = torch.from_numpy(2 * K[i, :, 0, 0] / S)[:, None].expand(12, 2)
        principal = torch.from_numpy(1 - (2 * K[i, :, :2, 2] + 1) / S)
        cams = OrthographicCameras(focal_length=focal, principal_point=principal,
                                   R=torch.from_numpy(R[i]), T=torch.from_numpy(T[i]))
        screen = cams.transform_points_screen(torch.from_numpy(points[i]).expand(12, -1, 3),
                                              image_size=(S, S))[..., :2].numpy() - 0.5
        for v in range(12):
            uv, _ = project(points[i], K[i, v], w2c[i, v], "orthographic")
            assert np.abs(screen[v] - uv).max() < 1e-3


def test_backends_agree(tmp_path, ortho_meshes):
    """Embree's parallel rays and PyTorch3D's orthographic rasterizer cover the same pixels."""
    masks = []
    for backend in ("embree", "pytorch3d"):
        out = str(tmp_path / f"{backend}.zarr")
        build(ortho_meshes, out, preset_config("tap", image_size=32, points=256, backend=backend,
                                               device="cpu"), workers=0, progress=False)
        masks.append(zarr.open_group(out, mode="r")["mask"][:])
    assert (masks[0] != masks[1]).mean() < 0.005


def test_verify_and_inspect_accept_it(ortho_set):
    from tap3d.views.verify import verify

    report = verify(ortho_set, progress=False)
    assert report.ok, report.format()


def test_a_perspective_dataset_is_still_format_1(tmp_path, ortho_meshes):
    """Perspective builds are written as format_version 1; one without the ``projection``
    attribute (written before it existed) streams as perspective."""
    out = str(tmp_path / "persp.zarr")
    build(ortho_meshes, out, preset_config("tap", projection="perspective", image_size=32,
                                           points=256), workers=0, progress=False)
    group = zarr.open_group(out, mode="r+")
    assert group.attrs["format_version"] == 1 and group.attrs["fit"] is None
    assert group.attrs["fov"] == 60 and (group["cameras/fov"][:] == 60).all()
    del group.attrs["projection"], group.attrs["fit"]
    # a build written before the attributes existed resumes (nothing pending) and streams as
    # perspective
    summary = build(ortho_meshes, out, preset_config("tap", projection="perspective",
                                                     image_size=32, points=256),
                    workers=0, progress=False)
    assert not summary.failed and "projection" not in zarr.open_group(out, mode="r").attrs
    stream = ViewStream(out, StreamSettings(points=256, shuffle=False))
    assert stream.projection == "perspective"
    sample = next(iter(stream))
    hit, _ = mask_hits(sample["points"].numpy(), sample["K"][0].numpy(),
                       sample["world_to_camera"][0].numpy(), sample["masks"][0].numpy())
    assert hit.mean() >= 0.98


def _grid_pixels(grid):
    centres = (np.arange(grid) + 0.5) * S / grid - 0.5  # OpenCV pixel of each cell centre
    v, u = np.meshgrid(centres, centres, indexing="ij")
    return np.stack([u.reshape(-1), v.reshape(-1)], 1)


def test_tap_query_grid_lands_on_its_cells(ortho_set):
    """Under the stored (scaled, re-centred) cameras, the point grid of ``query: tap`` projects
    onto the centres of the cells it stands for, lies on the view plane through the origin,
    and is close to the authors' own fit to the input cloud (from the points, not the mesh)."""
    stream = ViewStream(ortho_set, StreamSettings(points=1024, views_per_sample=12,
                                                  normalize="unit_sphere", scale_range=(0.9, 1.1),
                                                  shuffle=False))
    grid = 8
    expected = _grid_pixels(grid)
    for sample in stream:
        points, K, w2c = sample["points"], sample["K"], sample["world_to_camera"]
        stored = tap_queries(points[None].double(), w2c[None].double(), grid, S,
                             K=K[None].double())[0].numpy()
        fitted = tap_queries(points[None].double(), w2c[None].double(), grid, S)[0].numpy()
        for v in range(12):
            uv, _ = project(stored[v, :, :3], K[v].numpy(), w2c[v].numpy(), "orthographic")
            np.testing.assert_allclose(uv, expected, atol=1e-3)
            forward = w2c[v, 2, :3].double().numpy()
            np.testing.assert_allclose(stored[v, :, :3] @ forward, 0, atol=1e-5)
            uv, _ = project(fitted[v, :, :3], K[v].numpy(), w2c[v].numpy(), "orthographic")
            assert np.abs(uv - expected).max() < 0.1 * S, v  # the mesh's fit vs the cloud's
        np.testing.assert_allclose(stored[..., 3:], fitted[..., 3:])


def test_the_photograph_module_takes_the_projection(ortho_set):
    """A module built for an orthographic dataset embeds the stored-camera constructions."""
    from tap3d.models.photograph import PhotographModule

    sample = next(iter(ViewStream(ortho_set, StreamSettings(points=256, views_per_sample=2,
                                                            shuffle=False))))
    K, w2c, points = sample["K"][None], sample["world_to_camera"][None], sample["points"][None]
    for query, tokens in (("tap", tap_queries(points, w2c, 8, S, K=K).reshape(2, -1, 8)),
                          ("ray", None)):
        module = PhotographModule(16, dim=16, depth=1, heads=2, image_size=S, factor=8,
                                  query=query, projection="orthographic", ray_frequencies=0)
        if tokens is None:
            tokens = camera_rays(K, w2c, 8, S, "orthographic").reshape(2, -1, 8)
        torch.testing.assert_close(module.queries(K, w2c, points), module.query_embed(tokens))
    with pytest.raises(ValueError, match="projection must be one of"):
        PhotographModule(16, image_size=S, factor=8, projection="fisheye")


def test_ray_queries_are_parallel_rays_through_the_cells(ortho_set):
    stream = ViewStream(ortho_set, StreamSettings(points=512, views_per_sample=12, shuffle=False))
    sample = next(iter(stream))
    K, w2c = sample["K"].double(), sample["world_to_camera"].double()
    rays = camera_rays(K, w2c, 4, S, "orthographic").numpy()
    expected = _grid_pixels(4)
    for v in range(12):
        direction, moment = rays[v, :, :3], rays[v, :, 3:6]
        forward = w2c[v, 2, :3].numpy()
        np.testing.assert_allclose(direction, np.broadcast_to(forward, direction.shape),
                                   atol=1e-6)
        # the point of each ray nearest the origin, d x m, and one farther along it both
        # project onto the cell centre
        nearest = np.cross(direction, moment)
        for point in (nearest, nearest + 0.7 * direction):
            uv, _ = project(point, K[v].numpy(), w2c[v].numpy(), "orthographic")
            np.testing.assert_allclose(uv, expected, atol=1e-4)
    perspective = camera_rays(K, w2c, 4, S).numpy()
    assert np.abs(perspective[..., :3] - rays[..., :3]).max() > 0.01  # not the same rays


def test_fit_parallel_is_the_authors_rule():
    """Hand-computed ``cal_scale_bias`` of a small cloud: range 2 along x, obj 200 of 224."""
    xy = torch.tensor([[[-1.0, -0.5], [1.0, 0.25], [0.0, 0.5]]], dtype=torch.float64)
    focal, centre = fit_parallel(xy, 224, TAP_FIT)
    unit = 2.0 / 197  # object units per pixel
    np.testing.assert_allclose(focal.numpy(), [1 / unit])
    # cells floor((xy - min) / unit): x 0..197 -> middle 98; y 0..98 -> middle 49
    # pixel (continuous) = (xy - min) / unit + 100 - middle - 1 + 12; OpenCV = that - 0.5
    np.testing.assert_allclose(centre.numpy(), [[1 / unit + 100 - 98 - 1 + 12 - 0.5,
                                                 0.5 / unit + 100 - 49 - 1 + 12 - 0.5]])
    with pytest.raises(ValueError, match="fit must"):
        fit_parallel(xy, 224, 0.01)


def test_without_a_fit_the_unit_sphere_fills_the_frame():
    """``fit`` None: every view maps object units to ``S / 2`` pixels around the image centre,
    so a sphere of radius 1 touches the frame's edges."""
    from tap3d.render.cameras import make_layout, make_orthographic_cameras, opencv_cameras
    from tap3d.views.projection import orthographic_intrinsics

    layout = make_layout("sphere", 5)
    cams, focal, centre = make_orthographic_cameras(layout, S)
    np.testing.assert_allclose(focal, S / 2)
    K = orthographic_intrinsics(focal, centre)
    _, w2c = opencv_cameras(cams.R.numpy(), cams.T.numpy(), 60.0, S)
    sphere = np.random.default_rng(0).normal(size=(4000, 3))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    for v in range(5):
        uv, z = project(sphere, K[v], w2c[v], "orthographic")
        np.testing.assert_allclose(uv.min(0), -0.5, atol=0.1)
        np.testing.assert_allclose(uv.max(0), S - 0.5, atol=0.1)
        assert z.min() > 0.9  # distance 2 from the origin: the sphere is in front
    with pytest.raises(ValueError, match="vertices"):
        make_orthographic_cameras(layout, S, fit=0.9)


def test_the_authors_views_are_the_mvcnn_layout():
    """Their ``rotate_theta_phi`` views (z-up, points reordered [2, 0, 1]) are tap3d's mvcnn
    layout (elevation 30, azimuth 30 v, y-up) with the same image axes: rows down, columns
    right, the third axis towards the camera."""
    from tap3d.render.cameras import make_cameras, make_layout, opencv_cameras

    cams = make_cameras(make_layout("mvcnn", 12))
    _, w2c = opencv_cameras(cams.R.numpy(), cams.T.numpy(), 60.0, S)
    M = tap_view_matrices()
    reorder = np.eye(3)[[2, 0, 1]]  # p_tap = reorder @ p_shapenet
    for v in range(12):
        right, down, forward = w2c[v, :3, :3]  # tap3d's camera axes, y-up world
        np.testing.assert_allclose(M[v] @ reorder, np.stack([down, right, -forward]), atol=1e-6)
        towards = M[v][2] @ reorder  # the camera direction in the y-up world
        np.testing.assert_allclose(np.degrees(np.arcsin(towards[1])), 30.0, atol=1e-4)
        np.testing.assert_allclose(np.degrees(np.arctan2(towards[0], towards[2])) % 360,
                                   30.0 * v, atol=1e-4)
