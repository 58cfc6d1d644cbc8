"""The Embree backend agrees with PyTorch3D's rasterizer on real meshes (issue: fast CPU builds)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from tap3d.render.cameras import make_cameras, make_layout
from tap3d.render.meshes import load_mesh
from tap3d.render.covered import view_batches
from tap3d.render.rasterize import EmbreeRasterizer, PyTorch3DRasterizer, make_rasterizer
from tap3d.render.shade import ViewRenderer

S = 96


@pytest.fixture(scope="module", params=[
    "duck.obj",                    # TexturesUV (one image)
    "textured_sphere_smooth.obj",  # texture atlas (wrapped UVs)
    "toys/shape_sorter.obj",       # material colour
    "teddy2_VHACD_CHs.obj",        # no material, overlapping convex parts
    "random_urdfs/000/000.obj",
])
def rendered(request, pybullet_root):
    mesh = load_mesh(os.path.join(pybullet_root, request.param))
    cameras = make_cameras(make_layout("sphere", 8))
    batch = mesh.to_meshes().extend(8)
    out = {"mesh": mesh, "cameras": cameras, "batch": batch}
    for name, rasterizer in (("pytorch3d", PyTorch3DRasterizer(S)), ("embree", EmbreeRasterizer(S))):
        out[name] = rasterizer(batch, cameras)
        out[name + "_views"] = ViewRenderer(rasterizer)(mesh, cameras)
    return out


def test_pix_to_face_and_masks_agree(rendered):
    a, e = rendered["pytorch3d"], rendered["embree"]
    assert a.pix_to_face.shape == e.pix_to_face.shape == (8, S, S, 1)
    assert e.pix_to_face.dtype == torch.int64
    assert (a.pix_to_face == e.pix_to_face).float().mean() >= 0.995
    masks = ((a.pix_to_face >= 0) != (e.pix_to_face >= 0)).float().mean()
    assert masks <= 0.005
    # packed indexing: view i's faces are offset by i * F
    F = rendered["mesh"].num_faces
    hit = e.pix_to_face[..., 0]
    for i in range(8):
        faces = hit[i][hit[i] >= 0]
        assert faces.numel() > 0 and (faces // F == i).all()


def _exact_z(rendered, fragments):
    """View z of the ray through each pixel centre and the plane of its face, in float64."""
    cameras, batch = rendered["cameras"], rendered["batch"]
    origin, direction = EmbreeRasterizer(S)._rays(cameras)
    verts = batch.verts_packed().double()
    tri = verts[batch.faces_packed()[fragments.pix_to_face.reshape(8, -1).clamp_min(0)]]
    normal = torch.cross(tri[..., 1, :] - tri[..., 0, :], tri[..., 2, :] - tri[..., 0, :], dim=-1)
    o, d = origin.double(), direction.double()
    t = ((tri[..., 0, :] - o) * normal).sum(-1) / (d * normal).sum(-1)
    point = (o + t[..., None] * d).float()
    return cameras.get_world_to_view_transform().transform_points(point)[..., 2].double()


def test_zbuf_agrees_and_is_exact(rendered):
    a, e = rendered["pytorch3d"], rendered["embree"]
    same = ((a.pix_to_face == e.pix_to_face) & (a.pix_to_face >= 0)).reshape(8, -1)
    za, ze = a.zbuf.reshape(8, -1).double(), e.zbuf.reshape(8, -1).double()
    relative = ((za - ze).abs() / za.abs())[same]
    assert (relative <= 1e-4).float().mean() >= 0.995
    # Embree's depth is the exact ray-plane depth everywhere; PyTorch3D's interpolation in NDC
    # loses precision on a few faces seen edge-on, which is where the two differ.
    exact = _exact_z(rendered, e).reshape(8, -1)
    assert (((ze - exact).abs() / exact.abs())[same] <= 1e-4).all()


def test_bary_coords_and_dists(rendered):
    a, e = rendered["pytorch3d"], rendered["embree"]
    same = (a.pix_to_face == e.pix_to_face) & (a.pix_to_face >= 0)
    bary = e.bary_coords[same]
    assert torch.allclose(bary.sum(-1), torch.ones(()), atol=1e-5)
    assert (bary >= -1e-5).all()
    # PyTorch3D computes barycentrics in float32 NDC, Embree in world space: close, not equal
    diff = (a.bary_coords[same] - bary).abs().max(-1).values
    assert diff.mean() <= 1e-3 and (diff <= 1e-2).float().mean() >= 0.999
    # dists: minus the squared NDC distance to the nearest edge, like PyTorch3D's
    assert ((a.dists[same] - e.dists[same]).abs() <= 1e-5).all()
    assert (e.dists[~same & (e.pix_to_face >= 0)] <= 0).all()


def test_shaded_views_agree(rendered):
    a, e = rendered["pytorch3d_views"], rendered["embree_views"]
    assert np.abs(a.rgb.astype(float) - e.rgb.astype(float)).mean() < 1.0
    assert (a.mask != e.mask).mean() <= 0.005
    both = a.mask & e.mask
    assert (np.abs(a.depth - e.depth)[both] <= 1e-3 * a.depth[both]).mean() >= 0.999


def test_covered_pixels_are_those_of_the_fragments(rendered):
    """Every backend's ``covered`` (what the renderer reads) holds the covered pixels of its own
    ``rasterize_views``, in ascending order, with the documented dtypes."""
    mesh, cameras = rendered["mesh"], rendered["cameras"]
    for rasterizer in (PyTorch3DRasterizer(S), EmbreeRasterizer(S)):
        covered = rasterizer.covered(mesh.verts, mesh.faces, cameras)
        fragments = rasterizer.rasterize_views(mesh.verts, mesh.faces, cameras)
        pix = fragments.pix_to_face[..., 0].numpy().reshape(-1)
        np.testing.assert_array_equal(covered.pixel, np.flatnonzero(pix >= 0))
        np.testing.assert_array_equal(covered.face, pix[covered.pixel])
        np.testing.assert_array_equal(
            covered.bary, fragments.bary_coords[..., 0, :].numpy().reshape(-1, 3)[covered.pixel])
        np.testing.assert_array_equal(
            covered.depth, fragments.zbuf[..., 0].numpy().reshape(-1)[covered.pixel])
        assert (covered.pixel.dtype, covered.face.dtype) == (np.int64, np.int64)
        assert (covered.bary.dtype, covered.depth.dtype) == (np.float32, np.float32)
        # Embree knows its rays; PyTorch3D's perspective cameras give no direction
        if rasterizer.name == "embree":
            assert covered.direction.shape == (len(covered.pixel), 3)
            np.testing.assert_allclose(np.linalg.norm(covered.direction, axis=1), 1, atol=1e-5)
        else:
            assert covered.direction is None


def test_view_batches():
    assert view_batches(10, 300_000, 2_000_000) == [range(0, 6), range(6, 10)]
    assert view_batches(10, 300_000, None) == [range(0, 10)]
    assert view_batches(3, 5_000_000, 2_000_000) == [range(0, 1), range(1, 2), range(2, 3)]
    assert view_batches(4, 0, 10) == [range(0, 4)]


def test_auto_backend():
    assert make_rasterizer("auto", 32, "cpu").name == "embree"
    assert make_rasterizer("auto", 32, "cuda").name == "pytorch3d"
    with pytest.raises(ValueError, match="unknown rasterizer"):
        make_rasterizer("opengl", 32)
