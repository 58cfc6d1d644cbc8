"""The one-shot GPU check (benchmarks/gpu.sh, docs/gpu.md) as its CPU dry run: the same script
and steps at toy size, so that it cannot rot while no GPU runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_gpu_check_dry_run_on_cpu(tmp_path, pybullet_root):
    bundle, out = tmp_path / "bundle", tmp_path / "out"
    subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu_bundle.py"), "--out",
                    str(bundle), "--toy", "--no-wheels"], check=True, cwd=ROOT)
    done = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu.sh"), "--device", "cpu",
                           "--toy", "--bundle", str(bundle), "--out", str(out)],
                          env={**os.environ, "PYTHON": sys.executable}, cwd=ROOT,
                          capture_output=True, text=True)
    log = (out / "gpu.log").read_text() if (out / "gpu.log").exists() else ""
    assert done.returncode == 0, done.stdout + done.stderr + log[-4000:]
    report = json.loads((out / "gpu.json").read_text())
    steps = report["steps"]
    assert set(steps) == {"a_model", "b_train", "c_finetune", "c_partseg", "c_probe",
                          "c_generate", "d_torchrun"}
    assert all(step["status"] == "ok" for step in steps.values()), steps
    # a: both precisions, whole model and backbone alone, with throughput and memory
    rows = report["a_model"]["rows"]
    assert {(r["precision"], r["whole_model"]) for r in rows} == {
        ("fp32", True), ("fp32", False), ("bf16", True), ("bf16", False)}
    assert all(r["samples_per_s"] > 0 and r["ms_per_step"] > 0 for r in rows)
    assert report["a_model"]["point_ops"] and "aten::" in report["e_profile"]
    # b: stopped half-way, resumed to the end, with throughput and the data-wait share
    assert report["b_train"]["steps"] == [6]
    for part in ("until_stop", "whole_run"):
        figures = report["b_train"][part]
        assert figures["samples_per_s"] > 0 and 0 <= figures["data_wait"] <= 1
    # c: every downstream command wrote its results
    assert report["c_finetune"]["steps"] > 0 and report["c_finetune"]["best_oa"] >= 0
    assert report["c_partseg"]["best_instance_miou"] >= 0
    assert report["c_probe"] and (out / "generated.png").stat().st_size > 1000
    # d: torchrun trained and logged
    assert report["d_torchrun"]["records"] >= 1


def test_gpu_sh_refuses_a_missing_bundle(tmp_path):
    done = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu.sh"), "--bundle",
                           str(tmp_path / "nothing"), "--out", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "no GPU bundle there" in done.stderr
