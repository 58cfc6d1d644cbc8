"""The table of a sweep (:mod:`tap3d.sweep`): mean +- std per cell over the seeds, in the
layout of the TAP supplement's Tables 1a and 1b."""

from __future__ import annotations

import numpy as np

from tap3d.sweep.grid import Grid

__all__ = ["metric_of", "summarize", "format_table"]


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


