"""Builds on an existing Dask cluster and into object storage, both real and on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import zarr

from tap3d.datasets import BuildConfig, build

CONFIG = BuildConfig(views=4, image_size=48, points=256, shard_size=2, seed=11)
BIN = os.path.dirname(sys.executable)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _same_arrays(a_path, b_path):
    a, b = zarr.open_group(a_path, mode="r"), zarr.open_group(b_path, mode="r")
    names = [n for n, _ in a.arrays()] + [f"cameras/{n}" for n, _ in a["cameras"].arrays()]
    for name in names + ["points"]:
        np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)


@pytest.fixture
def dask_cluster(tmp_path):
    """``dask scheduler`` and two ``dask worker`` processes, as a user would start them."""
    scheduler_file = str(tmp_path / "scheduler.json")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    processes = [subprocess.Popen(
        [os.path.join(BIN, "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
         "--no-dashboard", "--scheduler-file", scheduler_file],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)]
    try:
        while not os.path.exists(scheduler_file):
            assert processes[0].poll() is None, "dask scheduler exited"
            time.sleep(0.1)
        for _ in range(2):
            processes.append(subprocess.Popen(
                [os.path.join(BIN, "dask"), "worker", "--scheduler-file", scheduler_file,
                 "--nthreads", "1", "--no-dashboard", "--memory-limit", "4GiB"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
        from dask.distributed import Client

        with Client(scheduler_file=scheduler_file, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            address = client.scheduler.address
        yield address
    finally:
        for process in processes[::-1]:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def test_build_on_an_existing_dask_cluster_equals_a_local_build(tmp_path, mesh_folder,
                                                                 dask_cluster):
    remote = str(tmp_path / "remote.zarr")
    summary = build(mesh_folder, remote, CONFIG, scheduler=dask_cluster, progress=False)
    assert summary.done == 8 and summary.shards_rendered == 4
    local = str(tmp_path / "local.zarr")
    build(mesh_folder, local, CONFIG, workers=0, progress=False)
    _same_arrays(remote, local)


@pytest.fixture
def s3(monkeypatch):
    """moto's S3 server on 127.0.0.1 with a bucket; s3fs reaches it through the environment."""
    pytest.importorskip("s3fs")
    port = _free_port()
    server = subprocess.Popen([os.path.join(BIN, "moto_server"), "-H", "127.0.0.1", "-p",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint,
                       "FSSPEC_S3_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(key, value)
    try:
        import boto3

        deadline = time.time() + 60
        while True:
            try:
                boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bucket")
                break
            except Exception:  # noqa: BLE001 - server still starting
                assert time.time() < deadline and server.poll() is None, "moto_server did not start"
                time.sleep(0.2)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_build_verify_and_stream_on_s3(tmp_path, mesh_folder, s3):
    from tap3d.datasets.stream import ViewStream
    from tap3d.datasets.verify import verify

    url = "s3://bucket/ds.zarr"
    exe = os.path.join(BIN, "tap-cli")
    run = subprocess.run([exe, "build-dataset", mesh_folder, "-o", url, "--views", "4",
                          "--image-size", "48", "--points", "256", "--shard-size", "2",
                          "--seed", "11", "--workers", "0", "--quiet"],
                         capture_output=True, text=True)
    assert run.returncode == 0 and "8 of 8 objects done" in run.stdout, run.stderr
    checked = subprocess.run([exe, "verify", url, "--quiet"], capture_output=True, text=True)
    assert checked.returncode == 0 and "OK" in checked.stdout, checked.stdout + checked.stderr
    report = verify(url)
    assert report.ok and report.status["done"] == 8
    local = str(tmp_path / "local.zarr")
    build(mesh_folder, local, CONFIG, workers=0, progress=False)
    _same_arrays(url, local)
    stream = ViewStream(url, num_points=128, views_per_sample=2, seed=0)
    samples = list(stream)
    assert sorted(int(s["index"]) for s in samples) == list(range(8))
    assert samples[0]["images"].shape == (2, 3, 48, 48)
