"""Training throughput of the TAP model with every backbone (+ Photograph module + generator).

    .venv/bin/python benchmarks/model.py                 # CPU, and CUDA (bf16) when present
    .venv/bin/python benchmarks/model.py --device cpu --steps 2 --backbones dgcnn pointnet2

One training step = forward, TAP loss, backward, gradient clip and AdamW step, at the default
configuration (docs/pretraining.md: Photograph module 2 x 128, x32 generator; each backbone at its
authors' configuration) on random inputs of the paper's shape: batch 32, 1024 points, 6 views,
224 x 224. Rows per backbone: the whole model, and the backbone alone (forward + backward of a
sum of its features), the latter to set against the PointMLP paper's 47.1 training samples/s on
one V100 (Ma et al., ICLR 2022, Table 2). "point ops ms": the time of the backbone step spent
computing neighbour indices (farthest-point sampling, kNN, ball query), timed in a separate
step with the device synchronized around each call. Peak memory: the model, optimizer state,
inputs and activations: ``torch.cuda.max_memory_allocated`` on CUDA; on CPU the peak resident
set while the row ran (reset per row through ``/proc/self/clear_refs``) minus the resident set
before the model was built. The last table times the point operations alone.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import resource

import torch
from timing import timed

POINT_OPS = ("farthest_point_sample", "knn", "ball_query")
MODULES = ("pointmlp", "dgcnn", "pointnet2", "transformer")


def _inputs(batch: int, points: int, views: int, size: int, device):
    features = torch.rand(batch, points, 4, device=device) * 2 - 1
    f = size / (2 * torch.tan(torch.deg2rad(torch.tensor(30.0))))
    K = torch.tensor([[f, 0, (size - 1) / 2], [0, f, (size - 1) / 2], [0, 0, 1]],
                     device=device).expand(batch, views, 3, 3).contiguous()
    w2c = torch.eye(4, device=device).expand(batch, views, 4, 4).clone()
    w2c[..., 2, 3] = 2.5
    images = torch.rand(batch, views, 3, size, size, device=device)
    masks = torch.rand(batch, views, size, size, device=device) > 0.7
    return features, K, w2c, images, masks


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_mib(field: str) -> float | None:
    """``VmRSS`` or ``VmHWM`` (peak) of this process from ``/proc/self/status``, MiB (Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's peak resident set (Linux >= 4.0: ``5 > /proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _seconds_per_call(fn, repeats: int, device) -> float:
    """Seconds per call of ``fn`` over ``repeats`` calls in a row (the device synchronized
    before and after them), after one warm-up call."""
    return timed(fn, number=repeats, warmup=1, sync=lambda: _sync(device)).min


def _measure(step, steps: int, device, baseline: float) -> tuple[float, float]:
    """(seconds per step after one warm-up step, peak MiB above ``baseline``): CUDA's peak
    allocation, or on CPU the process's peak resident set since the row began."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    reset = _reset_peak_rss()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = _seconds_per_call(step, steps, device)
    if device.type == "cuda":
        return seconds, torch.cuda.max_memory_allocated(device) / 2**20
    if reset and _rss_mib("VmHWM") is not None:
        return seconds, _rss_mib("VmHWM") - baseline
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss


@contextlib.contextmanager
def _timed_point_ops(device, total: list):
    """Patch the point operations in every backbone module with synchronized timers that add
    their seconds to ``total[0]``."""
    patched = []
    for name in MODULES:
        module = importlib.import_module(f"tap3d.models.backbones.{name}")
        for op in POINT_OPS:
            if hasattr(module, op):
                original = getattr(module, op)

                def timed_op(*args, _original=original, **kwargs):
                    call = timed(lambda: _original(*args, **kwargs), sync=lambda: _sync(device))
                    total[0] += call.min
                    return call.result

                setattr(module, op, timed_op)
                patched.append((module, op, original))
    try:
        yield
    finally:
        for module, op, original in patched:
            setattr(module, op, original)


def _steps(device: torch.device, backbone: str, batch: int, points: int, views: int,
           size: int, bf16: bool):
    """``(model, full_step, backbone_step)``: one training step of the whole TAP model
    (forward, TAP loss, backward, clip, AdamW) and of the backbone alone (forward, backward of
    a sum of its features), on random inputs of the paper's shape."""
    from tap3d.models import TAPModel
    from tap3d.train import load_config, tap_loss
    from tap3d.train.config import model_config

    config = load_config(None, device=str(device), backbone=backbone)
    model = TAPModel(model_config(config, size, "perspective")).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    features, K, w2c, images, masks = _inputs(batch, points, views, size, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def full_step():
        with autocast:
            generated = model(features, K, w2c)
        losses = tap_loss(generated.flatten(0, 1).float(), images.flatten(0, 1),
                          masks.flatten(0, 1))
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()

    def backbone_step():
        with autocast:
            point_features, _ = model.backbone(features)
        optimizer.zero_grad(set_to_none=True)
        point_features.float().sum().backward()

    return model, full_step, backbone_step


def rows(device: torch.device, backbone: str, batch: int, points: int, views: int, size: int,
         steps: int, bf16: bool) -> list[dict]:
    """The two rows of one backbone (whole TAP model, backbone alone) at one batch size and
    precision, printed as they are measured."""
    baseline = (_rss_mib("VmRSS") or 0.0) if device.type == "cpu" else 0.0
    model, full_step, backbone_step = _steps(device, backbone, batch, points, views, size, bf16)
    parameters = sum(p.numel() for p in model.backbone.parameters())
    precision = "bf16 autocast" if bf16 else "fp32"
    where = f"{device.type} ({precision}, {torch.get_num_threads()} threads)"
    out = []
    for part, step in (("Photograph + generator", full_step), ("backbone alone", backbone_step)):
        seconds, peak = _measure(step, steps, device, baseline)
        ops = None
        if step is backbone_step:
            total = [0.0]
            with _timed_point_ops(device, total):
                backbone_step()
            ops = total[0] * 1000
        row = {"model": f"{backbone} + {part}" if step is full_step else f"{backbone} {part}",
               "backbone": backbone, "whole_model": step is full_step, "parameters": parameters,
               "device": where, "precision": "bf16" if bf16 else "fp32", "batch": batch,
               "samples_per_s": batch / seconds, "ms_per_step": seconds * 1000,
               "point_ops_ms": ops, "peak_mib": peak}
        out.append(row)
        print(f"| {row['model']} | {parameters:,} | {where} | {batch} | {batch / seconds:.1f} "
              f"| {seconds * 1000:.0f} | {'' if ops is None else f'{ops:.0f}'} | {peak:.0f} |",
              flush=True)
    del model, full_step, backbone_step
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def largest_batch(device: torch.device, backbone: str, points: int, views: int, size: int,
                  bf16: bool, start: int, limit: int = 4096) -> int:
    """The largest power of two from ``start`` up to ``limit`` at which one training step of
    the whole model fits on the CUDA device (doubling until ``torch.OutOfMemoryError``); 0
    when not even ``start`` fits."""
    fits = 0
    batch = start
    while batch <= limit:
        try:
            _, full_step, _ = _steps(device, backbone, batch, points, views, size, bf16)
            full_step()
            _sync(device)
            fits = batch
        except torch.OutOfMemoryError:
            break
        finally:
            full_step = None
            torch.cuda.empty_cache()
        batch *= 2
    return fits


def profile_table(device: torch.device, backbone: str, batch: int, points: int, views: int,
                  size: int, bf16: bool, top: int = 15) -> str:
    """``torch.profiler``'s table of the TAP step's top ``top`` operators by self device time
    (self CPU time on the CPU), three steps after one warm-up step."""
    from torch.profiler import ProfilerActivity, profile

    _, step, _ = _steps(device, backbone, batch, points, views, size, bf16)
    step()
    _sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(3):
            step()
        _sync(device)
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=top)


def point_op_rows(device: torch.device, batch: int, points: int, repeats: int = 5) -> list[dict]:
    """Time the neighbour-index operations at the backbones' largest shapes: FPS of half the
    points (PointMLP and PointNet++ stage 1; eagerly and, on CUDA, replayed from a CUDA graph),
    kNN 24 around those centres (PointMLP), ball query 32 in radius 0.2 (PointNet++)."""
    from tap3d.geometry import pointops

    xyz = torch.rand(batch, points, 3, device=device) * 2 - 1
    centres = xyz[:, : points // 2].contiguous()
    cases = [("farthest_point_sample eager", False,
              lambda: pointops.farthest_point_sample(xyz, points // 2)),
             ("knn", None, lambda: pointops.knn(centres, xyz, 24)),
             ("ball_query", None, lambda: pointops.ball_query(centres, xyz, 0.2, 32))]
    if device.type == "cuda":
        cases.insert(1, ("farthest_point_sample CUDA graph", True,
                         lambda: pointops.farthest_point_sample(xyz, points // 2)))
    out = []
    for name, graphs, op in cases:
        if graphs is not None:
            pointops.CUDA_GRAPHS = graphs
        ms = _seconds_per_call(op, repeats, device) * 1000
        out.append({"operation": name, "device": device.type, "ms": ms})
        print(f"| {name} | {device.type} | {ms:.1f} |", flush=True)
    pointops.CUDA_GRAPHS = True
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="all", help="cpu, cuda or all (default)")
    parser.add_argument("--backbones", nargs="+", default=list(MODULES), choices=MODULES)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--points", type=int, default=1024)
    parser.add_argument("--views", type=int, default=6)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per row")
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"), default=None,
                        help="default: bf16 on CUDA, fp32 on the CPU")
    parser.add_argument("--max-batch", action="store_true",
                        help="CUDA: also time the largest power-of-two batch that fits")
    parser.add_argument("--profile", type=int, default=0, metavar="TOP",
                        help="print torch.profiler's TOP operators of the first backbone's "
                             "TAP step")
    parser.add_argument("--json", default=None, help="also write every figure to this file")
    args = parser.parse_args()
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
    print(f"batch {args.batch_size}, {args.points} points, {args.views} views, "
          f"{args.image_size} x {args.image_size}; torch {torch.__version__}; {name}\n")
    print("| model | backbone parameters | device | batch | training samples/s | ms per step "
          "| point ops ms | peak MiB |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    figures = {"torch": torch.__version__, "device_name": name, "rows": [], "largest_batch": [],
               "point_ops": [], "profile": None}
    shape = (args.points, args.views, args.image_size)
    for device in map(torch.device, devices):
        precisions = args.precisions or (["bf16"] if device.type == "cuda" else ["fp32"])
        for backbone in args.backbones:
            for precision in precisions:
                bf16 = precision == "bf16"
                figures["rows"] += rows(device, backbone, args.batch_size, *shape, args.steps,
                                        bf16)
                if args.max_batch and device.type == "cuda":
                    largest = largest_batch(device, backbone, *shape, bf16, args.batch_size * 2)
                    figures["largest_batch"].append({"backbone": backbone,
                                                     "precision": precision, "batch": largest})
                    if largest:
                        figures["rows"] += rows(device, backbone, largest, *shape, args.steps,
                                                bf16)
    print(f"\n| point operation ({args.batch_size} x {args.points} points, "
          f"{args.points // 2} centres) | device | ms |")
    print("|---|---|---:|")
    for device in devices:
        figures["point_ops"] += point_op_rows(torch.device(device), args.batch_size, args.points)
    if args.profile:
        device = torch.device(devices[-1])
        bf16 = "bf16" in (args.precisions or (["bf16"] if device.type == "cuda" else []))
        figures["profile"] = profile_table(device, args.backbones[0], args.batch_size, *shape,
                                           bf16, args.profile)
        print(f"\ntorch.profiler, {args.backbones[0]} TAP step on {device.type}:\n"
              f"{figures['profile']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
