"""Grids of experiments with seeds (``tap-cli sweep``): :mod:`tap3d.sweep.run` (tasks on Dask,
the module docstring has the grid file), :mod:`tap3d.sweep.grid` (grid files),
:mod:`tap3d.sweep.table` (the table)."""

from tap3d.sweep.grid import STAGES, Cell, Grid, GridError, load_grid, stage_settings
from tap3d.sweep.run import run_task, sweep, task_folder
from tap3d.sweep.table import format_table, metric_of, summarize

__all__ = ["STAGES", "Cell", "Grid", "GridError", "load_grid", "stage_settings", "run_task",
           "sweep", "task_folder", "format_table", "metric_of", "summarize"]
