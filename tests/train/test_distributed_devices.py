"""Ranks on their own GPUs (issue 33): under torchrun ``distributed.setup()`` pins each rank to
GPU ``LOCAL_RANK`` before the process group starts and ``--device cuda`` resolves to it; the
helpers of :mod:`tap3d.train.distributed` (gather, reduce, rank 0's atomic write) in one process
and, through the GPU check's two-process probe, in two (gloo on the CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from tap3d.devices import resolve_device
from tap3d.train import distributed, engine
from tap3d.train.distributed import Process
from tap3d.train.torchfile import load_torch_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def torchrun_rank_1(monkeypatch):
    """Rank 1 of 2 under a simulated torchrun on a machine with 2 GPUs: the process group and
    the CUDA calls are fakes that record the order of the calls."""
    calls = []
    for key, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1",
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29511"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv(distributed.BACKEND_VARIABLE, raising=False)
    dist = torch.distributed
    initialised = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: calls.append(("set_device", index)))
    monkeypatch.setattr(dist, "is_initialized", lambda: bool(initialised))

    def init_process_group(backend, *args, **kwargs):
        calls.append(("init_process_group", backend))
        initialised.append(True)

    monkeypatch.setattr(dist, "init_process_group", init_process_group)
    monkeypatch.setattr(dist, "get_rank", lambda *a, **k: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda *a, **k: 2)
    return calls


def test_setup_pins_the_rank_to_its_gpu_before_the_process_group(torchrun_rank_1):
    assert distributed.setup() == Process(rank=1, world=2, local_rank=1)
    assert torchrun_rank_1 == [("set_device", 1), ("init_process_group", "nccl")]


def test_cuda_and_auto_resolve_to_the_local_rank_gpu(torchrun_rank_1):
    assert resolve_device("cuda", 1) == "cuda:1"
    assert resolve_device("auto", 1) == "cuda:1"
    assert resolve_device("cuda:0", 1) == "cuda:0"  # explicit: as given
    assert resolve_device("cpu", 1) == "cpu"
    process, device = engine.setup(SimpleNamespace(device="cuda"))
    assert process.local_rank == 1 and device == torch.device("cuda:1")
    assert torchrun_rank_1[0] == ("set_device", 1)


def test_the_backend_variable_picks_gloo(torchrun_rank_1, monkeypatch):
    monkeypatch.setenv(distributed.BACKEND_VARIABLE, "gloo")
    distributed.setup()
    assert torchrun_rank_1 == [("set_device", 1), ("init_process_group", "gloo")]


def test_a_rank_beyond_the_gpus_keeps_the_current_one(torchrun_rank_1, monkeypatch):
    """Two gloo ranks sharing one GPU (the GPU check on a single-GPU machine)."""
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv(distributed.BACKEND_VARIABLE, "gloo")
    distributed.setup()
    assert torchrun_rank_1 == [("init_process_group", "gloo")]


def test_a_single_process_touches_neither_gpu_nor_process_group(torchrun_rank_1, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert distributed.setup() == Process()
    assert torchrun_rank_1 == []


def test_save_on_main_writes_atomically_on_rank_0_only(tmp_path):
    state = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "epoch": 3}
    path = str(tmp_path / "best.pt")
    assert distributed.save_on_main(state, path, Process(rank=1, world=2, local_rank=1)) is None
    assert os.listdir(tmp_path) == []
    assert distributed.save_on_main(state, path, Process(rank=0, world=2)) == path
    assert os.listdir(tmp_path) == ["best.pt"]  # no best.pt.tmp left
    loaded = load_torch_file(path)
    assert loaded["epoch"] == 3 and torch.equal(loaded["model"]["w"], state["model"]["w"])
    distributed.save_on_main({"epoch": 4}, path, Process())  # replaces the file
    assert load_torch_file(path) == {"epoch": 4} and os.listdir(tmp_path) == ["best.pt"]


def test_collectives_in_one_process_are_the_identity():
    one = Process()
    value = {"scores": [1, 2], "name": "x"}
    assert distributed.all_gather(value, one) == [value]
    tensor = torch.tensor([1.0, 2.0])
    assert distributed.reduce_across_processes(tensor, one) is tensor
    assert distributed.reduce_across_processes(tensor, one, op="max") is tensor
    assert distributed.reduce_across_processes(7, one) == 7
    with pytest.raises(ValueError, match="op must be"):
        distributed.reduce_across_processes(7, one, op="mean")


def test_two_gloo_processes_gather_reduce_and_write_once(tmp_path):
    """The GPU check's two-process probe on the CPU: gather, sum, max, rank 0's atomic
    write read back by both ranks."""
    out = tmp_path / "ranks"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", os.path.join(ROOT, "benchmarks", "gpu_check.py"),
               "--ranks-probe", "--device", "cpu", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(distributed.BACKEND_VARIABLE, None)
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads((out / "ranks.json").read_text())
    assert report["ok"] and report["backend"] == "gloo", report
    assert [r["rank"] for r in report["ranks"]] == [0, 1]
    assert sorted(os.listdir(out)) == ["ranks.json", "ranks.pt"]
