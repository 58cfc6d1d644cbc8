"""``tap-cli``: thin click commands, each calling one library function."""

from __future__ import annotations

import json
import os
import sys

import click

from tap3d import __version__


class _Commands(click.Group):
    """``tap-cli``: a failure of the storage under any command (a network error past the
    filesystem's retries, a full disk) ends it with one line naming the store, the key and the
    cause (:class:`tap3d.views.storage.StorageError`), exit status 1."""

    def invoke(self, ctx):
        from tap3d.views.storage import StorageError

        try:
            return super().invoke(ctx)
        except StorageError as error:
            raise click.ClickException(f"storage error: {error}") from None


@click.group(cls=_Commands)
@click.version_option(__version__, prog_name="tap-cli")
def main():
    """tap3d: multi-view datasets from meshes and Take-A-Photo pre-training."""


#: ``build-dataset``'s help for each :class:`tap3d.builder.BuildConfig` field. The option
#: (``--image-size`` for ``image_size``), its type, its choices (``tap3d.builder.plan.CHOICES``)
#: and the default shown come from the dataclass, so a new field needs one line here.
BUILD_HELP = {
    "views": "Views per object.",
    "layout": "View layout; auto: clip2point for 10 views, orthogonal for 6, mvcnn for 12, "
              "sphere otherwise.",
    "image_size": "Square image side, pixels.",
    "fov": "Vertical field of view, degrees (perspective).",
    "projection": "perspective (--fov) or orthographic: parallel rays (tap preset).",
    "fit": "Orthographic: share of the frame each view's projection of the object fills, as "
           "TAP's cal_scale_bias (0.893 = 200 of 224 px; tap preset); none: the unit sphere "
           "fills the frame.",
    "distance": "Camera distance, normalized object units (the farthest vertex at 1; "
                "CLIP2Point: twice the unit distance).",
    "points": "Surface points per object.",
    "shard_size": "Objects per Zarr shard.",
    "seed": "Base seed (each object's seed derives from it and the object id).",
    "device": "auto, cpu or cuda.",
    "backend": "Rasterizer: auto = pytorch3d on CUDA, embree (ray casting) on CPU.",
    "background": "Background colour, 3 numbers R G B in [0, 1].",
    "texture_atlas_size": "Texels per face side of --textures atlas.",
    "shading": "textured: HardPhongShader's model with the mesh's textures; plain: untextured "
               "light grey, ambient + diffuse (MVCNN).",
    "textures": "uv: each material's images at source resolution; atlas: PyTorch3D's per-face "
                "texture atlas (CLIP2Point parity).",
    "shader": "tap3d: shades covered pixels only; pytorch3d: HardPhongShader.",
    "obj_loader": "OBJ parser; pytorch3d (load_obj, needs --textures atlas) for comparison.",
    "preset": "Settings to start from; --config and explicit options override them.",
}


def _build_options(command):
    """Add one option per :class:`~tap3d.builder.BuildConfig` field to ``command``, each with
    default None (not given: the preset, the ``--config`` file or the dataclass decides)."""
    import dataclasses

    from tap3d.builder.plan import CHOICES, PRESETS, BuildConfig, field_type

    ordered = sorted(dataclasses.fields(BuildConfig), key=lambda f: f.name != "preset")
    for field in reversed(ordered):  # click lists the options in decorator order
        kind = field_type(field.name)
        flag = "--" + field.name.replace("_", "-")
        if field.name in CHOICES:
            kind = click.Choice(CHOICES[field.name])
        elif isinstance(kind, tuple):
            kind = click.Tuple(kind)
        elif kind is bool:
            flag = f"{flag}/--no-{flag[2:]}"
        if field.name == "preset":
            shown = "; ".join(f"{name}: " + ", ".join(f"{k} {v}" for k, v in settings.items())
                              for name, settings in PRESETS.items()) + "; default: none"
        else:
            default = field.default
            shown = "default: " + (" ".join(map(str, default)) if isinstance(default, tuple)
                                   else "none" if default is None else str(default))
        command = click.option(flag, field.name, type=kind, default=None,
                               help=f"{BUILD_HELP.get(field.name, '')} [{shown}]")(command)
    return command


@main.command("build-dataset")
@click.argument("source")
@click.option("-o", "--out", "--output", "output", required=True,
              help="Output Zarr path or fsspec URL.")
@click.option("--config", "config_path", default=None,
              help="YAML file of build settings (the options below, by field name: image_size: "
                   "64); it overrides --preset, explicit options override it.")
@_build_options
@click.option("--synsets", default=None,
              help="Comma-separated synset ids or taxonomy names (folder names for mesh folders).")
@click.option("--limit", default=None, type=int, help="At most this many objects per category.")
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
def build_dataset(source, output, config_path, synsets, limit, workers, scheduler, timeout,
                  memory_limit, overwrite, quiet, **settings):
    """Render SOURCE (ShapeNetCore v1/v2 root, mesh folder, or 'pybullet') into a Zarr dataset.

    Settings: the defaults, then --preset, then the --config file, then the options given.
    """
    from tap3d.builder import build
    from tap3d.builder.plan import load_build_config
    from tap3d.sources import SourceError

    try:
        config = load_build_config(config_path, **settings)
        summary = build(source, output, config,
                        synsets=[s for s in synsets.split(",") if s] if synsets else None,
                        limit=limit, workers=workers, scheduler=scheduler, overwrite=overwrite,
                        progress=not quiet, timeout=timeout, memory_limit=memory_limit)
    except (SourceError, FileExistsError, FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(summary.format())
    if summary.done == 0:
        sys.exit(1)


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
@click.option("--points", default=1024, show_default=True, type=click.Choice(["1024", "2048"]),
              help="Point folder: pointclouds/ (1024) or pointclouds_p2048/ (2048).")
@click.option("--skip-bad", is_flag=True,
              help="Record objects with a missing, unreadable or wrongly sized file as failed "
                   "and go on (default: stop at the first, naming the file).")
@click.option("--shard-size", default=64, show_default=True, help="Objects per Zarr shard.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def import_tap_command(root, output, points, skip_bad, shard_size, overwrite, quiet):
    """Turn the TAP authors' ROOT (ShapeNet55: pointclouds/ + shapenet55v1/) into a dataset."""
    from tap3d.importers import TapDataError, import_tap

    try:
        report = import_tap(root, output, points=int(points), skip_bad=skip_bad,
                            shard_size=shard_size, overwrite=overwrite, progress=not quiet)
    except (TapDataError, FileExistsError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(report.format())
    if report.done == 0:
        sys.exit(1)


#: ``--trust-checkpoint`` of every command that reads weights: the one way to read a file whose
#: pickle names types beyond tensors and numpy values (:func:`tap3d.train.weights.
#: load_torch_file`); without it such a file is refused, naming the file and the type.
trust_option = click.option(
    "--trust-checkpoint", "trust", is_flag=True,
    help="Read weights files even when they hold other objects than tensors, numbers, strings "
         "and numpy arrays: unpickling such a file runs any code it holds; only for files you "
         "trust (default: they are refused).")


@main.command("train")
@click.argument("dataset")
@click.option("-o", "--out", "--output", "out", required=True, help="Run folder.")
@click.option("--config", "config_path", default=None, help="YAML config (CLI options override).")
@click.option("--epochs", type=int, default=None)
@click.option("--max-steps", type=int, default=None)
@click.option("--batch-size", type=int, default=None)
@click.option("--grad-accumulation", type=int, default=None,
              help="Micro-batches per optimizer step (1).")
@click.option("--lr", type=float, default=None)
@click.option("--seed", type=int, default=None)
@click.option("--device", default=None, help="auto, cpu or cuda.")
@click.option("--points", type=int, default=None, help="Points per sample (1024).")
@click.option("--views-per-sample", type=int, default=None)
@click.option("--photograph-depth", type=int, default=None)
@click.option("--photograph-dim", type=int, default=None)
@click.option("--query", type=click.Choice(["ray", "tap", "rotation"]), default=None,
              help="Query tokens: ray (Plücker rays), tap (the authors' construction), rotation.")
@click.option("--generator-factor", type=click.Choice(["8", "16", "32"]), default=None,
              callback=lambda ctx, param, value: None if value is None else int(value),
              help="Generator upsampling; query grid = image size / factor (32).")
@click.option("--ray-frequencies", type=int, default=None,
              help="Frequencies of the ray queries' positional encoding (4; 0: raw rays).")
@click.option("--sampling", type=click.Choice(["random", "fps", "fixed"]), default=None,
              help="Point subsets: random, fps, or fixed (the same points every epoch).")
@click.option("--normalize", type=click.Choice(["unit_sphere", "none"]), default=None,
              help="Centre points on their centroid at unit radius (cameras follow), or not.")
@click.option("--eval-fraction", type=float, default=None,
              help="Fraction of objects held out from pre-training for evaluation (seeded).")
@click.option("--eval-every", type=int, default=None,
              help="Steps between evaluations (0: at the end only).")
@click.option("--eval-objects", type=int, default=None,
              help="Objects evaluated per split (16; 0: no evaluation).")
@click.option("--backbone", type=click.Choice(["pointmlp", "dgcnn", "pointnet2", "transformer"]),
              default=None, help="Backbone to pre-train (pointmlp).")
@click.option("--embed-dim", type=int, default=None,
              help="Backbone base width (64 in the authors' configs).")
@click.option("--num-workers", type=int, default=None, help="DataLoader workers.")
@click.option("--log-every", type=int, default=None, help="Steps between logs (10).")
@click.option("--checkpoint-every", type=int, default=None)
@click.option("--sample-every", type=int, default=None)
@click.option("--warmup-steps", type=int, default=None)
@click.option("--w-fg", type=float, default=None, help="Foreground loss weight (20).")
@click.option("--w-bg", type=float, default=None, help="Background loss weight (1).")
@click.option("--log-objects", is_flag=True, default=None,
              help="Log each step's object indices to RUN/objects/rank_R.jsonl.")
@click.option("--init", default=None,
              help="Start from this checkpoint's weights (fresh optimizer): a tap3d run or "
                   "checkpoint, the authors' *_ckpt_latest.pth (whole model) or *_clean.pth "
                   "(backbone).")
@click.option("--resume", is_flag=True, help="Continue from RUN/checkpoints/last.pt.")
@click.option("--stop-at", type=int, default=None,
              help="Checkpoint and exit after this step, as if pre-empted (--resume continues).")
@click.option("--quiet", is_flag=True)
@trust_option
def train_command(dataset, out, config_path, resume, stop_at, quiet, trust, **options):
    """Pre-train a backbone with TAP on DATASET (path or fsspec URL)."""
    from tap3d.train import load_config, train

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
@click.option("--quiet", is_flag=True, help="No progress bar.")
def verify_command(dataset, quiet):
    """Check DATASET (path or fsspec URL): format, shapes, dtypes, chunks, values, cameras.

    Prints a report; exits with status 1 on any defect.
    """
    from tap3d.views.verify import verify

    report = verify(dataset, progress=not quiet)
    click.echo(report.format())
    if not report.ok:
        raise SystemExit(1)


@main.command("export-backbone")
@click.argument("source")
@click.option("-o", "--out", "--output", "output", required=True, help="Output .pt file.")
@click.option("--format", "format_", default="tap3d", show_default=True,
              type=click.Choice(["tap3d", "openpoints"]),
              help="tap3d's backbone file, or the TAP authors' (openpoints) names in their "
                   "*_clean.pth layout.")
@click.option("--backbone", default=None, help="The backbone SOURCE must hold (default: any).")
@trust_option
def export_backbone_command(source, output, format_, backbone, trust):
    """Save the backbone of SOURCE alone: a run folder or checkpoint (train or finetune), a
    tap3d backbone file, or a checkpoint of the TAP authors' code (any of the four
    backbones)."""
    from tap3d.train.weights import WeightsError, export_backbone

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
    and the other configs/tap-*.yaml)."""
    from tap3d.train.weights import WeightsError, export_model

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
    from tap3d.train.weights import WeightsError
    from tap3d.evaluate.generate import generate
    from tap3d.train import load_config

    try:
        config = load_config(config_path) if config_path else None
        result = generate(checkpoint, dataset, output, sheet, config=config, device=device,
                          batch_size=batch_size, sheet_objects=sheet_objects, trust=trust)
    except (WeightsError, ValueError, FileNotFoundError, FileExistsError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{output}: {result['objects']} objects x {result['views']} views of "
               f"{result['image_size']} px ({result['origin']})"
               + (f"; sheet {result['sheet']}" if result["sheet"] else ""))


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


@main.command("finetune")
@click.argument("data")
@click.option("-o", "--out", "--output", "out", required=True, help="Run folder.")
@click.option("--task", default="classify", show_default=True,
              type=click.Choice(["classify", "partseg"]),
              help="classify: a class per cloud (ScanObjectNN, ModelNet40, tap3d); partseg: a "
                   "part per point (ShapeNetPart, tap3d datasets with part labels).")
@click.option("--config", "config_path", default=None,
              help="YAML config (configs/finetune-*.yaml, configs/partseg-*.yaml; CLI options "
                   "override).")
@click.option("--backbone-checkpoint", default=None,
              help="Run folder, tap3d backbone file or the authors' checkpoint (default: random "
                   "initialization).")
@click.option("--backbone", default=None, help="Backbone name (pointmlp).")
@click.option("--variant", default=None,
              type=click.Choice(["pb_t50_rs", "obj_bg", "obj_only"]), help="ScanObjectNN variant.")
@click.option("--test-fraction", type=float, default=None,
              help="Test share of a tap3d dataset without a split array (0.2).")
@click.option("--epochs", type=int, default=None)
@click.option("--max-steps", type=int, default=None)
@click.option("--batch-size", type=int, default=None)
@click.option("--lr", type=float, default=None)
@click.option("--seed", type=int, default=None)
@click.option("--device", default=None, help="auto, cpu or cuda.")
@click.option("--points", type=int, default=None, help="Points per sample (1024).")
@click.option("--sampling", type=click.Choice(["fps", "random"]), default=None,
              help="Classification: farthest-point (fps, the authors') or random subsets.")
@click.option("--rotation", type=click.Choice(["up", "so3"]), default=None,
              help="Classification: training rotation about the up axis (up, the authors') or "
                   "any rotation (so3); voting copies follow.")
@click.option("--mix", type=float, default=None,
              help="Classification: share of batches mixed by PointCutMix-R (0: none).")
@click.option("--votes", type=int, default=None,
              help="Classification: test-time voting over this many rotated copies at the end "
                   "(voted_oa in results.json; 0: none).")
@click.option("--embed-dim", type=int, default=None, help="Backbone embedding width.")
@click.option("--num-workers", type=int, default=None, help="DataLoader workers.")
@click.option("--log-every", type=int, default=None)
@click.option("--checkpoint-every", type=int, default=None)
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
    from tap3d.clouds import LabelledDataError, PartDataError
    from tap3d.train.weights import WeightsError
    from tap3d.train import finetune, load_finetune_config, load_partseg_config, segment

    if task == "partseg":
        load, run, summary = load_partseg_config, segment, format_part_scores
    else:
        load, run = load_finetune_config, finetune

        def summary(results):
            return (f"test OA best {results['best_oa']:.2f} (mAcc {results['best_macc']:.2f}, "
                    f"epoch {results['best_epoch']}), last {results['last_oa']:.2f} (mAcc "
                    f"{results['last_macc']:.2f})")
    try:
        config = load(config_path, **options)
        results = run(data, out, config, resume=resume, progress=not quiet, stop_at=stop_at,
                      trust=trust)
    except (LabelledDataError, PartDataError, WeightsError, ValueError,
            FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{out}: {results['epochs']} epochs, {results['steps']} steps; {summary(results)}")


@main.command("probe")
@click.argument("data")
@click.option("--backbone-checkpoint", default=None,
              help="Run folder, tap3d backbone file or the authors' checkpoint (default: random "
                   "initialization).")
@click.option("--backbone", default="pointmlp", show_default=True)
@click.option("--embed-dim", default=64, show_default=True, help="Width of a random backbone.")
@click.option("--few-shot", multiple=True, help="NwayKshot setting, e.g. 5way10shot (repeatable).")
@click.option("--few-shot-folds", default=None,
              help="Point-BERT's ModelNetFewshot folder (<N>way_<K>shot/<fold>.pkl): few-shot "
                   "scores on its fixed folds (every setting in it without --few-shot) instead "
                   "of seeded folds of DATA.")
@click.option("--folds", default=10, show_default=True, help="Few-shot folds (seeded).")
@click.option("--query", default=20, show_default=True,
              help="Few-shot test samples per class (seeded).")
@click.option("--points", default=1024, show_default=True, help="Points per cloud.")
@click.option("--svm-c", default=0.01, show_default=True, help="The linear SVM's C.")
@click.option("--variant", default="pb_t50_rs", show_default=True,
              type=click.Choice(["pb_t50_rs", "obj_bg", "obj_only"]), help="ScanObjectNN variant.")
@click.option("--test-fraction", default=0.2, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--json", "json_path", default=None, help="Write the results to this JSON file.")
@trust_option
def probe_command(data, backbone_checkpoint, backbone, embed_dim, few_shot, few_shot_folds,
                  folds, query, points, svm_c, variant, test_fraction, seed, device, json_path,
                  trust):
    """Linear SVM (and N-way K-shot) accuracy of frozen backbone features on DATA."""
    import json

    from tap3d.clouds import LabelledDataError
    from tap3d.train.weights import WeightsError
    from tap3d.evaluate import probe

    try:
        result = probe(data, backbone_checkpoint or "", backbone, embed_dim, few_shot, points,
                       folds, query, svm_c, seed, device, variant, test_fraction,
                       few_shot_files=few_shot_folds or "", trust=trust)
    except (LabelledDataError, WeightsError, ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{data}: linear SVM OA {result['svm_oa']:.2f} ({result['train']} train / "
               f"{result['test']} test)")
    for name, (mean, std) in result["few_shot"].items():
        source = "" if result["few_shot_source"] == "seeded" else f" of {few_shot_folds}"
        click.echo(f"  {name}: {mean:.1f} +- {std:.1f} ({result['few_shot_folds'][name]} "
                   f"folds{source})")
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
