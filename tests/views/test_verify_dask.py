"""`tap-cli verify --workers N` / `--scheduler ADDR`: one Dask task per shard, merged into the
same report as in process, defects included."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import zarr

from helpers import dask_cluster, tap_cli

from tap3d.views.verify import verify

#: Checking does not depend on the rasterizer that rendered the views: one backend's dataset.
pytestmark = pytest.mark.parametrize("dataset", ["embree"], indirect=True)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """A real ``dask scheduler`` with two ``dask worker`` processes on 127.0.0.1."""
    from dask.distributed import Client

    with dask_cluster(tmp_path_factory.mktemp("verify-dask"), workers=2) as file:
        with Client(scheduler_file=file, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            address = client.scheduler.address
        yield address


def _damage_chunk(copy) -> None:
    # shards of 3 objects: rgb shard 1 holds objects 3-5; damage bytes of its first chunk
    path = copy / "rgb" / "c" / "1" / "0" / "0" / "0" / "0"
    data = bytearray(path.read_bytes())
    data[200:600] = bytes(np.random.default_rng(0).integers(0, 256, 400, dtype=np.uint8))
    path.write_bytes(bytes(data))


@pytest.fixture
def damaged(tmp_path, dataset):
    """A copy of the dataset with a defect of every kind the shard tasks and the driver find:
    a corrupted chunk, a truncated shard file, NaN, bad rotations and intrinsics in two shards,
    a pending object and a repeated object id."""
    out = tmp_path / "damaged.zarr"
    shutil.copytree(dataset, out)
    _damage_chunk(out)
    path = out / "mask" / "c" / "2" / "0" / "0" / "0"
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    g = zarr.open_group(str(out), mode="r+")
    for i in (4, 7):
        depth = g["depth"][i]
        depth[0, 0, 0] = np.nan
        g["depth"][i] = depth
    for i in (1, 5):
        R = g["cameras/R"][i]
        R[2] *= 1 + i
        g["cameras/R"][i] = R
        w2c = g["cameras/world_to_camera"][i]
        w2c[0, :3, :3] *= 2
        g["cameras/world_to_camera"][i] = w2c
    K = g["cameras/K"][0]
    K[3, 0, 2] = -5
    g["cameras/K"][0] = K
    g["status"][2] = 0
    g["object_id"][6] = g["object_id"][1]
    return str(out)


def test_a_scheduler_gives_the_same_report(dataset, damaged, scheduler):
    assert verify(dataset, scheduler=scheduler) == verify(dataset)
    here, there = verify(damaged), verify(damaged, scheduler=scheduler)
    assert there == here, f"{here.format()}\n---\n{there.format()}"
    text = there.format()
    for words in ("rgb chunk 3 (objects 3-3)", "mask chunk 6 (objects 6-6)",
                  "depth: NaN/inf in 2 objects, first [4, 7]",
                  "cameras/R: rotation not orthonormal with det +1 in objects [1, 5]",
                  "cameras/world_to_camera: rotation not orthonormal with det +1 in objects [1, 5]",
                  "cameras/K: not a valid intrinsic matrix in objects [0]",
                  "1 objects pending", "object_id: not unique"):
        assert words in text, text


def test_cli_workers_find_a_corrupted_chunk_as_in_process(tmp_path, dataset):
    copy = tmp_path / "copy.zarr"
    shutil.copytree(dataset, copy)
    _damage_chunk(copy)
    here = tap_cli("verify", str(copy), "--quiet")
    there = tap_cli("verify", str(copy), "--workers", "2", "--quiet")
    assert here.returncode == there.returncode == 1, there.stdout + there.stderr
    assert there.stdout == here.stdout
    defects = [line for line in there.stdout.splitlines() if "DEFECT" in line]
    assert len(defects) == 1 and "rgb chunk 3 (objects 3-3)" in defects[0], there.stdout
    good = tap_cli("verify", dataset, "--workers", "2", "--quiet")
    assert good.returncode == 0 and "OK" in good.stdout, good.stdout + good.stderr
