"""``tap-cli sweep``: a grid of settings x seeds through pre-training, fine-tuning and the
probe, on Dask (:mod:`tap3d.sweep`)."""

from __future__ import annotations

import click

from tap3d.cli.group import main
from tap3d.sweep import GridError, format_table, sweep

__all__ = ["sweep_command"]


@main.command("sweep")
@click.argument("grid")
@click.option("-o", "--out", "--output", "output", required=True,
              help="Sweep folder: cells/<cell>/seed_<s>/, table.md, table.json; finished "
                   "tasks in it are kept.")
@click.option("--workers", default=2, show_default=True,
              help="Local Dask worker processes, one task each at a time (0: in process).")
@click.option("--scheduler", default=None, help="Address of an existing Dask scheduler.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def sweep_command(grid, output, workers, scheduler, quiet):
    """Run every cell x seed of GRID (YAML: docs/sweeps.md) and write its table."""
    try:
        table = sweep(grid, output, workers, scheduler, progress=not quiet)
    except (GridError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(format_table(table))
    for cell, seed, error in table["failed"]:
        click.echo(f"FAILED {cell} seed {seed}: {error}", err=True)
    if table["failed"]:
        raise SystemExit(1)
