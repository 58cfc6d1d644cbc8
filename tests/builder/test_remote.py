"""Builds on an existing Dask cluster and into object storage, both real and on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from helpers import assert_same_arrays, dask_cluster, tap_cli
from tap3d.builder import BuildConfig, build

CONFIG = BuildConfig(views=4, image_size=48, points=256, shard_size=2, seed=11)
BIN = os.path.dirname(sys.executable)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def scheduler_address(tmp_path):
    """A real ``dask scheduler`` with two ``dask worker`` processes on 127.0.0.1."""
    from dask.distributed import Client

    with dask_cluster(tmp_path, workers=2, worker_args=("--memory-limit", "4GiB")) as file:
        with Client(scheduler_file=file, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            address = client.scheduler.address
        yield address


@pytest.mark.slow
def test_build_on_an_existing_dask_cluster_equals_a_local_build(tmp_path, mesh_folder,
                                                                 scheduler_address):
    remote = str(tmp_path / "remote.zarr")
    summary = build(mesh_folder, remote, CONFIG, scheduler=scheduler_address, progress=False)
    assert summary.done == 8 and summary.shards_rendered == 4
    local = str(tmp_path / "local.zarr")
    build(mesh_folder, local, CONFIG, workers=0, progress=False)
    assert_same_arrays(remote, local)


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


@pytest.mark.slow
def test_build_verify_and_stream_on_s3(tmp_path, mesh_folder, s3):
    from tap3d.stream import StreamSettings, ViewStream
    from tap3d.views.verify import verify

    url = "s3://bucket/ds.zarr"
    run = tap_cli("build-dataset", mesh_folder, "-o", url, "--views", "4", "--image-size", "48",
                  "--points", "256", "--shard-size", "2", "--seed", "11", "--workers", "0",
                  "--quiet")
    assert run.returncode == 0 and "8 of 8 objects done" in run.stdout, run.stderr
    checked = tap_cli("verify", url, "--quiet")
    assert checked.returncode == 0 and "OK" in checked.stdout, checked.stdout + checked.stderr
    report = verify(url)
    assert report.ok and report.status["done"] == 8
    local = str(tmp_path / "local.zarr")
    build(mesh_folder, local, CONFIG, workers=0, progress=False)
    assert_same_arrays(url, local)
    stream = ViewStream(url, StreamSettings(points=128, views_per_sample=2, seed=0))
    samples = list(stream)
    assert sorted(int(s["index"]) for s in samples) == list(range(8))
    assert samples[0]["images"].shape == (2, 3, 48, 48)
