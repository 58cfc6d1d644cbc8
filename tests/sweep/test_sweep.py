"""``tap-cli sweep``: a 2-cell x 2-seed grid on a 2-worker Dask cluster, killed part-way and run
again: the finished tasks are kept and the table is complete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tap3d.sweep import GridError, load_grid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_PRETRAIN = {"batch_size": 2, "points": 256, "views_per_sample": 2, "embed_dim": 8,
                 "photograph_dim": 16, "photograph_depth": 1, "generator_factor": 8,
                 "max_steps": 4, "log_every": 2, "checkpoint_every": 2, "sample_every": 100,
                 "eval_objects": 0, "device": "cpu"}


@pytest.fixture(scope="module")
def views(make_dataset, duck_and_mug_meshes):
    """The duck and the mug, 2 views of 32 x 32."""
    return make_dataset("sweep", duck_and_mug_meshes, views=2, image_size=32, points=256,
                        shard_size=2)


def _grid(tmp_path, views, clouds, **extra) -> str:
    grid = {"title": "two loss weights", "data": {"pretrain": views, "finetune": clouds},
            "configs": {"finetune": os.path.join(ROOT, "configs", "finetune-cpu.yaml")},
            "settings": {"pretrain": TINY_PRETRAIN,
                         "finetune": {"epochs": 1, "max_steps": 0, "checkpoint_every": 5},
                         "probe": {"points": 192, "device": "cpu"}},
            "seeds": [0, 1], "metric": "probe.svm_oa",
            "cells": {"fg 20": {"pretrain": {"w_fg": 20.0}}, "fg 2": {"pretrain": {"w_fg": 2.0}}},
            **extra}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    return str(path)


def _done(out) -> dict:
    found = {}
    for cell in ("fg_20", "fg_2"):
        for seed in (0, 1):
            path = os.path.join(out, "cells", cell, f"seed_{seed}", "result.json")
            if os.path.exists(path):
                found[path] = os.stat(path).st_mtime_ns
    return found


@pytest.mark.slow
def test_a_killed_sweep_resumes_and_completes_its_table(tmp_path, views, modelnet40_h5):
    grid = _grid(tmp_path, views, modelnet40_h5[2])
    out = str(tmp_path / "out")
    exe = os.path.join(os.path.dirname(sys.executable), "tap-cli")
    command = [exe, "sweep", grid, "-o", out, "--workers", "2", "--quiet"]
    first = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not _done(out) and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # the driver and its Dask workers
    first.wait()
    kept = _done(out)
    assert 1 <= len(kept) < 4, kept  # killed part-way, at least one task finished
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert all(_done(out)[path] == mtime for path, mtime in kept.items())  # not run again
    table = json.load(open(os.path.join(out, "table.json")))
    assert list(table["cells"]) == ["fg 20", "fg 2"] and table["failed"] == []
    for cell in table["cells"].values():
        assert cell["seeds"] == [0, 1] and len(cell["values"]) == 2
        assert 100 / 8 < cell["mean"] <= 100 and cell["std"] >= 0 and cell["seconds"] > 0
    markdown = open(os.path.join(out, "table.md")).read()
    assert "| Model | fg 20 | fg 2 |" in markdown and "| w_fg | 20.0 | 2.0 |" in markdown
    assert "+-" in markdown and "probe.svm_oa" in done.stdout


def test_a_bad_grid_fails_before_any_task_naming_the_cell_and_key(tmp_path, views,
                                                                  modelnet40_h5):
    bad = _grid(tmp_path, views, modelnet40_h5[2],
                cells={"ok": {}, "broken": {"pretrain": {"w_fg": "heavy"}}})
    with pytest.raises(GridError, match=r"cell 'broken'.*w_fg"):
        load_grid(bad)
    rows = _grid(tmp_path, views, modelnet40_h5[2])
    spec = yaml.safe_load(open(rows))
    del spec["cells"]
    spec.update(rows={"2 layers": {"pretrain": {"photograph_depth": 2}}},
                columns={"16": {"pretrain": {"photograph_dim": 16}},
                         "32": {"pretrain": {"photograph_dim": 32}}})
    (tmp_path / "rows.yaml").write_text(yaml.safe_dump(spec))
    grid = load_grid(tmp_path / "rows.yaml")
    assert [c.name for c in grid.cells] == ["2 layers / 16", "2 layers / 32"]
    assert grid.cells[1].overrides == {"pretrain": {"photograph_depth": 2, "photograph_dim": 32}}
