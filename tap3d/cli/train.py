"""``tap-cli`` commands that train: ``train`` (TAP pre-training) and ``finetune``
(classification or part segmentation). Their setting options are made from the settings classes
(:mod:`tap3d.cli.options`)."""

from __future__ import annotations

import click

from tap3d.cli.group import main
from tap3d.cli.options import given, settings_options, trust_option
from tap3d.clouds import LabelledDataError, PartDataError
from tap3d.settings import load_settings
from tap3d.train import (FinetuneConfig, PartSegConfig, TrainConfig, finetune,
                         finetune_partseg, load_config, train)
from tap3d.train.weights import WeightsError

__all__ = ["format_class_scores", "format_part_scores", "TASKS"]


@main.command("train")
@click.argument("dataset")
@click.option("-o", "--out", "--output", "out", required=True, help="Run folder.")
@click.option("--config", "config_path", default=None, help="YAML config (CLI options override).")
@settings_options(TrainConfig)
@click.option("--resume", is_flag=True, help="Continue from RUN/checkpoints/last.pt.")
@click.option("--stop-at", type=int, default=None,
              help="Checkpoint and exit after this step, as if pre-empted (--resume continues).")
@click.option("--quiet", is_flag=True)
@trust_option
def train_command(dataset, out, config_path, resume, stop_at, quiet, trust, **options):
    """Pre-train a backbone with TAP on DATASET (path or fsspec URL)."""
    try:
        config = load_config(config_path, **options)
        last = train(dataset, out, config, resume=resume, progress=not quiet,
                     stop_at=stop_at, trust=trust)
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
    if last.get("step") is None:  # --resume of a run that had already reached its last step
        click.echo(f"{out}: already finished, nothing to train (its log: {out}/metrics.jsonl)")
    else:
        click.echo(f"{out}: step {last['step']} loss {last.get('loss', float('nan')):.4f}")


def format_part_scores(results: dict) -> str:
    """One line of a part-segmentation run's ``results.json``: instance and class mIoU (best,
    last, voted) against the per-category most-frequent-part baseline."""
    line = (f"test instance mIoU best {results['best_instance_miou']:.2f} (class mIoU "
            f"{results['best_class_miou']:.2f}, epoch {results['best_epoch']}), last "
            f"{results['last_instance_miou']:.2f} (class {results['last_class_miou']:.2f})")
    if "voted_instance_miou" in results:
        line += (f", best with {results['votes']} votes {results['voted_instance_miou']:.2f} "
                 f"(class {results['voted_class_miou']:.2f})")
    return line + f"; most-frequent-part baseline {results['baseline_instance_miou']:.2f}"


def format_class_scores(results: dict) -> str:
    """One line of a classification run's ``results.json``: best and last test OA/mAcc."""
    return (f"test OA best {results['best_oa']:.2f} (mAcc {results['best_macc']:.2f}, epoch "
            f"{results['best_epoch']}), last {results['last_oa']:.2f} (mAcc "
            f"{results['last_macc']:.2f})")


#: ``finetune --task``: each task's settings class, training function and summary line.
TASKS = {"classify": (FinetuneConfig, finetune, format_class_scores),
         "partseg": (PartSegConfig, finetune_partseg, format_part_scores)}


@main.command("finetune")
@click.argument("data")
@click.option("-o", "--out", "--output", "out", required=True, help="Run folder.")
@click.option("--task", default="classify", show_default=True,
              type=click.Choice(list(TASKS)),
              help="classify: a class per cloud (ScanObjectNN, ModelNet40, tap3d); partseg: a "
                   "part per point (ShapeNetPart, tap3d datasets with part labels).")
@click.option("--config", "config_path", default=None,
              help="YAML config (configs/finetune-*.yaml, configs/partseg-*.yaml; CLI options "
                   "override).")
@settings_options(FinetuneConfig, PartSegConfig)
@click.option("--resume", is_flag=True, help="Continue from RUN/checkpoints/last.pt.")
@click.option("--stop-at", type=int, default=None,
              help="Checkpoint and exit after this step, as if pre-empted (--resume continues).")
@click.option("--quiet", is_flag=True)
@trust_option
def finetune_command(data, out, task, config_path, resume, stop_at, quiet, trust, **options):
    """Fine-tune a backbone on DATA: for classification (--task classify: ScanObjectNN or
    ModelNet40 h5 folder, or a tap3d dataset; RUN/results.json has the best and last test
    OA/mAcc) or part segmentation (--task partseg: a ShapeNetPart folder or a tap3d dataset with
    part labels; instance/class mIoU, RUN/parts.png)."""
    settings, run, summary = TASKS[task]
    try:
        config = load_settings(settings, config_path, **given(settings, options, f"--task {task}"))
        results = run(data, out, config, resume=resume, progress=not quiet, stop_at=stop_at,
                      trust=trust)
    except (LabelledDataError, PartDataError, WeightsError, ValueError,
            FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{out}: {results['epochs']} epochs, {results['steps']} steps; {summary(results)}")
