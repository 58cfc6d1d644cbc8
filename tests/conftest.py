"""Shared fixtures: real meshes from pybullet_data and one small dataset built once per session."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

pybullet_data = pytest.importorskip("pybullet_data")

#: Real meshes used across the tests: textured (duck, table), material colours (toys), plain.
MESHES = {
    "duck": "duck.obj",
    "table": "table/table.obj",
    "mug": "objects/mug.obj",
    "bunny": "bunny.obj",
    "teddy": "teddy2_VHACD_CHs.obj",
    "cylinder": "toys/cylinder.obj",
    "random000": "random_urdfs/000/000.obj",
    "random005": "random_urdfs/005/005.obj",
}
IMAGE_SIZE = 96
POINTS = 2048


@pytest.fixture(scope="session")
def pybullet_root() -> str:
    return pybullet_data.getDataPath()


def copy_obj(src: str, dst_obj: str) -> None:
    """Copy an OBJ with its .mtl and texture images next to it, under a new name."""
    os.makedirs(os.path.dirname(dst_obj), exist_ok=True)
    shutil.copyfile(src, dst_obj)
    folder = os.path.dirname(src)
    for line in open(src, errors="ignore"):
        if line.startswith("mtllib"):
            mtl = line.split(maxsplit=1)[1].strip()
            shutil.copyfile(os.path.join(folder, mtl), os.path.join(os.path.dirname(dst_obj), mtl))
            for mline in open(os.path.join(folder, mtl), errors="ignore"):
                parts = mline.split()
                if parts and parts[0].startswith("map_"):
                    image = os.path.join(folder, parts[-1])
                    if os.path.isfile(image):
                        shutil.copyfile(image, os.path.join(os.path.dirname(dst_obj), parts[-1]))


@pytest.fixture(scope="session")
def mesh_folder(tmp_path_factory, pybullet_root) -> str:
    """A mesh folder of real meshes: <category>/<name>.obj."""
    root = tmp_path_factory.mktemp("meshes")
    for name, rel in MESHES.items():
        category = "textured" if name in ("duck", "table") else "plain"
        copy_obj(os.path.join(pybullet_root, rel), str(root / category / f"{name}.obj"))
    return str(root)


@pytest.fixture(scope="session")
def small_config():
    from tap3d.datasets import BuildConfig

    return BuildConfig(image_size=IMAGE_SIZE, points=POINTS, shard_size=3, seed=7)


@pytest.fixture(scope="session", params=["pytorch3d", "embree"])
def dataset(request, tmp_path_factory, mesh_folder, small_config) -> str:
    """The mesh folder built once per backend, in process: 8 objects, 10 views, 3 shards."""
    from dataclasses import replace

    from tap3d.datasets import build

    out = str(tmp_path_factory.mktemp("ds") / f"small-{request.param}.zarr")
    summary = build(mesh_folder, out, replace(small_config, backend=request.param), workers=0,
                    progress=False)
    assert summary.done == len(MESHES), summary.format()
    return out


@pytest.fixture(scope="session")
def group(dataset):
    import zarr

    return zarr.open_group(dataset, mode="r")


def project(points: np.ndarray, K: np.ndarray, world_to_camera: np.ndarray):
    """Pixel coordinates (u, v) and camera z of world points with OpenCV matrices."""
    cam = points @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    uvw = cam @ K.T
    return uvw[:, :2] / uvw[:, 2:3], cam[:, 2]
