"""Does TAP pre-training learn more than its training objects? A pre-training run on ~1,000 real
meshes on the CPU, scored on held-out objects against the no-learning baselines.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/pretrain_long.py [--out runs/tap-long] \\
        [--config configs/tap-long-cpu.yaml] [--image-size 32] [--max-steps N]

Builds (once, into ``OUT.zarr``) pybullet_data's ``random_urdfs`` (1,000 procedurally made
meshes; one has NaN vertices and is recorded failed) with ``--preset tap`` at ``--image-size``,
2,048 points, then runs ``tap-cli train`` with ``--config`` into ``OUT`` (a new run; an
existing one is resumed). Prints a Markdown table: per evaluation step, silhouette IoU and PSNR
of the generated views on training and held-out objects beside their baselines (the mean
training mask / image, :mod:`tap3d.train.quality`), and the wall times of the build and the
training. The run folder's ``checkpoints/last.pt`` is what ``benchmarks/transfer.py
--backbone-checkpoint`` takes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from timing import timed

KEYS = ("iou", "iou_baseline", "psnr", "psnr_baseline")


def table(records: list[dict]) -> str:
    """Markdown: one line per step with an evaluation."""
    head = ["step"] + [f"{k} {split}" for split in ("train", "held-out") for k in KEYS]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in records:
        if "eval_iou" not in r:
            continue
        cells = [str(r["step"])] + [f"{r[f'eval_{k}{suffix}']:.3f}" if "iou" in k else
                                    f"{r[f'eval_{k}{suffix}']:.2f}"
                                    for suffix in ("", "_heldout") for k in KEYS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/tap-long")
    parser.add_argument("--config", default="configs/tap-long-cpu.yaml")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--max-steps", type=int, default=None)
    args = parser.parse_args()
    import pybullet_data

    cli = os.path.join(os.path.dirname(sys.executable), "tap-cli")
    data = args.out.rstrip("/") + ".zarr"
    build = [cli, "build-dataset", os.path.join(pybullet_data.getDataPath(), "random_urdfs"),
             "-o", data, "--preset", "tap", "--image-size", str(args.image_size),
             "--points", "2048", "--quiet"]
    built = 0.0 if os.path.exists(data) else timed(
        lambda: subprocess.run(build, check=True)).min
    command = [cli, "train", data, "--out", args.out, "--config", args.config]
    if args.max_steps:
        command += ["--max-steps", str(args.max_steps)]
    if os.path.exists(os.path.join(args.out, "checkpoints", "last.pt")):
        command.append("--resume")
    trained = timed(lambda: subprocess.run(command, check=True)).min
    records = [json.loads(line) for line in open(os.path.join(args.out, "metrics.jsonl"))]
    print(f"{data}: build {built:.0f} s (0 when it existed), training {trained:.0f} s, "
          f"config {args.config}")
    print(table(records))


if __name__ == "__main__":
    main()
