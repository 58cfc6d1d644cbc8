"""The optional base-colour outputs (``--albedo-maps``, ``--point-colors``): the unlit colour of
each pixel and of each surface point, for glTF and OBJ files, agreeing with each other through
the stored cameras."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import zarr

from tap3d.builder import BuildConfig, build
from tap3d.render.basecolor import linear_to_srgb
from tap3d.views.verify import verify

from gltf_data import Duck, Glb, png
from helpers import project

FACTOR = (0.2, 0.6, 0.9, 1.0)


@pytest.fixture(scope="module")
def built(tmp_path_factory, pybullet_root):
    """A mesh folder of the duck as a textured GLB, as a GLB of one factor colour, and as its
    OBJ, built with both outputs."""
    duck = Duck(pybullet_root)
    folder = tmp_path_factory.mktemp("colours") / "meshes" / "duck"
    os.makedirs(folder)
    for name, textured in (("textured", True), ("plain", False)):
        glb = Glb()
        material = glb.material(texture=glb.texture(glb.image(png(duck.image), "image/png"))) \
            if textured else glb.material(factor=FACTOR)
        attributes = {"POSITION": glb.accessor(duck.verts, bounds=True),
                      "TEXCOORD_0": glb.accessor(duck.gltf_uvs)}
        glb.mesh([{"attributes": attributes, "material": material,
                   "indices": glb.accessor(duck.faces.reshape(-1), 5125)}])
        glb.node(mesh=0)
        glb.save(str(folder / f"{name}.glb"))
    for name in ("duck.obj", "duck.mtl", "duckCM.png"):
        shutil.copy(os.path.join(pybullet_root, name), folder)
    out = str(folder.parent.parent / "colours.zarr")
    config = BuildConfig(views=6, image_size=64, points=2048, shard_size=4, albedo_maps=True,
                         point_colors=True)
    assert build(str(folder.parent), out, config, workers=0, progress=False).done == 3
    return out


def test_a_single_colour_is_the_albedo_of_every_covered_pixel_and_point(built):
    group = zarr.open_group(built, mode="r")
    index = [str(i) for i in group["object_id"][:]].index("duck/plain.glb")
    expected = np.round(linear_to_srgb(FACTOR[:3]) * 255)
    albedo, mask = group["albedo"][index], group["mask"][index]
    assert mask.any() and np.abs(albedo[mask] - expected).max() <= 1
    assert (albedo[~mask] == 0).all()
    assert np.abs(group["point_colors"][index] - expected).max() <= 1
    assert np.abs(group["rgb"][index][mask].astype(int) - expected).mean() > 5  # rgb is lit


def test_point_colours_match_the_albedo_where_the_points_are_seen(built):
    group = zarr.open_group(built, mode="r")
    for index, name in enumerate(str(i) for i in group["object_id"][:]):
        points, colours = group["points"][index], group["point_colors"][index].astype(int)
        K, w2c = group["cameras/K"][index], group["cameras/world_to_camera"][index]
        depth, albedo = group["depth"][index].astype(np.float32), group["albedo"][index]
        differences = []
        for v in range(len(K)):
            uv, z = project(points, K[v], w2c[v])
            pixel = np.round(uv).astype(int)
            inside = ((pixel >= 0) & (pixel < 64)).all(1)
            seen = inside.copy()
            seen[inside] = np.abs(depth[v][pixel[inside, 1], pixel[inside, 0]] - z[inside]) < 0.01
            differences.append(np.abs(albedo[v][pixel[seen, 1], pixel[seen, 0]] - colours[seen]))
        difference = np.concatenate(differences)
        assert len(difference) > 1000, name
        assert np.median(difference) <= 6, (name, np.median(difference))


def test_verify_checks_the_optional_arrays(built, tmp_path):
    assert verify(built, progress=False).ok
    copy = str(tmp_path / "copy.zarr")
    shutil.copytree(built, copy)
    for name in ("point_colors", "albedo"):  # truncate the first chunk (file) of each
        chunk = sorted(p for p in (tmp_path / "copy.zarr" / name).rglob("*")
                       if p.is_file() and p.name != "zarr.json")[0]
        chunk.write_bytes(chunk.read_bytes()[:20])
    report = verify(copy, progress=False)
    assert not report.ok
    assert {d.array for d in report.defects} == {"point_colors", "albedo"}, report.format()
