"""Grid files of :mod:`tap3d.sweep`: read, checked, and each task's settings."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from tap3d.evaluate.probe import ProbeConfig
from tap3d.settings import load_settings
from tap3d.train import FinetuneConfig, TrainConfig, load_config, load_finetune_config

__all__ = ["STAGES", "Cell", "Grid", "GridError", "load_grid", "stage_settings"]

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


