"""Grids of experiments with seeds: what ``tap-cli sweep GRID.yaml -o OUT`` runs.

Each cell of a grid is a set of settings overrides; each (cell, seed) is one task that
pre-trains (:func:`tap3d.train.train`), fine-tunes the pre-trained backbone
(:func:`tap3d.train.finetune`) and probes it (:func:`tap3d.evaluate.probe.probe`), the way the
TAP supplement's ablations (Tables 1a and 1b) score every cell by a pre-training plus a
fine-tuning. Tasks run on Dask (a local cluster of ``workers`` processes by default, an
existing scheduler with ``scheduler``, as ``build-dataset`` does); a sweep killed part-way and
run again keeps every finished task and resumes the unfinished ones from their last
checkpoints.

The grid file (YAML; relative paths are relative to the file)::

    title: TAP supplement Table 1b (loss weights)
    data: {pretrain: VIEWS.zarr, finetune: LABELLED}     # tap3d views; a labelled set
    configs: {pretrain: tap.yaml, finetune: finetune-scanobjectnn.yaml, probe: null}
    settings: {pretrain: {max_steps: 100}, finetune: {epochs: 2}, probe: {points: 256}}
    seeds: [0, 1, 2]
    metric: finetune.best_oa      # the table's number: STAGE.KEY of a task's results
    cells:                        # Table 1b's layout: one column per cell
      G1: {pretrain: {w_fg: 2.0, w_bg: 1.0}}
      G4: {pretrain: {w_fg: 20.0, w_bg: 1.0}}
    # or Table 1a's: rows x columns, a cell's overrides the row's then the column's
    rows: {"2 Layers": {pretrain: {photograph_depth: 2}}}
    columns: {"128 Dims": {pretrain: {photograph_dim: 128}}}

Settings of a stage: its config file's, then ``settings``, then the cell's overrides, then the
seed (every stage's ``seed``). Unknown keys and wrong types fail before any task starts, naming
the grid file, the cell and the key (:mod:`tap3d.settings`).

``OUT``: ``cells/<cell>/seed_<s>/`` per task (``pretrain/``, ``finetune/`` run folders,
``probe.json``, and ``result.json`` written last, when the task is done), ``table.md`` and
``table.json``: per cell the metric's mean +- standard deviation over the seeds (sample
standard deviation, ``ddof = 1``), the finished seeds, and the mean wall time of a task.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time

from tap3d.evaluate.probe import probe
from tap3d.sweep.grid import Cell, Grid, load_grid, stage_settings
from tap3d.sweep.table import format_table, summarize
from tap3d.train import finetune, train

__all__ = ["run_task", "sweep", "task_folder"]


def slug(name: str) -> str:
    """A cell's folder name: its name with anything but letters, digits, ``.-_`` as ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "cell"


def task_folder(out: str, cell: Cell, seed: int) -> str:
    return os.path.join(out, "cells", slug(cell.name), f"seed_{seed}")


def _resumable(run: str) -> bool:
    return os.path.exists(os.path.join(run, "checkpoints", "last.pt"))


def run_task(grid: Grid, cell: Cell, seed: int, out: str, threads: int = 1) -> dict:
    """Pre-train, fine-tune and probe one (cell, seed), resuming a run that was stopped; write
    ``result.json`` last. Returns it (``cell``, ``seed``, ``pretrain``, ``finetune``,
    ``probe`` results, ``seconds``)."""
    import torch

    torch.set_num_threads(max(1, threads))
    folder = task_folder(out, cell, seed)
    done = os.path.join(folder, "result.json")
    if os.path.exists(done):
        with open(done) as f:
            return json.load(f)
    os.makedirs(folder, exist_ok=True)
    began = time.perf_counter()
    settings = stage_settings(grid, cell, seed)
    pre = os.path.join(folder, "pretrain")
    pretrained = train(grid.data["pretrain"], pre, settings["pretrain"],
                       resume=_resumable(pre), progress=False)
    tuned_run = os.path.join(folder, "finetune")
    tuning = dataclasses.replace(settings["finetune"], backbone_checkpoint=pre)
    tuned = finetune(grid.data["finetune"], tuned_run, tuning, resume=_resumable(tuned_run),
                     progress=False)
    probed = probe(grid.data["finetune"],
                   dataclasses.replace(settings["probe"], backbone_checkpoint=pre))
    result = {"cell": cell.name, "seed": seed, "pretrain": pretrained, "finetune": tuned,
              "probe": probed, "seconds": time.perf_counter() - began}
    partial = done + ".partial"
    with open(partial, "w") as f:
        json.dump(result, f, indent=1, default=str)
    os.replace(partial, done)  # a task is finished when this file exists
    return result


def sweep(grid_path: str | os.PathLike, out: str, workers: int = 2,
          scheduler: str | None = None, progress: bool = True) -> dict:
    """Run every unfinished (cell, seed) of a grid and write ``table.md`` and ``table.json``.

    Args:
        grid_path: the grid file (module docstring).
        out: the sweep folder (created; a finished task in it is kept).
        workers: local Dask worker processes, one thread each (0: in this process).
        scheduler: address of an existing Dask scheduler (``workers`` is then unused).
        progress: a progress bar of tasks.

    Returns:
        The table (:func:`summarize`), with ``failed``: ``[(cell, seed, error), ...]``.

    Raises:
        GridError: the grid file cannot be run (before any task starts).
    """
    from tqdm.auto import tqdm

    grid = load_grid(grid_path)
    out = os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    tasks = [(cell, seed) for cell in grid.cells for seed in grid.seeds]
    results, failed = [], []
    todo = []
    for cell, seed in tasks:
        done = os.path.join(task_folder(out, cell, seed), "result.json")
        if os.path.exists(done):
            with open(done) as f:
                results.append(json.load(f))
        else:
            todo.append((cell, seed))
    bar = tqdm(total=len(tasks), initial=len(results), unit="task", desc="sweep",
               disable=not progress)
    if todo and workers == 0 and scheduler is None:
        for cell, seed in todo:
            try:
                results.append(run_task(grid, cell, seed, out, os.cpu_count() or 1))
            except Exception as error:  # noqa: BLE001 - one cell must not stop the sweep
                failed.append((cell.name, seed, f"{type(error).__name__}: {error}"))
            bar.update(1)
    elif todo:
        from dask.distributed import Client, LocalCluster, as_completed

        cluster = None if scheduler else LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
            silence_logs=50)
        client = Client(scheduler or cluster)
        try:
            futures = {client.submit(run_task, grid, cell, seed, out, 1, pure=False):
                       (cell, seed) for cell, seed in todo}
            for future in as_completed(futures):
                cell, seed = futures[future]
                try:
                    results.append(future.result())
                except Exception as error:  # noqa: BLE001
                    failed.append((cell.name, seed, f"{type(error).__name__}: {error}"))
                bar.update(1)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    bar.close()
    table = summarize(grid, results)
    table["failed"] = failed
    with open(os.path.join(out, "table.json"), "w") as f:
        json.dump(table, f, indent=1)
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(format_table(table))
    return table
