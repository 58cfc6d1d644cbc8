"""``tap-cli`` commands of the dataset: ``build-dataset``, ``preview``, ``import-tap``,
``inspect`` and ``verify``."""

from __future__ import annotations

import json
import os
import sys

import click

from tap3d.buildconfig import PRESETS, BuildConfig
from tap3d.cli.group import main
from tap3d.cli.options import settings_options
from tap3d.cli.train import format_part_scores
from tap3d.importers import POINT_FOLDERS, TapDataError, import_tap

def _build_options(command):
    """One option per :class:`~tap3d.buildconfig.BuildConfig` field (:func:`settings_options`);
    ``--preset``'s help lists the presets' settings."""
    command = settings_options(BuildConfig)(command)
    for param in command.__click_params__:
        if param.name == "preset":
            shown = "[" + "; ".join(f"{name}: " + ", ".join(f"{k} {v}" for k, v in
                                                           values.items())
                                    for name, values in PRESETS.items()) + "; default: none]"
            param.help = f"{param.help[:param.help.rindex('[')]}{shown}"
    return command


def _finish(report) -> None:
    """Print a build's or an import's summary; exit with status 1 when no object was done."""
    click.echo(report.format())
    if report.done == 0:
        sys.exit(1)


@main.command("build-dataset")
@click.argument("source")
@click.option("-o", "--out", "--output", "output", required=True,
              help="Output Zarr path or fsspec URL.")
@click.option("--config", "config_path", default=None,
              help="YAML file of build settings (the options below, by field name: image_size: "
                   "64); it overrides --preset, explicit options override it.")
@_build_options
@click.option("--synsets", default=None,
              help="Comma-separated synset ids or taxonomy names (LVIS names for Objaverse, "
                   "folder names for mesh folders).")
@click.option("--limit", default=None, type=int, help="At most this many objects per category.")
@click.option("--objects", "objects_file", default=None, metavar="FILE",
              help="Text file of object ids, one per line (blank lines and # comments "
                   "skipped): build only these (before --limit).")
@click.option("--workers", default=None, type=int,
              help="Local Dask worker processes (default: one per core; 0: no Dask).")
@click.option("--scheduler", default=None, help="Address of an existing Dask scheduler.")
@click.option("--timeout", default=600.0, show_default=True,
              help="Seconds per object before its Dask worker is ended (retried once, then the "
                   "object is recorded as failed).")
@click.option("--memory-limit", default=None,
              help="Memory per Dask worker, e.g. 4GiB (default: system memory / workers).")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing output (default: resume it when the settings match).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def build_dataset(source, output, config_path, synsets, limit, objects_file, workers, scheduler,
                  timeout, memory_limit, overwrite, quiet, **settings):
    """Render SOURCE (ShapeNetCore v1/v2 root, ModelNet, Objaverse 1.0, mesh folder, or
    'pybullet') into a Zarr dataset.

    Settings: the defaults, then --preset, then the --config file, then the options given.
    """
    from tap3d.builder import build
    from tap3d.buildconfig import load_build_config
    from tap3d.sources import SourceError

    try:
        config = load_build_config(config_path, **settings)
        summary = build(source, output, config,
                        synsets=[s for s in synsets.split(",") if s] if synsets else None,
                        limit=limit, objects=objects_file, workers=workers, scheduler=scheduler,
                        overwrite=overwrite, progress=not quiet, timeout=timeout,
                        memory_limit=memory_limit)
    except (SourceError, FileExistsError, FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    _finish(summary)


@main.command("preview")
@click.argument("dataset")
@click.option("-o", "--out", "--output", "output", required=True, help="PNG file to write.")
@click.option("--objects", default=8, show_default=True, help="Rows (objects) in the sheet.")
def preview(dataset, output, objects):
    """Write a contact sheet (objects x views) of DATASET's RGB views."""
    from tap3d.views.pictures import contact_sheet

    try:
        sheet = contact_sheet(dataset, output, objects=objects)
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{output}: {sheet.shape[1]} x {sheet.shape[0]} pixels")


@main.command("import-tap")
@click.argument("root")
@click.option("-o", "--out", "--output", "output", required=True,
              help="Output Zarr path or fsspec URL.")
@click.option("--points", default=1024, show_default=True,
              type=click.Choice([str(n) for n in POINT_FOLDERS]),
              help="Point folder: pointclouds/ (1024) or pointclouds_p2048/ (2048).")
@click.option("--skip-bad", is_flag=True,
              help="Record objects with a missing, unreadable or wrongly sized file as failed "
                   "and go on (default: stop at the first, naming the file).")
@click.option("--shard-size", default=64, show_default=True, help="Objects per Zarr shard.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def import_tap_command(root, output, points, skip_bad, shard_size, overwrite, quiet):
    """Turn the TAP authors' ROOT (ShapeNet55: pointclouds/ + shapenet55v1/) into a dataset."""

    try:
        report = import_tap(root, output, points=int(points), skip_bad=skip_bad,
                            shard_size=shard_size, overwrite=overwrite, progress=not quiet)
    except (TapDataError, FileExistsError) as error:
        raise click.ClickException(str(error)) from None
    _finish(report)


@main.command("inspect")
@click.argument("path")
@click.option("-o", "--out", "--output", "output", default=None,
              help="PNG to write (default: inspect.png next to a run, none for a dataset).")
@click.option("--objects", default=3, show_default=True, help="Objects in a dataset's sheet.")
@click.option("--cameras", "cameras_png", default=None,
              help="Also write the camera plot of the first object alone to this PNG.")
def inspect_command(path, output, objects, cameras_png):
    """Summarize a dataset (and draw views + cameras), or a training run (loss curves +
    the latest generated views)."""
    from tap3d.train import runfolder
    from tap3d.views import pictures, summary

    try:
        if runfolder.is_run_folder(path):
            output = output or os.path.join(path, "inspect.png")
            result = runfolder.run_sheet(path, output)
            last = result["last"] or {}
            parts = (f" (fg {last['loss_fg']:.4f}, bg {last['loss_bg']:.4f})"
                     if "loss_fg" in last and "loss_bg" in last else "")
            click.echo(f"{path}: {result['steps']} logged steps, last step {last.get('step')}: "
                       f"loss {last.get('loss', float('nan')):.4f}{parts}")
            if result["eval"]:
                click.echo(runfolder.format_evaluation(result["eval"]))
            scores = os.path.join(path, "results.json")
            if os.path.isfile(scores):
                with open(scores) as f:
                    results = json.load(f)
                if "best_instance_miou" in results:
                    click.echo(f"part segmentation: {format_part_scores(results)}"
                               + (f" (parts: {os.path.join(path, 'parts.png')})"
                                  if os.path.isfile(os.path.join(path, "parts.png")) else ""))
            click.echo(f"wrote {output}" + (f" (samples: {result['sample']})"
                                              if result["sample"] else ""))
            return
        click.echo(summary.format_summary(summary.summarize(path)))
        if output:
            sheet = pictures.dataset_sheet(path, output, objects=objects)
            click.echo(f"wrote {output} ({sheet['size'][0]} x {sheet['size'][1]})")
        if cameras_png:
            click.echo(f"wrote {pictures.camera_plot(path, cameras_png)}")
    except (ValueError, FileNotFoundError, KeyError) as error:
        raise click.ClickException(f"{path}: {error}") from None


@main.command("verify")
@click.argument("dataset")
@click.option("--workers", default=0, show_default=True, type=click.IntRange(min=0),
              help="Check the shards on a local Dask cluster of this many worker processes "
                   "(one task per shard; 0: in this process).")
@click.option("--scheduler", default=None,
              help="Address of an existing Dask scheduler to check the shards on.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def verify_command(dataset, workers, scheduler, quiet):
    """Check DATASET (path or fsspec URL): format, shapes, dtypes, chunks, values, cameras.

    Prints a report; exits with status 1 on any defect.
    """
    from tap3d.views.verify import verify

    report = verify(dataset, progress=not quiet, workers=workers, scheduler=scheduler)
    click.echo(report.format())
    if not report.ok:
        raise SystemExit(1)
