"""View layouts and camera conversions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tap3d.render.cameras import make_cameras, make_layout, opencv_cameras, resolve_layout_name


@pytest.mark.parametrize("views, expected", [(10, "clip2point"), (6, "orthogonal"),
                                             (12, "mvcnn"), (7, "sphere"), (1, "sphere")])
def test_auto_layout(views, expected):
    assert resolve_layout_name("auto", views) == expected


def test_fixed_layout_with_wrong_count_is_an_error():
    with pytest.raises(ValueError, match="10 views"):
        resolve_layout_name("clip2point", 8)
    with pytest.raises(ValueError, match="unknown layout"):
        resolve_layout_name("spiral", 8)


def _centres(layout):
    cams = make_cameras(layout)
    return cams.get_camera_center().numpy()


def test_clip2point_and_orthogonal_directions():
    """front +Z, top +Y, back -Z, bottom -Y, left/right on -X/+X, as the CLIP2Point views."""
    c = _centres(make_layout("clip2point", 10)) / 2.0
    expected = {0: (0, 0, 1), 1: (0, 1, 0), 2: (0, 0, -1), 3: (0, -1, 0), 8: (-1, 0, 0), 9: (1, 0, 0)}
    for i, direction in expected.items():
        np.testing.assert_allclose(c[i], direction, atol=1e-5)
    # The corner views as docs/format.md lists them (elevation 225 and 315) all look from 45 degrees
    # below the equator: 225 from behind (-Z), 315 from the front (+Z), azimuth -45/45 to the sides.
    np.testing.assert_allclose(c[4:8, 1], -np.sqrt(0.5), atol=1e-5)
    assert (c[4:6, 2] < 0).all() and (c[6:8, 2] > 0).all()
    assert c[4, 0] * c[5, 0] < 0 and c[6, 0] * c[7, 0] < 0
    o = _centres(make_layout("orthogonal", 6)) / 2.0
    np.testing.assert_allclose(o, c[[0, 2, 8, 9, 1, 3]], atol=1e-6)


@pytest.mark.parametrize("layout, views", [("sphere", 20), ("random", 20), ("mvcnn", 12)])
def test_layouts_spread_over_the_sphere(layout, views):
    lay = make_layout(layout, views, rng=np.random.default_rng(0))
    c = _centres(lay)
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), lay.distance, rtol=1e-5)
    d = c / np.linalg.norm(c, axis=1, keepdims=True)
    gram = d @ d.T - 2 * np.eye(views)
    assert gram.max() < (0.999 if layout == "random" else 0.99)  # no two views coincide
    if layout != "mvcnn":
        assert np.abs(d.mean(0)).max() < 0.35  # not all on one side


def test_opencv_matches_pytorch3d_projection():
    lay = make_layout("sphere", 8)
    cams = make_cameras(lay, fov=45.0)
    K, w2c = opencv_cameras(cams.R.numpy(), cams.T.numpy(), 45.0, 100)
    points = np.random.default_rng(1).uniform(-0.7, 0.7, (500, 3)).astype(np.float32)
    screen = cams.transform_points_screen(torch.from_numpy(points).expand(8, 500, 3),
                                          image_size=(100, 100))[..., :2].numpy()
    for v in range(8):
        cam = points @ w2c[v, :3, :3].T + w2c[v, :3, 3]
        uv = (cam @ K[v].T)[:, :2] / cam[:, 2:]
        np.testing.assert_allclose(uv, screen[v] - 0.5, atol=1e-3)
    # a valid intrinsic matrix and rigid extrinsics
    assert (K[:, 0, 0] > 0).all() and np.allclose(K[:, 2], [0, 0, 1])
    np.testing.assert_allclose(np.linalg.det(w2c[:, :3, :3]), 1.0, atol=1e-5)
