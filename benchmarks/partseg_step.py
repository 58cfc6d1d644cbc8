"""Seconds per optimizer step of the ShapeNetPart recipe's model (PointMLP's part segmentor,
batch 16 x 2048 points, xyz + normals, Poly-1 focal loss, AdamW, clip 1) on this machine, and
the minutes per epoch of ShapeNetPart's 14,007 train + val shapes that it implies.

    python benchmarks/partseg_step.py [--device cpu] [--steps 2] [--batch 16] [--points 2048]

An estimate: one or two timed steps (after one warm-up step) on random inputs, the best taken.
``--batch`` smaller than the recipe's 16 (a batch of 16 x 2048 points needs about 14 GB on a
CPU) is scaled to 16 linearly (a step's work grows with the shapes in it; BatchNorm statistics
aside, shapes do not interact).
"""

from __future__ import annotations

import argparse
import math

import torch

from timing import timed
from tap3d.models.segmentation import make_segmenter
from tap3d.train.loss import poly1_focal_loss

SHAPENETPART_TRAINVAL = 14007
RECIPE_BATCH = 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--points", type=int, default=2048)
    parser.add_argument("--backbone", default="pointmlp")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = make_segmenter(args.backbone, 50, 16).to(args.device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    features = torch.randn(args.batch, args.points, 6, device=args.device)
    parts = torch.randint(0, 50, (args.batch, args.points), device=args.device)
    categories = torch.randint(0, 16, (args.batch,), device=args.device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = poly1_focal_loss(model(features, categories).reshape(-1, 50), parts.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    seconds = timed(step, repeats=args.steps, warmup=1).min  # the best step after a warm-up
    recipe_step = seconds * RECIPE_BATCH / args.batch
    steps = math.floor(SHAPENETPART_TRAINVAL / RECIPE_BATCH)
    print(f"{args.backbone} segmentor, batch {args.batch} x {args.points} points on "
          f"{args.device} ({torch.get_num_threads()} threads): {seconds:.2f} s per step "
          f"(best of {args.steps}); batch {RECIPE_BATCH}: {recipe_step:.2f} s per step; "
          f"ShapeNetPart epoch = {steps} steps = {recipe_step * steps / 60:.1f} min (estimate)")


if __name__ == "__main__":
    main()
