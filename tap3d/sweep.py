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
from dataclasses import dataclass, field

import numpy as np

from tap3d.evaluate.probe import ProbeConfig, probe
from tap3d.settings import load_settings
from tap3d.train import (FinetuneConfig, TrainConfig, finetune, load_config,
                         load_finetune_config, train)

__all__ = ["STAGES", "Cell", "Grid", "GridError", "load_grid", "run_task", "sweep",
           "summarize", "format_table"]

#: The stages of a task, in order, and their settings classes.
STAGES = {"pretrain": TrainConfig, "finetune": FinetuneConfig, "probe": ProbeConfig}


class GridError(ValueError):
    """A grid file that cannot be run (the message names the file and what is wrong)."""


@dataclass(frozen=True)
class Cell:
    """One cell of a grid.

    Attributes:
        name: its name (``G4``, ``2 Layers / 128 Dims``).
        row, column: its row and column names in a rows x columns grid (else None).
        overrides: stage -> settings overrides of this cell.
    """

    name: str
    row: str | None
    column: str | None
    overrides: dict


@dataclass
class Grid:
    """A grid file, read (see the module docstring)."""

    path: str
    title: str
    data: dict
    configs: dict
    settings: dict
    seeds: list
    metric: str
    cells: list[Cell]
    rows: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)


def _merge(*layers: dict) -> dict:
    """Stage -> overrides, later layers winning key by key."""
    out: dict = {}
    for layer in layers:
        for stage, values in (layer or {}).items():
            out.setdefault(stage, {}).update(values or {})
    return out


def load_grid(path: str | os.PathLike) -> Grid:
    """Read and check a grid file: every cell's settings must load for every stage.

    Raises:
        GridError: unreadable YAML, a missing key, an unknown stage, or settings a stage
            refuses (file, cell and key named).
    """
    import yaml

    path = os.fspath(path)
    try:
        with open(path) as f:
            raw = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as error:
        raise GridError(f"{path}: {error}") from None
    folder = os.path.dirname(os.path.abspath(path))

    def local(value):
        return value if value is None or "://" in str(value) else \
            os.path.normpath(os.path.join(folder, str(value)))

    for key in ("data", "seeds"):
        if key not in raw:
            raise GridError(f"{path}: no {key!r}")
    if ("cells" in raw) == ("rows" in raw or "columns" in raw):
        raise GridError(f"{path}: give either cells or rows and columns")
    data = {stage: local(raw["data"].get(stage)) for stage in ("pretrain", "finetune")}
    if not all(data.values()):
        raise GridError(f"{path}: data needs pretrain and finetune")
    configs = {stage: local((raw.get("configs") or {}).get(stage)) for stage in STAGES}
    cells, rows, columns = [], [], []
    if "cells" in raw:
        cells = [Cell(str(name), None, None, values or {}) for name, values in
                 raw["cells"].items()]
    else:
        rows, columns = [str(r) for r in raw["rows"]], [str(c) for c in raw["columns"]]
        cells = [Cell(f"{r} / {c}", str(r), str(c),
                      _merge(raw["rows"][r], raw["columns"][c]))
                 for r in raw["rows"] for c in raw["columns"]]
    grid = Grid(path, str(raw.get("title", os.path.basename(path))), data, configs,
                raw.get("settings") or {}, [int(s) for s in raw["seeds"]],
                str(raw.get("metric", "finetune.best_oa")), cells, rows, columns)
    for cell in cells:
        unknown = set(cell.overrides) - set(STAGES)
        if unknown or set(grid.settings) - set(STAGES):
            raise GridError(f"{path}: cell {cell.name!r}: stages are {list(STAGES)}, got "
                            f"{sorted(unknown or set(grid.settings) - set(STAGES))}")
        try:
            stage_settings(grid, cell, grid.seeds[0])
        except (ValueError, FileNotFoundError) as error:
            raise GridError(f"{path}: cell {cell.name!r}: {error}") from None
    return grid


def stage_settings(grid: Grid, cell: Cell, seed: int) -> dict:
    """Stage -> its settings object for one task (config file < settings < cell < seed)."""
    values = _merge(grid.settings, cell.overrides)
    out = {}
    for stage, cls in STAGES.items():
        options = {**values.get(stage, {}), "seed": seed}
        if stage == "pretrain":
            out[stage] = load_config(grid.configs[stage], **options)
        elif stage == "finetune":
            out[stage] = load_finetune_config(grid.configs[stage], **options)
        else:
            out[stage] = load_settings(cls, grid.configs[stage], **options)
    return out


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
    p = settings["probe"]
    probed = probe(grid.data["finetune"], pre, p.backbone, p.embed_dim, p.few_shot, p.points,
                   p.folds, p.query, p.svm_c, p.seed, p.device, p.variant, p.test_fraction,
                   p.up_axis, p.batch_size, p.few_shot_folds, tsne=p.tsne)
    result = {"cell": cell.name, "seed": seed, "pretrain": pretrained, "finetune": tuned,
              "probe": probed, "seconds": time.perf_counter() - began}
    partial = done + ".partial"
    with open(partial, "w") as f:
        json.dump(result, f, indent=1, default=str)
    os.replace(partial, done)  # a task is finished when this file exists
    return result


def metric_of(result: dict, metric: str):
    """``STAGE.KEY`` of a task's result (None when absent)."""
    stage, _, key = metric.partition(".")
    value = (result.get(stage) or {}).get(key)
    return None if value is None else float(value)


def summarize(grid: Grid, results: list[dict]) -> dict:
    """The table: per cell the metric's ``mean``, ``std`` (over seeds, ddof 1; 0 for one),
    ``seeds`` finished, ``values``, ``seconds`` (mean per task) and ``settings`` (overrides)."""
    by_cell = {cell.name: [] for cell in grid.cells}
    for result in results:
        by_cell.setdefault(result["cell"], []).append(result)
    cells = {}
    for cell in grid.cells:
        done = sorted(by_cell[cell.name], key=lambda r: r["seed"])
        values = [metric_of(r, grid.metric) for r in done]
        values = [v for v in values if v is not None]
        cells[cell.name] = {
            "row": cell.row, "column": cell.column, "settings": cell.overrides,
            "seeds": [r["seed"] for r in done], "values": values,
            "mean": float(np.mean(values)) if values else None,
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0 if values else None,
            "seconds": float(np.mean([r["seconds"] for r in done])) if done else None}
    return {"title": grid.title, "metric": grid.metric, "seeds": grid.seeds,
            "grid": grid.path, "rows": grid.rows, "columns": grid.columns, "cells": cells}


def _entry(cell: dict, seeds: int) -> str:
    if cell["mean"] is None:
        return "not run"
    text = f"{cell['mean']:.1f} +- {cell['std']:.1f}"
    return text if len(cell["seeds"]) == seeds else f"{text} ({len(cell['seeds'])}/{seeds} seeds)"


def format_table(table: dict) -> str:
    """Markdown in the layout of the TAP supplement's tables: rows x columns (Table 1a), or one
    column per cell with a line per overridden setting (Table 1b); then the wall time."""
    seeds, cells = len(table["seeds"]), table["cells"]
    lines = [f"**{table['title']}**: {table['metric']}, mean +- std over seeds "
             f"{table['seeds']}", ""]
    if table["rows"]:
        lines.append("| | " + " | ".join(table["columns"]) + " |")
        lines.append("|---" * (len(table["columns"]) + 1) + "|")
        for row in table["rows"]:
            entries = [_entry(cells[f"{row} / {c}"], seeds) for c in table["columns"]]
            lines.append(f"| {row} | " + " | ".join(entries) + " |")
        lines += ["", "Mean wall time per task (s): " + ", ".join(
            f"{name} {cell['seconds']:.0f}" for name, cell in cells.items()
            if cell["seconds"] is not None)]
        return "\n".join(lines) + "\n"
    names = list(cells)
    lines.append("| Model | " + " | ".join(names) + " |")
    lines.append("|---" * (len(names) + 1) + "|")
    keys = sorted({(stage, key) for cell in cells.values()
                   for stage, values in cell["settings"].items() for key in values})
    for stage, key in keys:
        values = [cells[n]["settings"].get(stage, {}).get(key, "") for n in names]
        lines.append(f"| {key} | " + " | ".join(map(str, values)) + " |")
    lines.append(f"| {table['metric']} | " + " | ".join(_entry(cells[n], seeds)
                                                        for n in names) + " |")
    lines.append("| wall time per task (s) | " + " | ".join(
        "" if cells[n]["seconds"] is None else f"{cells[n]['seconds']:.0f}" for n in names)
        + " |")
    return "\n".join(lines) + "\n"


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
