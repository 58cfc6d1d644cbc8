"""Shading presets of the builder: ``plain`` is untextured grey, ``--preset tap`` stores the
12 MVCNN cameras and they pass the camera-geometry checks."""

from __future__ import annotations

import os

import numpy as np
import pytest
import zarr

from helpers import assert_points_on_masks, copy_obj, tap_cli
from tap3d.builder import BuildConfig, build
from tap3d.buildconfig import preset_config

SMALL = dict(image_size=64, points=512, shard_size=2, seed=1)


def test_plain_is_grey_and_ignores_textures(tmp_path, pybullet_root):
    """The duck with and without its mtllib: identical plain views, R = G = B on the object."""
    src = tmp_path / "src"
    copy_obj(os.path.join(pybullet_root, "duck.obj"), str(src / "a" / "duck.obj"))
    lines = open(os.path.join(pybullet_root, "duck.obj"), errors="ignore").read().splitlines()
    bare = src / "b" / "duck.obj"
    bare.parent.mkdir(parents=True)
    bare.write_text("\n".join(line for line in lines if not line.startswith("mtllib")) + "\n")
    plain, textured = str(tmp_path / "plain.zarr"), str(tmp_path / "textured.zarr")
    build(str(src), plain, BuildConfig(shading="plain", **SMALL), workers=0, progress=False)
    build(str(src), textured, BuildConfig(**SMALL), workers=0, progress=False)
    g, t = zarr.open_group(plain, mode="r"), zarr.open_group(textured, mode="r")
    assert list(g["object_id"][:]) == ["a/duck.obj", "b/duck.obj"]
    assert (g["status"][:] == 1).all()
    rgb, mask = g["rgb"][:], g["mask"][:]
    np.testing.assert_array_equal(rgb[0], rgb[1])
    np.testing.assert_array_equal(mask[0], mask[1])
    object_pixels = rgb[mask]
    assert len(object_pixels) > 1000
    assert (object_pixels[:, 0] == object_pixels[:, 1]).all()
    assert (object_pixels[:, 1] == object_pixels[:, 2]).all()
    assert (rgb[~mask] == 255).all()
    # ambient 0.2 + diffuse 0.6: between 51 and 204, lit faces bright, no white highlights
    assert object_pixels.min() >= 50 and object_pixels.max() <= 205
    assert np.median(object_pixels[:, 0]) > 120
    # the textured duck is yellow, so the texture was there to ignore
    duck = t["rgb"][0][t["mask"][0]].astype(float)
    assert duck[:, 0].mean() > duck[:, 2].mean() + 30
    attrs = dict(g.attrs)
    assert attrs["shading"] == "plain" and attrs["lights"]["specular_color"] == [0, 0, 0]
    assert dict(t.attrs)["shading"] == "textured" and dict(t.attrs)["textures"] == "uv"


def test_preset_tap_stores_mvcnn_cameras(tmp_path, mesh_folder):
    out = str(tmp_path / "tap.zarr")
    run = tap_cli("build-dataset", mesh_folder, "-o", out, "--preset", "tap", "--image-size", "64",
                  "--points", "512", "--synsets", "textured", "--workers", "0", "--quiet")
    assert run.returncode == 0, run.stderr
    g = zarr.open_group(out, mode="r")
    attrs = dict(g.attrs)
    assert attrs["preset"] == "tap" and attrs["shading"] == "plain" and attrs["views"] == 12
    assert attrs["layout"]["name"] == "mvcnn"
    assert attrs["projection"] == "orthographic" and attrs["fit"] == 200 / 224
    assert attrs["format_version"] == 2 and attrs["fov"] == 0
    np.testing.assert_array_equal(g["cameras/fov"][:], 0.0)
    np.testing.assert_array_equal(g["cameras/elevation"][:], 30.0)
    np.testing.assert_array_equal(g["cameras/azimuth"][:],
                                  np.broadcast_to(np.arange(0, 360, 30, dtype=np.float32), (2, 12)))
    rgb, mask = g["rgb"][:], g["mask"][:]
    assert (rgb[mask][:, 0] == rgb[mask][:, 2]).all()
    assert_points_on_masks(g["points"][:], g["cameras/K"][:], g["cameras/world_to_camera"][:],
                           mask, "orthographic")
    # resuming with another shading is refused and names it
    again = tap_cli("build-dataset", mesh_folder, "-o", out, "--preset", "tap", "--shading",
                    "textured", "--image-size", "64", "--points", "512", "--synsets", "textured",
                    "--workers", "0", "--quiet")
    assert again.returncode != 0 and "shading: existing 'plain'" in again.stderr, again.stderr


def test_preset_resolution():
    tap = preset_config("tap")
    assert (tap.views, tap.layout, tap.shading, tap.preset) == (12, "mvcnn", "plain", "tap")
    assert (tap.projection, tap.fit, tap.background) == ("orthographic", 200 / 224, (1, 1, 1))
    # a perspective build from the preset drops its fit; a fit needs a parallel projection
    assert preset_config("tap", projection="perspective").fit is None
    with pytest.raises(ValueError, match="fit needs projection"):
        BuildConfig(fit=0.9).validate()
    with pytest.raises(ValueError, match="fit must be in"):
        BuildConfig(projection="orthographic", fit=1.5).validate()
    with pytest.raises(ValueError, match="projection must be one of"):
        BuildConfig(projection="fisheye").validate()
    assert preset_config("clip2point") == BuildConfig(views=10, layout="clip2point",
                                                       preset="clip2point")
    assert preset_config(None, views=None) == BuildConfig()
    # explicit options override the preset; another view count takes its own layout
    assert preset_config("tap", shading="textured").shading == "textured"
    assert preset_config("tap", views=6).layout == "auto"
    with pytest.raises(ValueError, match="preset must be one of"):
        preset_config("mvcnn")
    with pytest.raises(ValueError, match="tap3d shader"):
        BuildConfig(shading="plain", shader="pytorch3d").validate()
    with pytest.raises(ValueError, match="textures .atlas."):
        BuildConfig(obj_loader="pytorch3d").validate()
