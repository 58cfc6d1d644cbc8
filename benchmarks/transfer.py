"""Does pre-training help? A random backbone against a pre-trained one on the same labelled data.

    .venv/bin/python benchmarks/transfer.py DATA --backbone-checkpoint RUN_OR_FILE \\
        [--config configs/finetune-cpu.yaml] [--steps 240] [--few-shot 5way10shot] [--query 20]

For each initialization (random, seeded; the checkpoint's backbone): the linear SVM's test OA on
frozen features (``tap-cli probe``), the N-way K-shot accuracy (mean +- std over 10 folds), and a
short fine-tune (``tap-cli finetune`` with ``--config``, at most ``--steps`` steps): best and last
test OA and the training OA at the end, with the wall time of each. The random backbone has the
checkpoint's architecture (name and width). Prints a Markdown table; ``--json`` keeps the rows.
Accuracies in percent. On CPU, set ``OMP_NUM_THREADS=1`` on 2 shared cores.

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
import time


def _row(name: str, data: str, checkpoint: str, weights, args) -> dict:
    from tap3d.evaluate import probe
    from tap3d.train import finetune, load_finetune_config

    began = time.perf_counter()
    probed = probe(data, checkpoint, weights.backbone, weights.kwargs.get("embed_dim", 64),
                   args.few_shot, args.points or load_finetune_config(args.config).points,
                   query=args.query, seed=args.seed, device=args.device, variant=args.variant)
    probe_seconds = time.perf_counter() - began
    config = load_finetune_config(args.config, backbone=weights.backbone, max_steps=args.steps,
                                  embed_dim=weights.kwargs.get("embed_dim"), points=args.points,
                                  backbone_checkpoint=checkpoint, seed=args.seed,
                                  device=args.device, variant=args.variant)
    began = time.perf_counter()
    tuned = finetune(data, os.path.join(args.out, name), config, progress=False)
    return {"init": name, "svm_oa": probed["svm_oa"], "few_shot": probed["few_shot"],
            "probe_s": probe_seconds, "finetune_s": time.perf_counter() - began, **tuned}


def _partseg_row(name: str, data: str, checkpoint: str, weights, args) -> dict:
    from tap3d.train import load_partseg_config, segment

    config = load_partseg_config(args.config, backbone=weights.backbone, max_steps=args.steps,
                                 embed_dim=weights.kwargs.get("embed_dim"), points=args.points,
                                 backbone_checkpoint=checkpoint, seed=args.seed,
                                 device=args.device)
    began = time.perf_counter()
    tuned = segment(data, os.path.join(args.out, name), config, progress=False)
    not_loaded = json.load(open(os.path.join(args.out, name, "results.json")))[
        "backbone_not_loaded"]
    return {"init": name, "finetune_s": time.perf_counter() - began,
            "not_loaded": len(not_loaded), **tuned}


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


def _table(rows: list[dict], settings: list[str]) -> str:
    head = ["init", "SVM OA"] + settings + ["fine-tune best OA", "last OA", "train OA",
                                            "steps", "probe s", "fine-tune s"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        shots = [f"{r['few_shot'][s][0]:.1f} +- {r['few_shot'][s][1]:.1f}" for s in settings]
        lines.append("| " + " | ".join([r["init"], f"{r['svm_oa']:.1f}", *shots,
                                        f"{r['best_oa']:.1f}", f"{r['last_oa']:.1f}",
                                        f"{r['train_oa']:.1f}", str(r["steps"]),
                                        f"{r['probe_s']:.0f}", f"{r['finetune_s']:.0f}"]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="labelled point clouds (ScanObjectNN, ModelNet40 h5, tap3d)")
    parser.add_argument("--backbone-checkpoint", required=True,
                        help="pre-trained run folder, tap3d backbone file or authors' checkpoint")
    parser.add_argument("--task", default="classify", choices=["classify", "partseg"])
    parser.add_argument("--config", default=None,
                        help="default: configs/finetune-cpu.yaml (partseg: partseg-cpu.yaml)")
    parser.add_argument("--steps", type=int, default=240, help="fine-tuning steps per row")
    parser.add_argument("--points", type=int, default=None, help="default: the config's")
    parser.add_argument("--few-shot", action="append", default=None,
                        help="NwayKshot (repeatable; default 5way10shot)")
    parser.add_argument("--query", type=int, default=20, help="few-shot test samples per class")
    parser.add_argument("--variant", default="pb_t50_rs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=None, help="run folders (default: a temporary folder)")
    parser.add_argument("--json", default=None, help="write the rows here")
    args = parser.parse_args()
    args.few_shot = args.few_shot or ["5way10shot"]
    args.config = args.config or ("configs/partseg-cpu.yaml" if args.task == "partseg"
                                  else "configs/finetune-cpu.yaml")

    from tap3d.evaluate import load_backbone_weights

    weights = load_backbone_weights(args.backbone_checkpoint)
    if args.task == "classify":
        weights.build()  # fails early, naming the file, when it does not fit
    row = _partseg_row if args.task == "partseg" else _row
    with tempfile.TemporaryDirectory() as scratch:
        args.out = args.out or scratch
        rows = [row("random", args.data, "", weights, args),
                row("pre-trained", args.data, args.backbone_checkpoint, weights, args)]
    print(f"{args.data}: {weights.backbone} {weights.kwargs}, pre-trained: "
          f"{args.backbone_checkpoint} ({weights.origin}, step {weights.step})")
    print(_partseg_table(rows) if args.task == "partseg" else _table(rows, args.few_shot))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
