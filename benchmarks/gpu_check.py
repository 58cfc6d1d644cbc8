"""The one-shot GPU check (docs/gpu.md): every CUDA path of the trainer once, with figures.

Run through ``benchmarks/gpu.sh`` (which puts the bundle's wheels on the path first):

    benchmarks/gpu.sh --out OUT                      # CUDA, the bundle of `make gpu-bundle`
    benchmarks/gpu.sh --device cpu --toy --out OUT   # the same steps at toy size on the CPU

Steps, each a separate process (one that fails is recorded and the next still runs), each with
its own time limit, all within ``--budget`` seconds:

a. ``benchmarks/model.py``: every backbone in fp32 and bf16 at batch 32 and at the largest
   power of two that fits: training samples/s, ms per step, peak memory; and (e) the
   ``torch.profiler`` table of PointMLP's TAP step;
b. ``tap-cli train`` on the bundle's ``--preset tap`` dataset with DataLoader workers: stopped
   half-way (``--stop-at``) and resumed (``--resume``); end-to-end samples/s and the share of
   each step spent waiting for data (``data_wait`` of ``metrics.jsonl``);
c. ``tap-cli finetune`` (classification, from the pre-trained run), ``finetune --task
   partseg``, ``probe`` and ``generate`` on the device;
d. ``torchrun --nproc_per_node 1`` (NCCL on CUDA, gloo on the CPU) of a few training steps;
   then ``torchrun --nproc_per_node 2`` of :func:`ranks_probe` (``--ranks-probe``): each rank
   on its own device, the collectives of ``tap3d.train.distributed`` and rank 0's atomic
   write. NCCL with two GPUs; with one GPU gloo (``TAP3D_DIST_BACKEND=gloo``), both ranks on
   ``cuda:0`` (NCCL refuses two ranks on one GPU); gloo on the CPU.

Writes ``OUT/gpu.json`` (figures and each step's status, seconds and command) and
``OUT/gpu.log`` (every command's output), and exits non-zero when a step failed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Check:
    """Runs the steps' commands, logs their output, and keeps the figures."""

    def __init__(self, out: str, budget: float):
        self.out, self.deadline = out, time.monotonic() + budget
        self.log = open(os.path.join(out, "gpu.log"), "a")
        self.report = {"steps": {}}

    def run(self, name: str, command: list[str], limit: float) -> bool:
        """Run ``command`` (logged) for at most ``limit`` seconds or what is left of the budget;
        record its status and time under ``name``."""
        left = self.deadline - time.monotonic()
        step = self.report["steps"].setdefault(name, {"commands": []})
        step["commands"].append(" ".join(command))
        if left < 10:
            step["status"] = "skipped: out of time"
            return False
        self.log.write(f"\n$ {' '.join(command)}\n")
        self.log.flush()
        began = time.monotonic()
        try:
            done = subprocess.run(command, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT,
                                  timeout=min(limit, left))
            status = "ok" if done.returncode == 0 else f"failed: exit {done.returncode}"
        except subprocess.TimeoutExpired:
            status = f"failed: over {min(limit, left):.0f} s"
        step["seconds"] = round(step.get("seconds", 0) + time.monotonic() - began, 1)
        if step.get("status", "ok") == "ok":
            step["status"] = status
        print(f"{name}: {status} ({step['seconds']} s)", flush=True)
        return status == "ok"

    def save(self) -> None:
        with open(os.path.join(self.out, "gpu.json"), "w") as f:
            json.dump(self.report, f, indent=1)


def records(run: str) -> list[dict]:
    """The step records of a run's ``metrics.jsonl``."""
    path = os.path.join(run, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [r for r in map(json.loads, f) if "samples_per_s" in r]


def stream_figures(run: str) -> dict:
    """Median samples/s and data-wait share over a run's records, the first (warm-up) left
    out."""
    rows = records(run)[1:] or records(run)
    if not rows:
        return {}
    return {"samples_per_s": statistics.median(r["samples_per_s"] for r in rows),
            "data_wait": statistics.median(r.get("data_wait", float("nan")) for r in rows),
            "records": len(rows)}


def ranks_probe(out: str, device: str) -> None:
    """One rank of step d's two processes: the engine's device (``--device``; ``cuda:0`` when
    the ranks outnumber the GPUs), the collectives and rank 0's atomic write; rank 0 writes
    ``OUT/ranks.json`` (``ok`` and what was checked); exits 1 when a check failed."""
    from types import SimpleNamespace

    import torch
    from tap3d.train import distributed
    from tap3d.train.engine import setup
    from tap3d.train.torchfile import load_torch_file

    shared = device == "cuda" and torch.cuda.device_count() < int(os.environ["WORLD_SIZE"])
    process, place = setup(SimpleNamespace(device="cuda:0" if shared else device))
    rank = {"rank": process.rank, "device": str(place),
            "current": torch.cuda.current_device() if place.type == "cuda" else None}
    ranks = distributed.all_gather(rank, process)
    total = distributed.reduce_across_processes(torch.full((3,), process.rank + 1.0, device=place),
                                                process)
    path = distributed.save_on_main({"ranks": ranks, "total": total}, os.path.join(out, "ranks.pt"),
                                    process)
    distributed.barrier(process)
    saved = load_torch_file(os.path.join(out, "ranks.pt"))
    checks = {"world": process.world == 2 and len(ranks) == 2,
              "sum": total.tolist() == [3.0] * 3 and saved["total"].tolist() == [3.0] * 3,
              "max": distributed.reduce_across_processes(process.rank, process, op="max") == 1,
              "main_wrote": (path is not None) == process.main and saved["ranks"] == ranks,
              "no_tmp": not os.path.exists(os.path.join(out, "ranks.pt.tmp"))}
    if place.type == "cuda" and not shared:
        checks["own_device"] = [(r["device"], r["current"]) for r in ranks] == [
            (f"cuda:{i}", i) for i in range(2)]
    if process.main:
        backend = torch.distributed.get_backend()
        with open(os.path.join(out, "ranks.json"), "w") as f:
            json.dump({"ok": all(checks.values()), "backend": backend, "shared_gpu": shared,
                       "ranks": ranks, "checks": checks}, f, indent=1)
    distributed.barrier(process)
    distributed.teardown(process)
    sys.exit(0 if all(checks.values()) else 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--bundle", default=os.path.join(ROOT, "gpu-bundle"))
    parser.add_argument("--out", required=True)
    parser.add_argument("--toy", action="store_true", help="toy sizes (the CPU dry run)")
    parser.add_argument("--budget", type=float, default=480, help="seconds for all steps")
    parser.add_argument("--ranks-probe", action="store_true",
                        help="be one rank of step d's two processes (under torchrun)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.ranks_probe:
        ranks_probe(args.out, args.device)
    check = Check(args.out, args.budget)
    with open(os.path.join(args.bundle, "bundle.json")) as f:
        bundle = json.load(f)
    data = os.path.join(os.path.abspath(args.bundle), "data")
    views = os.path.join(data, bundle["views"])
    classify = os.path.join(data, bundle["classify"])
    partseg = os.path.join(data, bundle["partseg"])
    runs = os.path.join(os.path.abspath(args.out), "runs")
    py, cli = sys.executable, [sys.executable, "-m", "tap3d.cli"]
    device = ["--device", args.device]
    toy = args.toy
    report = check.report
    import torch

    report["environment"] = {
        "python": sys.version.split()[0], "torch": torch.__version__, "device": args.device,
        "device_name": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "cpus": os.cpu_count(), "toy": toy}

    # a (and e): the model alone
    model_json = os.path.join(args.out, "model.json")
    size = (["--backbones", "pointmlp", "--batch-size", "2", "--points", "256", "--views", "2",
             "--image-size", "32", "--steps", "1", "--profile", "5"] if toy else ["--max-batch", "--profile", "15"])
    check.run("a_model", [py, "benchmarks/model.py", *device, "--precisions", "fp32", "bf16",
                          *size, "--json", model_json], 240)
    if os.path.exists(model_json):
        with open(model_json) as f:
            model = json.load(f)
        report["a_model"] = {"rows": model["rows"], "largest_batch": model["largest_batch"],
                             "point_ops": model["point_ops"]}
        report["e_profile"] = model["profile"]

    # b: pre-training end to end, stopped half-way and resumed
    steps = 6 if toy else 300
    train = ["--batch-size", "2" if toy else "32", "--max-steps", str(steps),
             "--num-workers", "1" if toy else "8", "--log-every", "2" if toy else "20",
             "--checkpoint-every", str(steps // 2), "--eval-every", "0", "--quiet"]
    if toy:
        train += ["--points", "256", "--embed-dim", "8", "--photograph-dim", "16",
                  "--photograph-depth", "1", "--generator-factor", "8"]
    pretrain = os.path.join(runs, "pretrain")
    check.run("b_train", [*cli, "train", views, "--out", pretrain, *device, *train,
                          "--stop-at", str(steps // 2)], 150)
    stopped = stream_figures(pretrain)
    check.run("b_train", [*cli, "train", views, "--out", pretrain, *device, *train,
                          "--resume"], 150)
    report["b_train"] = {"until_stop": stopped, "whole_run": stream_figures(pretrain),
                         "steps": [r["step"] for r in records(pretrain)][-1:],
                         "cpus": os.cpu_count()}

    # c: the downstream commands on the device
    small = (["--config", os.path.join(ROOT, "configs", "finetune-cpu.yaml"), "--epochs", "2"]
             if toy else ["--epochs", "10", "--batch-size", "32", "--num-workers", "4"])
    check.run("c_finetune", [*cli, "finetune", classify, "-o", os.path.join(runs, "classify"),
                             *device, *small, "--quiet"], 120)
    report["c_finetune"] = _results(os.path.join(runs, "classify"),
                                    ("best_oa", "last_oa", "steps"))
    seg = (["--config", os.path.join(ROOT, "configs", "partseg-cpu.yaml"), "--epochs", "2",
            "--votes", "0"] if toy else ["--epochs", "10", "--batch-size", "16"])
    seg += ["--figure-shapes", "0"]  # parts.png needs matplotlib, which the bundle leaves out
    check.run("c_partseg", [*cli, "finetune", partseg, "--task", "partseg", "-o",
                            os.path.join(runs, "partseg"), *device, *seg, "--quiet"], 150)
    report["c_partseg"] = _results(os.path.join(runs, "partseg"),
                                   ("best_instance_miou", "baseline_instance_miou", "steps"))
    probe_json = os.path.join(args.out, "probe.json")
    probe = ["--points", "256", "--folds", "2", "--few-shot", "2way2shot", "--query", "2"] \
        if toy else ["--few-shot", "5way10shot", "--query", "5"]
    check.run("c_probe", [*cli, "probe", classify, "--backbone-checkpoint", pretrain, *device,
                          *probe, "--json", probe_json], 120)
    report["c_probe"] = _read_json(probe_json)
    generated = os.path.join(runs, "generated.zarr")
    check.run("c_generate", [*cli, "generate", pretrain, views, "-o", generated, *device,
                             "--sheet", os.path.join(args.out, "generated.png")], 120)

    # d: torchrun, one process
    check.run("d_torchrun", [py, "-m", "torch.distributed.run", "--standalone",
                             "--nproc_per_node", "1", "-m", "tap3d.cli", "train", views,
                             "--out", os.path.join(runs, "torchrun"), *device,
                             *[a if a != str(steps) else str(max(steps // 10, 4))
                               for a in train]], 150)
    report["d_torchrun"] = stream_figures(os.path.join(runs, "torchrun"))
    two = os.path.join(runs, "ranks")
    gloo = ["env", "TAP3D_DIST_BACKEND=gloo"] if args.device == "cuda" and \
        torch.cuda.device_count() < 2 else []  # NCCL refuses two ranks on one GPU
    check.run("d_torchrun", [*gloo, py, "-m", "torch.distributed.run", "--standalone",
                             "--nproc_per_node", "2", "benchmarks/gpu_check.py", "--ranks-probe",
                             "--out", two, *device], 90)
    report["d_torchrun"]["two_processes"] = _read_json(os.path.join(two, "ranks.json"))
    check.save()
    failed = [name for name, step in report["steps"].items() if step["status"] != "ok"]
    print(f"{args.out}/gpu.json: {len(report['steps']) - len(failed)} steps ok"
          + (f", failed or skipped: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)


def _read_json(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _results(run: str, keys) -> dict | None:
    results = _read_json(os.path.join(run, "results.json"))
    return None if results is None else {k: results.get(k) for k in keys}


if __name__ == "__main__":
    main()
