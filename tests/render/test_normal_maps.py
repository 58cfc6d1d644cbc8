"""Normal maps (``--normal-maps``): camera-space unit normals of the visible surface, from both
rasterizer backends, against normals derived from each view's depth map."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from tap3d.views.verify import verify


@pytest.fixture(scope="module", params=["pytorch3d", "embree"])
def with_normals(request, make_dataset):
    """The mesh folder, 6 views of 64 x 64 on a Fibonacci sphere (oblique to the meshes'
    axis-aligned faces, whose depth then varies across them), with normal maps, per rasterizer
    backend."""
    return make_dataset(f"normals-{request.param}", views=6, layout="sphere", image_size=64,
                        points=512, shard_size=4, backend=request.param, normal_maps=True)


def _depth_normals(depth: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera-space points ``(S, S, 3)`` back-projected from ``depth`` and the normals of the
    surface they form (central differences, turned towards the camera)."""
    S = depth.shape[0]
    v, u = np.mgrid[0:S, 0:S].astype(np.float64)
    z = depth.astype(np.float64)
    points = np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], -1)
    du = points[1:-1, 2:] - points[1:-1, :-2]
    dv = points[2:, 1:-1] - points[:-2, 1:-1]
    normal = np.zeros_like(points)
    normal[1:-1, 1:-1] = np.cross(du, dv)
    normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-12)
    away = (normal * points).sum(-1) > 0
    normal[away] *= -1
    return points, normal


def _interior(mask: np.ndarray, margin: int = 2) -> np.ndarray:
    """Pixels whose ``(2 margin + 1)^2`` neighbourhood is covered."""
    S = mask.shape[0]
    padded = np.pad(mask, margin)
    return np.all([padded[dy:dy + S, dx:dx + S] for dy in range(2 * margin + 1)
                   for dx in range(2 * margin + 1)], axis=0)


def test_normal_maps_agree_with_the_depth_and_face_the_camera(with_normals):
    g = zarr.open_group(with_normals, mode="r")
    normal = g["normal"][:].astype(np.float32)
    mask, depth, K = g["mask"][:], g["depth"][:], g["cameras/K"][:]
    assert normal.shape == mask.shape + (3,) and g["normal"].dtype == np.float16
    length = np.linalg.norm(normal, axis=-1)
    np.testing.assert_allclose(length[mask], 1, atol=2e-3)
    assert not normal[~mask].any()  # 0 off the object
    angles, facing = [], []
    for i in range(len(mask)):
        for view in range(mask.shape[1]):
            points, derived = _depth_normals(depth[i, view], K[i, view])
            n = normal[i, view]
            facing.append((n * points).sum(-1)[mask[i, view]] < 0)
            # inside the silhouette (2 px from its edge): away from depth discontinuities,
            # where the depth's central differences see one surface (mostly flat faces)
            chosen = _interior(mask[i, view])
            cos = np.clip((n[chosen] * derived[chosen]).sum(-1), -1, 1)
            angles.append(np.degrees(np.arccos(cos)))
    angles = np.concatenate(angles)
    assert len(angles) > 2000, len(angles)
    assert np.median(angles) < 5, np.median(angles)
    assert np.concatenate(facing).mean() > 0.99  # towards the camera


def test_verify_and_the_reader_see_the_normal_array(with_normals):
    from tap3d.views import open_dataset
    from tap3d.views.schema import array_specs

    report = verify(with_normals)
    assert report.ok, report.format()
    assert report.arrays_checked == len(array_specs(8, 6, 64, 512, optional=("normal",)))
    ds = open_dataset(with_normals)
    assert ds["normal"].dims == ("object", "view", "y", "x", "xyz")
    assert zarr.open_group(with_normals).attrs["normal_maps"] is True


def test_the_dataset_sheet_shows_the_normal_maps(with_normals, tmp_path):
    from tap3d.views.pictures import dataset_sheet

    sheet = dataset_sheet(with_normals, str(tmp_path / "sheet.png"), objects=2)
    names = [name for name, _ in sheet["panels"]]
    assert sum(name.split("/")[-2] == "normal" for name in names if name.count("/") >= 2) == 12
