"""Training throughput of the TAP model: PointMLP + Photograph module + generator.

    .venv/bin/python benchmarks/model.py                 # CPU, and CUDA (bf16) when present
    .venv/bin/python benchmarks/model.py --device cpu --steps 3

One training step = forward, TAP loss, backward, gradient clip and AdamW step, at the default
configuration (DESIGN.md: PointMLP embed 64, Photograph module 2 x 128, x32 generator) on
random inputs of the paper's shape: batch 32, 1024 points, 6 views, 224 x 224. Rows: the whole
model, and the PointMLP backbone alone (forward + backward of a sum of its features), to set
against the PointMLP paper's 47.1 training samples/s on one V100 (Ma et al., ICLR 2022,
Table 2). Peak memory: ``torch.cuda.max_memory_allocated`` on CUDA; on CPU the growth of this
process's peak resident set while the row ran (the first row includes allocator warm-up).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch


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


def _measure(step, steps: int, device) -> tuple[float, float]:
    """(seconds per step after one warm-up step, peak MiB)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    began = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
    return (time.perf_counter() - began) / steps, peak


def rows(device: torch.device, batch: int, points: int, views: int, size: int,
         steps: int) -> list[str]:
    from tap3d.models import TAPModel
    from tap3d.pretrain import load_config, tap_loss

    config = load_config(None, device=str(device))
    model = TAPModel(config, size).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    features, K, w2c, images, masks = _inputs(batch, points, views, size, device)
    bf16 = device.type == "cuda"
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def full_step():
        with autocast:
            generated = model(features, K, w2c)
        losses = tap_loss(generated.flatten(0, 1), images.flatten(0, 1), masks.flatten(0, 1))
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()

    def backbone_step():
        with autocast:
            point_features, _ = model.backbone(features)
        optimizer.zero_grad(set_to_none=True)
        point_features.float().sum().backward()

    precision = "bf16 autocast" if bf16 else "fp32"
    out = []
    for name, step in (("PointMLP + Photograph + generator", full_step),
                       ("PointMLP backbone alone", backbone_step)):
        seconds, peak = _measure(step, steps, device)
        out.append(f"| {name} | {device.type} ({precision}, {torch.get_num_threads()} threads) "
                   f"| {batch / seconds:.1f} | {seconds * 1000:.0f} | {peak:.0f} |")
        print(out[-1], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="all", help="cpu, cuda or all (default)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--points", type=int, default=1024)
    parser.add_argument("--views", type=int, default=6)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per row")
    args = parser.parse_args()
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
    print(f"batch {args.batch_size}, {args.points} points, {args.views} views, "
          f"{args.image_size} x {args.image_size}; torch {torch.__version__}; {name}\n")
    print("| model | device | training samples/s | ms per step | peak MiB |")
    print("|---|---|---:|---:|---:|")
    for device in devices:
        rows(torch.device(device), args.batch_size, args.points, args.views, args.image_size,
             args.steps)


if __name__ == "__main__":
    main()
