"""ShapeNetCore v2, v1 and mesh-folder sources, built as small trees of real pybullet meshes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import zarr

from helpers import copy_obj
from tap3d.builder import BuildConfig, build
from tap3d.sources import SourceError, discover

AIRPLANE, MUG = "02691156", "03797390"
TINY = BuildConfig(views=2, layout="sphere", image_size=32, points=64, shard_size=2)


def _shapenet_v2(root, pybullet_root):
    """<synset>/<model>/models/model_normalized.obj, textures in <model>/images/ (as v2)."""
    with open(os.path.join(root, "taxonomy.json"), "w") as f:
        json.dump([{"synsetId": AIRPLANE, "name": "airplane,aeroplane,plane", "children": [],
                    "numInstances": 2},
                   {"synsetId": MUG, "name": "mug", "children": [], "numInstances": 1}], f)
    for synset, model, rel in [(AIRPLANE, "b1", "duck.obj"), (AIRPLANE, "a1", "bunny.obj"),
                               (MUG, "m1", "objects/mug.obj")]:
        models = os.path.join(root, synset, model, "models")
        copy_obj(os.path.join(pybullet_root, rel), os.path.join(models, "model_normalized.obj"))
    # the duck's texture moves to ../images/ and its .mtl points there, as in ShapeNetCore v2
    models = os.path.join(root, AIRPLANE, "b1", "models")
    os.makedirs(os.path.join(root, AIRPLANE, "b1", "images"))
    os.rename(os.path.join(models, "duckCM.png"),
              os.path.join(root, AIRPLANE, "b1", "images", "duckCM.png"))
    mtl = open(os.path.join(models, "duck.mtl")).read().replace("duckCM.png", "../images/duckCM.png")
    open(os.path.join(models, "duck.mtl"), "w").write(mtl)


def test_shapenet_v2(tmp_path, pybullet_root):
    _shapenet_v2(tmp_path, pybullet_root)
    found = discover(tmp_path)
    assert found.kind == "shapenet_v2"
    assert [o.object_id for o in found.objects] == [f"{AIRPLANE}/a1", f"{AIRPLANE}/b1", f"{MUG}/m1"]
    assert found.categories == [AIRPLANE, MUG]
    assert found.category_names == {AIRPLANE: "airplane", MUG: "mug"}
    # --synsets takes ids or any taxonomy name; --limit is per category
    assert {o.category for o in discover(tmp_path, synsets=["aeroplane"]).objects} == {AIRPLANE}
    assert {o.category for o in discover(tmp_path, synsets=[MUG]).objects} == {MUG}
    assert len(discover(tmp_path, limit=1).objects) == 2
    with pytest.raises(SourceError, match="car"):
        discover(tmp_path, synsets=["car"])

    out = str(tmp_path / "v2.zarr")
    summary = build(str(tmp_path), out, TINY, workers=0, progress=False)
    assert summary.done == 3
    g = zarr.open_group(out)
    assert list(g["object_id"][:]) == [f"{AIRPLANE}/a1", f"{AIRPLANE}/b1", f"{MUG}/m1"]
    assert list(g["category"][:]) == [AIRPLANE, AIRPLANE, MUG]
    np.testing.assert_array_equal(g["label"][:], [0, 0, 1])
    assert g.attrs["categories"] == [AIRPLANE, MUG]
    assert g.attrs["category_names"] == ["airplane", "mug"]
    assert g.attrs["source"]["kind"] == "shapenet_v2"
    # the ../images/ texture was found: the duck is yellow, not the default grey, no warning
    duck = g["rgb"][1][g["mask"][1]].astype(float)
    assert duck[:, 0].mean() > 1.5 * duck[:, 2].mean()
    assert g["warnings"][1] == ""


def test_shapenet_v1(tmp_path, pybullet_root):
    for synset, model, rel in [(MUG, "m2", "objects/mug.obj"), (MUG, "m1", "bunny.obj"),
                               (AIRPLANE, "p1", "teddy2_VHACD_CHs.obj")]:
        copy_obj(os.path.join(pybullet_root, rel), str(tmp_path / synset / model / "model.obj"))
    found = discover(tmp_path)
    assert found.kind == "shapenet_v1"
    assert [(o.object_id, o.category, found.label(o.category)) for o in found.objects] == [
        (f"{AIRPLANE}/p1", AIRPLANE, 0), (f"{MUG}/m1", MUG, 1), (f"{MUG}/m2", MUG, 1)]
    assert all(o.path.endswith("model.obj") for o in found.objects)


def test_mesh_folder(mesh_folder):
    found = discover(mesh_folder)
    assert found.kind == "mesh_folder"
    assert found.categories == ["plain", "textured"]
    assert [o.object_id for o in found.objects][:2] == ["plain/bunny.obj", "plain/cylinder.obj"]
    assert all(o.category == o.object_id.split("/")[0] for o in found.objects)
    assert [o.object_id for o in discover(mesh_folder, synsets=["textured"]).objects] == [
        "textured/duck.obj", "textured/table.obj"]


def test_other_formats_and_nested_folders(tmp_path, pybullet_root):
    import trimesh

    duck = trimesh.load(os.path.join(pybullet_root, "duck.obj"), force="mesh")
    os.makedirs(tmp_path / "a" / "deep")
    duck.export(tmp_path / "a" / "deep" / "duck.glb")
    bunny = trimesh.load(os.path.join(pybullet_root, "bunny.obj"), force="mesh")
    bunny.visual = trimesh.visual.ColorVisuals(bunny, vertex_colors=np.tile([200, 30, 30, 255],
                                                                          (len(bunny.vertices), 1)))
    bunny.export(tmp_path / "a" / "bunny.ply")
    bunny.export(tmp_path / "a" / "bunny.off")
    os.symlink(os.path.join(pybullet_root, "l_finger.stl"), tmp_path / "finger.stl")
    found = discover(tmp_path)
    assert [(o.object_id, o.category) for o in found.objects] == [
        ("a/bunny.off", "a"), ("a/bunny.ply", "a"), ("a/deep/duck.glb", "deep"),
        ("finger.stl", tmp_path.name)]
    out = str(tmp_path / "formats.zarr")
    assert build(str(tmp_path), out, TINY, workers=0, progress=False).done == 4
    g = zarr.open_group(out)
    ply = g["rgb"][1][g["mask"][1]].astype(float)  # vertex colours of the PLY are rendered
    assert ply[:, 0].mean() > 2 * ply[:, 1].mean()
    glb = g["rgb"][2][g["mask"][2]].astype(float)  # the GLB's texture, sampled at its vertices
    assert glb[:, 0].mean() > 1.5 * glb[:, 2].mean()
    assert list(g["warnings"][:]) == [""] * 4


@pytest.mark.parametrize("make", ["missing", "file", "empty"])
def test_bad_source_is_a_clear_error(tmp_path, make):
    path = tmp_path / "src"
    if make == "file":
        path.write_text("x")
    elif make == "empty":
        (path / "sub").mkdir(parents=True)
        (path / "sub" / "readme.txt").write_text("no meshes")
    with pytest.raises(SourceError, match=str(path.name)):
        discover(path)
