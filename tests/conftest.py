"""Shared fixtures, one per kind of data, each built once per session: real meshes from
pybullet_data, a small views dataset (per backend) and labelled clouds in ModelNet40's h5
layout."""

from __future__ import annotations

import os

import pytest

from helpers import IMAGE_SIZE, MESHES, POINTS, copy_obj


@pytest.fixture(scope="session")
def pybullet_root() -> str:
    """The meshes that the ``pybullet`` package ships (``pybullet_data``); the tests that use
    them, or a fixture built from them, are skipped where it is not installed."""
    return pytest.importorskip("pybullet_data").getDataPath()


@pytest.fixture(scope="session")
def mesh_folder(tmp_path_factory, pybullet_root) -> str:
    """A mesh folder of real meshes: <category>/<name>.obj."""
    root = tmp_path_factory.mktemp("meshes")
    for name, rel in MESHES.items():
        category = "textured" if name in ("duck", "table") else "plain"
        copy_obj(os.path.join(pybullet_root, rel), str(root / category / f"{name}.obj"))
    return str(root)


@pytest.fixture(scope="session")
def duck_and_mug_meshes(tmp_path_factory, pybullet_root) -> str:
    """A mesh folder of two real meshes: the duck (textured) and the mug."""
    root = tmp_path_factory.mktemp("duck-and-mug")
    for name in ("duck", "mug"):
        copy_obj(os.path.join(pybullet_root, MESHES[name]), str(root / f"{name}.obj"))
    return str(root)


@pytest.fixture(scope="session")
def small_config():
    from tap3d.builder import BuildConfig

    return BuildConfig(image_size=IMAGE_SIZE, points=POINTS, shard_size=3, seed=7)


@pytest.fixture(scope="session")
def make_dataset(tmp_path_factory, mesh_folder):
    """Factory of small datasets built in process from real meshes.

    ``make_dataset(name, source=mesh_folder, **settings)`` builds ``BuildConfig(**settings)``
    into a fresh folder and returns its path; every object must render.
    """
    from tap3d.builder import BuildConfig, build

    def make(name: str, source: str | None = None, **settings) -> str:
        out = str(tmp_path_factory.mktemp(name) / f"{name}.zarr")
        summary = build(source or mesh_folder, out, BuildConfig(**settings), workers=0,
                        progress=False)
        assert not summary.failed, summary.format()
        return out

    return make


@pytest.fixture(scope="session", params=["pytorch3d", "embree"])
def dataset(request, make_dataset, small_config) -> str:
    """The mesh folder built once per backend, in process: 8 objects, 10 views, 3 shards."""
    import dataclasses

    settings = {**dataclasses.asdict(small_config), "backend": request.param}
    return make_dataset(f"small-{request.param}", **settings)


@pytest.fixture(scope="session")
def group(dataset):
    import zarr

    return zarr.open_group(dataset, mode="r")


@pytest.fixture(scope="session")
def modelnet40_h5(tmp_path_factory, pybullet_root):
    """ModelNet40-h5 layout (:func:`evaluate_data.write_modelnet40_h5`): 8 real meshes, 12
    training and 6 test clouds of 512 points, upright (no random rotation).

    Returns:
        ``((train points, labels), (test points, labels), folder)``.
    """
    from evaluate_data import CLASS_MESHES, sample_clouds, write_modelnet40_h5

    train = sample_clouds(pybullet_root, 12, 512, seed=0, rotate=False)
    test = sample_clouds(pybullet_root, 6, 512, seed=1, rotate=False)
    return train, test, write_modelnet40_h5(str(tmp_path_factory.mktemp("modelnet40")), train,
                                            test, list(CLASS_MESHES))
