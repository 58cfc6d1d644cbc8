"""`tap-cli verify`: passes on good datasets, names the array and chunk of each defect."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import zarr

from helpers import tap_cli

from tap3d.views.schema import array_specs
from tap3d.views.verify import verify


def test_verify_passes_on_good_datasets(dataset):
    report = verify(dataset)
    assert report.ok, report.format()
    assert report.objects == 8 and report.status == {"pending": 0, "done": 8, "failed": 0}
    assert report.arrays_checked == len(array_specs(1, 1, 1, 1))  # 22 with split
    run = tap_cli("verify", dataset, "--quiet")
    assert run.returncode == 0 and "OK" in run.stdout, run.stdout + run.stderr


@pytest.fixture
def copy(tmp_path, dataset):
    out = tmp_path / "copy.zarr"
    shutil.copytree(dataset, out)
    return out


def test_corrupted_chunk_is_named(copy):
    # shards of 3 objects: rgb shard 1 holds objects 3-5; damage bytes of its first chunk
    path = copy / "rgb" / "c" / "1" / "0" / "0" / "0" / "0"
    data = bytearray(path.read_bytes())
    data[200:600] = bytes(np.random.default_rng(0).integers(0, 256, 400, dtype=np.uint8))
    path.write_bytes(bytes(data))
    run = tap_cli("verify", str(copy), "--quiet")
    assert run.returncode == 1
    defects = [line for line in run.stdout.splitlines() if "DEFECT" in line]
    assert len(defects) == 1 and "rgb chunk 3 (objects 3-3)" in defects[0], run.stdout
    assert "rgb/c/1/0/0/0/0" in defects[0]


def test_truncated_shard_is_named(copy):
    # the images are sharded (cameras and points are one chunk per shard since 2026-12)
    path = copy / "rgb" / "c" / "2" / "0" / "0" / "0" / "0"
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    report = verify(str(copy))
    assert not report.ok
    names = {(d.array, d.chunk) for d in report.defects}
    assert names == {("rgb", "6 (objects 6-6)"), ("rgb", "7 (objects 7-7)")}, \
        report.format()


def test_bad_values_and_cameras_are_named(copy):
    g = zarr.open_group(str(copy), mode="r+")
    depth = g["depth"][4]
    depth[0, 0, 0] = np.nan
    g["depth"][4] = depth
    R = g["cameras/R"][1]
    R[2] *= 2
    g["cameras/R"][1] = R
    K = g["cameras/K"][6]
    K[3, 0, 2] = -5
    g["cameras/K"][6] = K
    g["status"][7] = 0
    report = verify(str(copy))
    text = report.format()
    assert "depth: NaN/inf in 1 objects, first [4]" in text
    assert "cameras/R: rotation not orthonormal with det +1 in objects [1]" in text
    assert "cameras/K: not a valid intrinsic matrix in objects [6]" in text
    assert "1 objects pending" in text
    assert len(report.defects) == 4, text
