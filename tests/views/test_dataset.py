"""The built dataset: every array of the format, camera geometry, images and points."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from helpers import IMAGE_SIZE, MESHES, POINTS, mask_hits, project

N, V, S, P = len(MESHES), 10, IMAGE_SIZE, POINTS
OV = ("object", "view")
#: The format of docs/format.md: array -> (dtype, shape, dimension names).
CONTRACT = {
    "rgb": ("uint8", (N, V, S, S, 3), OV + ("y", "x", "channel")),
    "mask": ("bool", (N, V, S, S), OV + ("y", "x")),
    "depth": ("float16", (N, V, S, S), OV + ("y", "x")),
    "cameras/R": ("float32", (N, V, 3, 3), OV + ("rotation_row", "rotation_col")),
    "cameras/T": ("float32", (N, V, 3), OV + ("xyz",)),
    "cameras/fov": ("float32", (N, V), OV),
    "cameras/K": ("float32", (N, V, 3, 3), OV + ("intrinsics_row", "intrinsics_col")),
    "cameras/world_to_camera": ("float32", (N, V, 4, 4), OV + ("extrinsics_row", "extrinsics_col")),
    "cameras/azimuth": ("float32", (N, V), OV),
    "cameras/elevation": ("float32", (N, V), OV),
    "cameras/distance": ("float32", (N, V), OV),
    "points": ("float32", (N, P, 3), ("object", "point", "xyz")),
    "normals": ("float32", (N, P, 3), ("object", "point", "xyz")),
    "normalization/center": ("float32", (N, 3), ("object", "xyz")),
    "normalization/scale": ("float32", (N,), ("object",)),
    "object_id": ("str", (N,), ("object",)),
    "category": ("str", (N,), ("object",)),
    "label": ("int32", (N,), ("object",)),
    "status": ("uint8", (N,), ("object",)),
    "error": ("str", (N,), ("object",)),
    "split": ("str", (N,), ("object",)),
}
ATTRIBUTES = ("format", "format_version", "categories", "layout", "image_size", "fov", "lights",
              "background", "backend", "points_per_object", "source", "seed", "tap3d_version",
              "created")


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_array_matches_contract(group, name):
    dtype, shape, dims = CONTRACT[name]
    array = group[name]
    assert array.shape == shape
    assert array.metadata.dimension_names == dims
    if dtype == "str":
        assert array[:].dtype.kind in "TUO"
    else:
        assert array.dtype == np.dtype(dtype)
    if "y" in dims:  # images: one object per chunk, shards of shard_size
        assert array.chunks[0] == 1 and array.shards[0] == 3
    else:  # cameras, points and per-object values: shard_size objects per chunk, unsharded
        assert array.chunks[0] == 3 and array.shards is None


def test_group_attributes(group, mesh_folder):
    attrs = dict(group.attrs)
    assert set(ATTRIBUTES) <= set(attrs)
    assert attrs["format"] == "tap3d.views" and attrs["format_version"] == 1
    assert attrs["layout"]["name"] == "clip2point"
    assert attrs["layout"]["elevation"] == [0, 90, 180, 270, 225, 225, 315, 315, 0, 0]
    assert attrs["layout"]["azimuth"] == [0, 0, 0, 0, -45, 45, -45, 45, -90, 90]
    assert attrs["image_size"] == S and attrs["points_per_object"] == P
    assert attrs["source"] == {"root": mesh_folder, "kind": "mesh_folder"}
    assert attrs["backend"] in ("pytorch3d", "embree") and attrs["backend"] in group.store.root.name
    np.testing.assert_array_equal(group["cameras/azimuth"][:], np.broadcast_to(
        np.array(attrs["layout"]["azimuth"], np.float32), (N, V)))


def test_opens_in_fresh_process_with_zarr_and_xarray(dataset):
    code = f"""
import json, zarr, xarray as xr
g = zarr.open_group({dataset!r}, mode="r")
ds = xr.open_zarr({dataset!r})
cams = xr.open_zarr({dataset!r}, group="cameras")
print(json.dumps({{"zarr": list(g["rgb"].shape), "sizes": dict(ds.sizes),
                  "coords": sorted(ds.coords), "R": list(cams["R"].dims),
                  "first": str(ds.object_id.values[0]),
                  "rgb_sum": int(ds.rgb.isel(object=0).sum().compute())}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["zarr"] == [N, V, S, S, 3]
    assert info["sizes"] == {"object": N, "view": V, "y": S, "x": S, "channel": 3,
                             "point": P, "xyz": 3}
    assert {"object_id", "category", "label"} <= set(info["coords"])
    assert info["R"] == ["object", "view", "rotation_row", "rotation_col"]
    assert info["first"] == "plain/bunny.obj"
    import zarr

    assert info["rgb_sum"] == int(zarr.open_group(dataset)["rgb"][0].astype(np.int64).sum())


def test_all_done_and_index(group):
    assert (group["status"][:] == 1).all()
    assert list(group["error"][:]) == [""] * N
    ids = list(group["object_id"][:])
    assert ids == sorted(ids, key=lambda i: (i.split("/")[0], i))
    assert list(group["category"][:]) == [i.split("/")[0] for i in ids]
    cats = group.attrs["categories"]
    assert cats == ["plain", "textured"]
    np.testing.assert_array_equal(group["label"][:], [cats.index(i.split("/")[0]) for i in ids])


def _neighbourhood(image: np.ndarray, u: np.ndarray, v: np.ndarray, fill: float) -> np.ndarray:
    """``(n, 9)`` values of the 3 x 3 pixels around integer pixels (u, v); ``fill`` outside."""
    padded = np.pad(image, 1, constant_values=fill)
    return np.stack([padded[v + dy, u + dx] for dy in range(3) for dx in range(3)], 1)


def test_points_project_onto_masks(group):
    K, w2c, mask, points = (group[n][:] for n in ("cameras/K", "cameras/world_to_camera",
                                                   "mask", "points"))
    for i in range(N):
        for v in range(V):
            hit, z = mask_hits(points[i], K[i, v], w2c[i, v], mask[i, v])
            assert (z > 0).all()
            assert hit.mean() >= 0.98, (i, v, hit.mean())


def test_pytorch3d_and_opencv_cameras_agree(group):
    from pytorch3d.renderer import FoVPerspectiveCameras

    R, T, fov, K, w2c, points = (group[n][:] for n in (
        "cameras/R", "cameras/T", "cameras/fov", "cameras/K", "cameras/world_to_camera",
        "points"))
    for i in range(N):
        cams = FoVPerspectiveCameras(R=torch.from_numpy(R[i]), T=torch.from_numpy(T[i]),
                                     fov=torch.from_numpy(fov[i]), degrees=True)
        pts = torch.from_numpy(points[i]).expand(V, P, 3)
        # PyTorch3D screen space puts the top-left pixel's corner at (0, 0), OpenCV its centre.
        screen = cams.transform_points_screen(pts, image_size=(S, S))[..., :2].numpy() - 0.5
        for v in range(V):
            uv, _ = project(points[i], K[i, v], w2c[i, v])
            assert np.abs(screen[v] - uv).max() < 0.5
        # Rotations are orthonormal and the OpenCV extrinsics are the PyTorch3D ones re-axed.
        np.testing.assert_allclose(R[i] @ R[i].transpose(0, 2, 1), np.broadcast_to(np.eye(3), (V, 3, 3)),
                                   atol=1e-5)
        np.testing.assert_allclose(w2c[i, :, :3, :3], np.diag([-1, -1, 1]) @ R[i].transpose(0, 2, 1),
                                   atol=1e-6)


def test_depth_matches_visible_points(group):
    """Depth at a visible point's pixel is its camera z (1% of distance), never behind a point."""
    import open3d as o3d

    from tap3d.render.meshes import load_mesh

    root = group.attrs["source"]["root"]
    K, w2c, depth, points, normals, dist = (group[n][:] for n in (
        "cameras/K", "cameras/world_to_camera", "depth", "points", "normals", "cameras/distance"))
    ids = group["object_id"][:]
    for i in range(N):
        mesh = load_mesh(os.path.join(root, ids[i]))
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(mesh.verts.numpy(), mesh.faces.numpy().astype(np.uint32))
        for v in range(V):
            tol = 0.01 * dist[i, v]
            uv, z = project(points[i], K[i, v], w2c[i, v])
            pix = np.round(uv).astype(int)
            keep = ((pix >= 0) & (pix < S)).all(1)
            pix, z, pts = pix[keep], z[keep], points[i][keep]
            d = depth[i, v].astype(np.float32)
            near = _neighbourhood(np.where(d > 0, d, np.inf), pix[:, 0], pix[:, 1], np.inf)
            # never behind: the nearest covered pixel around each point is not farther than it
            assert (near.min(1) <= z + tol).all(), (i, v)
            # visible points (an unobstructed ray from the camera centre, by Embree) match
            R_cv, t_cv = w2c[i, v, :3, :3], w2c[i, v, :3, 3]
            centre = -R_cv.T @ t_cv
            direction = pts - centre
            length = np.linalg.norm(direction, axis=1)
            rays = np.concatenate([np.broadcast_to(centre, pts.shape), direction / length[:, None]], 1)
            hit = scene.cast_rays(o3d.core.Tensor(rays.astype(np.float32)))["t_hit"].numpy()
            visible = hit >= length - 1e-3
            assert visible.sum() >= 100  # the check below is not vacuous
            # At 96 x 96 a pixel spans 0.024 object units at distance 2, so on surfaces seen at
            # grazing angles depth changes by more than the tolerance within one pixel: compare
            # where the surface is within 60 degrees of facing the camera.
            facing = np.abs((normals[i][keep] * direction).sum(1)) / length > 0.5
            check = visible & facing
            err = np.abs(near[check] - z[check, None]).min(1)
            assert (err <= tol).mean() >= 0.98, (i, v, (err <= tol).mean())


def test_rgb_white_outside_mask_and_masks_not_empty(group):
    rgb, mask = group["rgb"][:], group["mask"][:]
    assert (rgb[~mask] == 255).all()
    assert mask.reshape(N * V, -1).any(1).all()
    # the object is not drawn white: covered pixels are darker than the background on average
    assert rgb[mask].mean() < 240
    depth = group["depth"][:]
    assert (depth[~mask] == 0).all() and (depth[mask] > 0).all()


def test_points_and_normalization(group):
    from pytorch3d.io import load_obj

    from tap3d.render.meshes import load_mesh

    points, normals = group["points"][:], group["normals"][:]
    assert (np.linalg.norm(points, axis=-1) <= 1 + 1e-5).all()
    np.testing.assert_allclose(np.linalg.norm(normals, axis=-1), 1.0, atol=1e-4)
    root = group.attrs["source"]["root"]
    center, scale = group["normalization/center"][:], group["normalization/scale"][:]
    for i, object_id in enumerate(group["object_id"][:]):
        path = os.path.join(root, object_id)
        mesh = load_mesh(path)
        assert abs(np.linalg.norm(mesh.verts.numpy(), axis=1).max() - 1.0) < 1e-4
        bbox = mesh.verts.numpy()
        np.testing.assert_allclose(bbox.min(0) + bbox.max(0), 0.0, atol=1e-5)
        source = load_obj(path, load_textures=False)[0].numpy()
        np.testing.assert_allclose(mesh.verts.numpy() * scale[i] + center[i], source,
                                   atol=1e-5 * scale[i])
        # points spread over the surface: not all on one side
        assert np.linalg.norm(points[i].mean(0)) < 0.8


def test_textures_are_rendered(group):
    """The duck's texture is yellow; the table's wood is not the default grey."""
    ids = list(group["object_id"][:])
    duck = group["rgb"][ids.index("textured/duck.obj"), 0][group["mask"][ids.index("textured/duck.obj"), 0]]
    r, g, b = duck.astype(float).mean(0)
    assert r > 1.5 * b and g > 1.5 * b
    table = group["rgb"][ids.index("textured/table.obj"), 0][group["mask"][ids.index("textured/table.obj"), 0]]
    tr, tg, tb = table.astype(float).mean(0)
    assert tr > tb + 10
