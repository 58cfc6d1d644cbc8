"""Does pre-training help? A random backbone against a pre-trained one on the same labelled data,
beside a classical baseline that learns no features.

    .venv/bin/python benchmarks/transfer.py [DATA] [--robot-parts part] \\
        [--backbone-checkpoint RUN_OR_FILE] [--config configs/finetune-cpu.yaml] \\
        [--steps 240] [--seeds 0 1 2] [--few-shot 5way10shot] [--query 20]

DATA is a labelled dataset (ScanObjectNN / ModelNet40 h5, tap3d); ``--robot-parts part`` (or
``robot``) builds instead, per seed, the category-level set of :mod:`tap3d.clouds.robot_parts`
(real link meshes of pybullet_data's robots, test meshes unseen, PB_T50_RS-like scans; the seed
draws the split and the scans). Rows, each with its wall time, per seed, then mean +- std:

- ``descriptors + forest`` / ``descriptors + RBF SVM``: :mod:`tap3d.evaluate.descriptors`;
- ``random`` (seeded) and ``pre-trained`` (``--backbone-checkpoint``; the random backbone then
  has its architecture, else the config's): the linear SVM's test OA on frozen features
  (``tap-cli probe``), the N-way K-shot accuracy (mean over 10 folds), and a short fine-tune
  (``tap-cli finetune`` with ``--config``, at most ``--steps`` steps): best and last test OA and
  the training OA at the end.

Prints a Markdown table headed with the data and its kind (instance- or category-level);
``--json`` keeps the rows. Accuracies in percent. On CPU, set ``OMP_NUM_THREADS=1`` on 2 shared
cores.

``--task partseg`` (DATA a ShapeNetPart folder or a tap3d dataset with part labels, ``--config``
default ``configs/partseg-cpu.yaml``): per initialization, a short part-segmentation fine-tune
(``tap-cli finetune --task partseg``, at most ``--steps`` steps) on the same data and steps:
best / last / voted test instance mIoU, class mIoU, the most-frequent-part baseline, the tensors
of the checkpoint not loaded, wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import numpy as np
from timing import timed

#: table columns -> row keys
COLUMNS = {"descriptors OA": "descriptor_oa", "fine-tune best OA": "best_oa", "last OA": "last_oa",
           "voted OA": "voted_oa", "train OA": "train_oa", "steps": "steps", "s": "seconds"}


def _classical_rows(data: str, seed: int, variant: str) -> list[dict]:
    from tap3d.evaluate.descriptors import classical_baseline

    rows = []
    for name, label in (("forest", "descriptors + forest"), ("svm", "descriptors + RBF SVM")):
        run = timed(lambda: classical_baseline(data, [name], variant, seed)[name])
        rows.append({"init": label, "descriptor_oa": run.result, "seconds": run.min})
    return rows


def _learned_row(name: str, data: str, checkpoint: str, architecture: dict, seed: int,
                 args) -> dict:
    from tap3d.evaluate import ProbeConfig, probe
    from tap3d.train import finetune, load_finetune_config

    config = load_finetune_config(args.config, max_steps=args.steps, points=args.points,
                                  backbone_checkpoint=checkpoint, seed=seed, device=args.device,
                                  variant=args.variant, **architecture)
    probed = timed(lambda: probe(data, ProbeConfig(
        backbone_checkpoint=checkpoint, backbone=config.backbone, embed_dim=config.embed_dim,
        few_shot=args.few_shot, points=config.points, query=args.query, seed=seed,
        device=args.device, variant=args.variant)))
    tuned = timed(lambda: finetune(data, os.path.join(args.out, f"{name}-{seed}"), config,
                                   progress=False))
    return {"init": name, "svm_oa": probed.result["svm_oa"],
            **{s: probed.result["few_shot"][s][0] for s in args.few_shot},
            "seconds": probed.min + tuned.min, **tuned.result}


def _partseg_row(name: str, data: str, checkpoint: str, weights, seed: int, args) -> dict:
    from tap3d.train import finetune_partseg, load_partseg_config

    config = load_partseg_config(args.config, backbone=weights.backbone, max_steps=args.steps,
                                 embed_dim=weights.kwargs.get("embed_dim"), points=args.points,
                                 backbone_checkpoint=checkpoint, seed=seed,
                                 device=args.device)
    tuned = timed(lambda: finetune_partseg(data, os.path.join(args.out, name), config,
                                           progress=False))
    not_loaded = json.load(open(os.path.join(args.out, name, "results.json")))[
        "backbone_not_loaded"]
    return {"init": name, "finetune_s": tuned.min, "not_loaded": len(not_loaded),
            **tuned.result}


def _partseg_table(rows: list[dict]) -> str:
    head = ["init", "best instance mIoU", "best class mIoU", "last instance mIoU",
            "voted instance mIoU", "baseline", "steps", "not loaded", "fine-tune s"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        voted = f"{r['voted_instance_miou']:.1f}" if "voted_instance_miou" in r else "-"
        lines.append("| " + " | ".join([
            r["init"], f"{r['best_instance_miou']:.1f}", f"{r['best_class_miou']:.1f}",
            f"{r['last_instance_miou']:.1f}", voted, f"{r['baseline_instance_miou']:.1f}",
            str(r["steps"]), str(r["not_loaded"]), f"{r['finetune_s']:.0f}"]) + " |")
    return "\n".join(lines)


def _cell(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return ""
    if len(set(values)) == 1:
        return f"{values[0]:g}" if isinstance(values[0], int) else f"{values[0]:.1f}"
    return f"{np.mean(values):.1f} +- {np.std(values):.1f}"


def table(rows: list[dict], few_shot: list[str]) -> str:
    """Markdown: one line per ``init``, each cell the mean +- std over the seeds' rows."""
    columns = {"SVM OA": "svm_oa", **{s: s for s in few_shot}, **COLUMNS}
    columns = {name: key for name, key in columns.items() if any(key in r for r in rows)}
    names = list(dict.fromkeys(r["init"] for r in rows))
    seeds = sorted({r["seed"] for r in rows})
    lines = [f"| init ({len(seeds)} seeds) | " + " | ".join(columns) + " |",
             "|" + " --- |" * (len(columns) + 1)]
    for name in names:
        mine = [r for r in rows if r["init"] == name]
        lines.append(f"| {name} | " + " | ".join(_cell([r.get(key) for r in mine])
                                                  for key in columns.values()) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", help="labelled point clouds (ScanObjectNN, "
                        "ModelNet40 h5, tap3d); not with --robot-parts")
    parser.add_argument("--robot-parts", choices=("part", "robot", "part_large"), default=None,
                        help="build the category-level robot-part set per seed (labelling)")
    parser.add_argument("--train-per-class", type=int, default=200)
    parser.add_argument("--test-per-class", type=int, default=32)
    parser.add_argument("--backbone-checkpoint", default="",
                        help="pre-trained run folder, tap3d backbone file or authors' checkpoint")
    parser.add_argument("--task", default="classify", choices=["classify", "partseg"])
    parser.add_argument("--config", default=None,
                        help="default: configs/finetune-cpu.yaml (partseg: partseg-cpu.yaml)")
    parser.add_argument("--steps", type=int, default=240, help="fine-tuning steps per row")
    parser.add_argument("--points", type=int, default=None, help="default: the config's")
    parser.add_argument("--few-shot", action="append", default=None,
                        help="NwayKshot (repeatable; default 5way10shot)")
    parser.add_argument("--query", type=int, default=20, help="few-shot test samples per class")
    parser.add_argument("--variant", default="pb_t50_rs",
                        help="ScanObjectNN variant of DATA; with --robot-parts, the scans' "
                        "(pb_t50_rs or obj_only)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=None, help="run folders and built sets (default: a "
                        "temporary folder)")
    parser.add_argument("--json", default=None, help="write the rows here")
    parser.add_argument("--kind", default="", help="what DATA is, for the table's heading "
                        "(instance-level: one mesh per class; category-level: several)")
    args = parser.parse_args()
    if (args.data is None) == (args.robot_parts is None):
        parser.error("give DATA or --robot-parts, not both")
    args.few_shot = args.few_shot or ["5way10shot"]
    args.config = args.config or ("configs/partseg-cpu.yaml" if args.task == "partseg"
                                  else "configs/finetune-cpu.yaml")

    from tap3d.train.weights import load_backbone_weights

    if args.task == "partseg":  # random against pre-trained, the same data and steps
        if not args.backbone_checkpoint or not args.data:
            parser.error("--task partseg needs DATA and --backbone-checkpoint")
        weights = load_backbone_weights(args.backbone_checkpoint)
        with tempfile.TemporaryDirectory() as scratch:
            args.out = args.out or scratch
            rows = [_partseg_row(init, args.data, checkpoint, weights, seed, args)
                    for seed in args.seeds
                    for init, checkpoint in (("random", ""),
                                             ("pre-trained", args.backbone_checkpoint))]
        print(f"{args.data}: {weights.backbone} {weights.kwargs}, pre-trained: "
              f"{args.backbone_checkpoint} ({weights.origin}, step {weights.step})")
        print(_partseg_table(rows))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
        return
    architecture = {}
    if args.backbone_checkpoint:
        weights = load_backbone_weights(args.backbone_checkpoint)
        weights.build()  # fails early, naming the file, when it does not fit
        architecture = {"backbone": weights.backbone,
                        "embed_dim": weights.kwargs.get("embed_dim")}
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        args.out = args.out or scratch
        for seed in args.seeds:
            data = args.data
            if args.robot_parts:
                from tap3d.clouds.robot_parts import robot_part_clouds, write_robot_parts

                data = write_robot_parts(
                    os.path.join(args.out, f"robot-parts-{args.robot_parts}-{seed}"),
                    robot_part_clouds(labels=args.robot_parts, seed=seed,
                                      train_per_class=args.train_per_class,
                                      test_per_class=args.test_per_class,
                                      variant=args.variant))
            found = _classical_rows(data, seed, args.variant)
            found.append(_learned_row("random", data, "", architecture, seed, args))
            if args.backbone_checkpoint:
                found.append(_learned_row("pre-trained", data, args.backbone_checkpoint,
                                          architecture, seed, args))
            rows += [{**r, "seed": seed, "data": data} for r in found]
    kind = (f"category-level: robot parts labelled by {args.robot_parts}, test meshes unseen, "
            f"{args.variant} scans"
            if args.robot_parts else args.kind or "kind not given (--kind)")
    print(f"{args.data or 'robot parts'} ({kind}); config {args.config}, at most {args.steps} "
          f"fine-tuning steps; pre-trained: {args.backbone_checkpoint or 'none'}")
    print(table(rows, args.few_shot))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
