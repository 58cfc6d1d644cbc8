"""Per-object budgets: an object over ``max_file_mb``, ``max_faces`` or ``max_texture_pixels``
fails with the size and the setting named (its shard goes on), and ``max_texture_size``
downsamples its textures, for OBJ and glTF files alike."""

from __future__ import annotations

import os

import numpy as np
import pytest
import zarr

from tap3d.render.limits import BudgetError, MeshLimits
from tap3d.render.meshes import load_mesh

from gltf_data import Duck, Glb, png
from helpers import tap_cli


@pytest.fixture(scope="module")
def files(tmp_path_factory, pybullet_root):
    """The duck as OBJ (its 4,212 faces and 512 x 512 texture) and as GLB."""
    duck = Duck(pybullet_root)
    glb = Glb()
    texture = glb.texture(glb.image(png(duck.image), "image/png", "duckCM"))
    glb.mesh([{"attributes": {"POSITION": glb.accessor(duck.verts, bounds=True),
                              "TEXCOORD_0": glb.accessor(duck.gltf_uvs)},
               "indices": glb.accessor(duck.faces.reshape(-1), 5125),
               "material": glb.material(texture=texture)}])
    glb.node(mesh=0)
    folder = tmp_path_factory.mktemp("limits")
    return {"obj": os.path.join(pybullet_root, "duck.obj"),
            "glb": glb.save(str(folder / "duck.glb")), "image": duck.image.shape}


@pytest.mark.parametrize("kind", ["obj", "glb"])
def test_each_budget_fails_the_object_naming_size_and_setting(files, kind):
    path = files[kind]
    size = os.path.getsize(path) / 2**20
    cases = [(MeshLimits(max_file_mb=size / 2), rf"file of {size:.1f} MB, over max_file_mb"),
             (MeshLimits(max_faces=4000), r"4,212 faces, over max_faces 4,000"),
             (MeshLimits(max_texture_pixels=10_000), r"texture .*duckCM.* \(512 x 512\) brings "
                                                     r"its images to 262,144 pixels, over "
                                                     r"max_texture_pixels 10,000")]
    for limits, words in cases:
        with pytest.raises(BudgetError, match=words) as error:
            load_mesh(path, limits=limits)
        assert str(error.value).startswith(path)
    within = MeshLimits(max_file_mb=size * 2, max_faces=4212, max_texture_pixels=512 * 512)
    assert load_mesh(path, limits=within).num_faces == 4212


@pytest.mark.parametrize("kind", ["obj", "glb"])
def test_max_texture_size_downsamples_and_keeps_the_look(files, kind):
    face = np.arange(4212)
    bary = np.full((4212, 3), 1 / 3, np.float32)
    full = load_mesh(files[kind]).textures
    small = load_mesh(files[kind], limits=MeshLimits(max_texture_size=64)).textures
    images = [image for image in getattr(small, "images") if image is not None]
    assert images and all(max(image.shape[:2]) == 64 for image in images)
    difference = np.abs(full.sample(face, bary) - small.sample(face, bary))
    assert 0 < difference.mean() < 0.03  # another image, the same colours at the face centres


def test_a_build_records_objects_over_budget_as_failed(tmp_path, mesh_folder):
    out = tmp_path / "limited.zarr"
    done = tap_cli("build-dataset", mesh_folder, "-o", str(out), "--image-size", "32",
                   "--points", "64", "--views", "2", "--workers", "0", "--quiet",
                   "--max-faces", "3000")
    group = zarr.open_group(str(out), mode="r")
    status, error = group["status"][:], group["error"][:]
    over = [i for i, e in enumerate(error) if "over max_faces 3,000" in str(e)]
    assert over and all(status[i] == 2 for i in over), (done.stdout, list(error))
    assert (status == 1).sum() == len(status) - len(over) > 0
    assert group.attrs["max_faces"] == 3000 and group.attrs["max_texture_size"] is None
