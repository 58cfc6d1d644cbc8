"""``tap-cli`` commands that use trained weights: ``export-backbone``, ``export-model``,
``generate`` and ``probe``."""

from __future__ import annotations

import json

import click

from tap3d.cli.group import main
from tap3d.cli.options import settings_options, trust_option
from tap3d.clouds import LabelledDataError
from tap3d.evaluate.generate import generate
from tap3d.evaluate.probe import ProbeConfig, probe
from tap3d.settings import load_settings
from tap3d.train import load_config
from tap3d.train.weights import EXPORT_FORMATS, WeightsError, export_backbone, export_model

__all__: list[str] = []


@main.command("export-backbone")
@click.argument("source")
@click.option("-o", "--out", "--output", "output", required=True, help="Output .pt file.")
@click.option("--format", "format_", default="tap3d", show_default=True,
              type=click.Choice(EXPORT_FORMATS),
              help="tap3d's backbone file, or the TAP authors' (openpoints) names in their "
                   "*_clean.pth layout.")
@click.option("--backbone", default=None, help="The backbone SOURCE must hold (default: any).")
@trust_option
def export_backbone_command(source, output, format_, backbone, trust):
    """Save the backbone of SOURCE alone: a run folder or checkpoint (train or finetune), a
    tap3d backbone file, or a checkpoint of the TAP authors' code (any of the four
    backbones)."""

    try:
        weights = export_backbone(source, output, format_, backbone, trust=trust)
    except (WeightsError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
    step = f" at step {weights.step}" if weights.step is not None else ""
    dropped = f"; left out {', '.join(weights.dropped)}" if weights.dropped else ""
    click.echo(f"{output}: {weights.backbone} ({weights.origin}{step}) in {format_} naming, "
               f"{len(weights.state_dict)} tensors{dropped}")


@main.command("export-model")
@click.argument("source")
@click.option("-o", "--out", "--output", "output", required=True, help="Output .pth file.")
@trust_option
def export_model_command(source, output, trust):
    """Save a pre-training run or checkpoint SOURCE as the TAP authors' *_ckpt_latest.pth
    (encoder., generator., decoder.); the model must have their structure (configs/tap-public.yaml
    and its tap-dgcnn, tap-pointnet2 and tap-transformer versions)."""

    try:
        weights = export_model(source, output, trust=trust)
    except (WeightsError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{output}: TAP model with {weights.backbone} ({weights.origin}) in the authors' "
               f"ckpt layout, {len(weights.state_dict)} tensors")


@main.command("generate")
@click.argument("checkpoint")
@click.argument("dataset")
@click.option("-o", "--out", "--output", "output", required=True, help="Zarr group to write.")
@click.option("--sheet", default=None, help="Also write a generated-over-target PNG.")
@click.option("--sheet-objects", default=8, show_default=True, help="Objects on the sheet.")
@click.option("--config", "config_path", default=None,
              help="YAML config of the model and inputs (default: the checkpoint's; for the "
                   "authors' checkpoints their architecture).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--batch-size", default=4, show_default=True, help="Objects per forward pass.")
@trust_option
def generate_command(checkpoint, dataset, output, sheet, sheet_objects, config_path, device,
                     batch_size, trust):
    """Generate every stored view of DATASET's objects with CHECKPOINT's TAP model (a tap3d run
    or checkpoint, or the authors' *_ckpt_latest.pth), without augmentation."""

    try:
        config = load_config(config_path) if config_path else None
        result = generate(checkpoint, dataset, output, sheet, config=config, device=device,
                          batch_size=batch_size, sheet_objects=sheet_objects, trust=trust)
    except (WeightsError, ValueError, FileNotFoundError, FileExistsError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{output}: {result['objects']} objects x {result['views']} views of "
               f"{result['image_size']} px ({result['origin']})"
               + (f"; sheet {result['sheet']}" if result["sheet"] else ""))


@main.command("probe")
@click.argument("data")
@click.option("--config", "config_path", default=None,
              help="YAML file of probe settings (the options below, by field name); explicit "
                   "options override it.")
@settings_options(ProbeConfig)
@click.option("--json", "json_path", default=None, help="Write the results to this JSON file.")
@trust_option
def probe_command(data, config_path, json_path, trust, **options):
    """Linear SVM (and N-way K-shot) accuracy of frozen backbone features on DATA."""
    try:
        config = load_settings(ProbeConfig, config_path, **options)
        result = probe(data, config, trust=trust)
    except (LabelledDataError, WeightsError, ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{data}: linear SVM OA {result['svm_oa']:.2f} ({result['train']} train / "
               f"{result['test']} test)")
    for name, (mean, std) in result["few_shot"].items():
        source = "" if result["few_shot_source"] == "seeded" else f" of {config.few_shot_folds}"
        click.echo(f"  {name}: {mean:.1f} +- {std:.1f} ({result['few_shot_folds'][name]} "
                   f"folds{source})")
    if "tsne" in result:
        scores = ", ".join(f"{k} {v:.2f}" for k, v in result["tsne"]["silhouette"].items())
        click.echo(f"  t-SNE of the test features: {result['tsne']['file']} (silhouette: "
                   f"{scores})")
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=1)
