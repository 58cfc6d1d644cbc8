"""The Zarr stream against a loader of per-view PNG files and per-object PLY files.

    .venv/bin/python benchmarks/loader.py                      # builds the demo set in a temp dir
    .venv/bin/python benchmarks/loader.py --dataset data/demo.zarr

TAP's public code reads its multi-view renders as one PNG image per view and the point clouds as
one file per object. This benchmark writes the same dataset in that layout
(``<object>/view_VV.png`` RGB, ``<object>/mask_VV.png``, ``<object>/cameras.npz``,
``<object>/points.ply``) and times, in one run, samples per second of

- ``zarr``: :class:`tap3d.datasets.stream.ViewStream` (whole-shard reads, shuffle buffer);
- ``png+ply``: a map-style ``Dataset`` that opens the drawn views' PNGs with Pillow and the PLY
  with trimesh, shuffled by the DataLoader;

for the same samples (1024 random points, half the views, scaling 0.9-1.1, uint8 images) with the same batch size and the same number of DataLoader worker processes. The page
cache is warm for both (each is read once before timing), so this measures decoding and
per-file overhead, not the disk.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch


class PngPlyDataset(torch.utils.data.Dataset):
    """One sample per object from per-view PNG files and a per-object PLY file.

    Produces the same dict of tensors as ``ViewStream`` (points, features, images, masks, K,
    world_to_camera, index).
    """

    def __init__(self, root: str, num_points: int = 1024, views_per_sample: int = 5,
                 seed: int = 0):
        self.root = root
        self.objects = sorted(os.listdir(root))
        self.num_points, self.views_per_sample, self.seed = num_points, views_per_sample, seed

    def __len__(self) -> int:
        return len(self.objects)

    def __getitem__(self, i: int) -> dict:
        import trimesh
        from PIL import Image

        folder = os.path.join(self.root, self.objects[i])
        rng = np.random.default_rng([self.seed, i])
        cameras = np.load(os.path.join(folder, "cameras.npz"))
        points = np.asarray(trimesh.load(os.path.join(folder, "points.ply")).vertices,
                            dtype=np.float32)
        chosen = rng.choice(len(points), self.num_points, replace=False)
        views = np.sort(rng.choice(len(cameras["K"]), self.views_per_sample, replace=False))
        scale = rng.uniform(0.9, 1.1)
        xyz = (points[chosen] * scale).astype(np.float32)
        height = xyz[:, 1:2] - xyz[:, 1].min()
        images = np.stack([np.asarray(Image.open(os.path.join(folder, f"view_{v:02d}.png")))
                           for v in views])
        masks = np.stack([np.asarray(Image.open(os.path.join(folder, f"mask_{v:02d}.png")))
                          for v in views]) > 0
        world_to_camera = cameras["world_to_camera"][views].copy()
        world_to_camera[:, :3, 3] *= scale
        return {"points": torch.from_numpy(xyz),
                "features": torch.from_numpy(np.concatenate([xyz, height], 1)),
                "images": torch.from_numpy(images).permute(0, 3, 1, 2),
                "masks": torch.from_numpy(masks), "K": torch.from_numpy(cameras["K"][views]),
                "world_to_camera": torch.from_numpy(world_to_camera),
                "index": torch.tensor(i)}


def export_png_ply(dataset: str, root: str) -> int:
    """Write the done objects of a tap3d dataset as PNG per view + PLY per object."""
    import trimesh
    import zarr
    from PIL import Image

    group = zarr.open_group(dataset, mode="r")
    status = group["status"][:]
    count = 0
    for i in np.flatnonzero(status == 1):
        folder = os.path.join(root, f"{i:06d}")
        os.makedirs(folder, exist_ok=True)
        for v, (rgb, mask) in enumerate(zip(group["rgb"][i], group["mask"][i])):
            Image.fromarray(rgb).save(os.path.join(folder, f"view_{v:02d}.png"))
            Image.fromarray(mask.astype(np.uint8) * 255).save(
                os.path.join(folder, f"mask_{v:02d}.png"))
        np.savez(os.path.join(folder, "cameras.npz"), K=group["cameras/K"][i],
                 world_to_camera=group["cameras/world_to_camera"][i])
        trimesh.PointCloud(group["points"][i]).export(os.path.join(folder, "points.ply"))
        count += 1
    return count


def repeat_dataset(source: str, output: str, times: int, shard_size: int) -> str:
    """A copy of ``source`` with its objects repeated ``times`` times, in shards of
    ``shard_size``: the demo set has 52 objects in shards of 8, a ShapeNetCore build ~52k in
    shards of 64, which is what the stream's per-shard reads are made for."""
    import zarr

    from tap3d.datasets.format import (INDEX_ARRAYS, SHARD_ARRAYS, array_specs, create_dataset,
                                       write_shard)

    group = zarr.open_group(source, mode="r")
    n, views, size = group["rgb"].shape[:3]
    index = {name: np.concatenate([group[name][:]] * times) for name in INDEX_ARRAYS}
    index["object_id"] = np.array([f"{i}-{r}" for r in range(times)
                                   for i in group["object_id"][:]])
    specs = array_specs(n * times, views, size, group["points"].shape[1])
    out = create_dataset(output, specs, shard_size, {**group.attrs, "shard_size": shard_size},
                         index, overwrite=True)
    data = {name: np.concatenate([group[name][:]] * times) for name in SHARD_ARRAYS}
    for start in range(0, n * times, shard_size):
        write_shard(out, start, {k: v[start:start + shard_size] for k, v in data.items()})
    return output


def _folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def samples_per_second(dataset, batch_size: int, workers: int, epochs: int, **loader) -> float:
    """Samples/s over ``epochs`` passes, after one untimed pass (warm page cache, workers)."""
    def one_epoch(epoch: int) -> int:
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        data = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                                           **loader)
        return sum(len(batch["index"]) for batch in data)

    one_epoch(0)
    began = time.perf_counter()
    count = sum(one_epoch(e + 1) for e in range(epochs))
    return count / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default=None,
                        help="tap3d dataset (default: build the pybullet demo in a temp dir)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=16,
                        help="repeat the objects this many times (1: the dataset as it is)")
    parser.add_argument("--shard-size", type=int, default=64,
                        help="objects per shard of the repeated dataset (the build default)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from tap3d.datasets.stream import ViewStream

    with tempfile.TemporaryDirectory() as workdir:
        dataset = args.dataset
        if dataset is None:
            dataset = os.path.join(workdir, "demo.zarr")
            print("building the pybullet demo set (52 objects, 10 views, 224 px) ...", flush=True)
            subprocess.run([sys.executable, "-m", "tap3d.cli", "build-dataset", "pybullet", "-o",
                            dataset, "--views", "10", "--image-size", "224", "--shard-size", "8",
                            "--quiet"], check=True)
        if args.repeat > 1:
            dataset = repeat_dataset(dataset, os.path.join(workdir, "repeated.zarr"),
                                     args.repeat, args.shard_size)
        root = os.path.join(workdir, "png_ply")
        began = time.perf_counter()
        count = export_png_ply(dataset, root)
        print(f"exported {count} objects as PNG + PLY in {time.perf_counter() - began:.1f} s\n")
        stream = ViewStream(dataset, num_points=1024, seed=0)
        files = PngPlyDataset(root, num_points=1024, views_per_sample=stream.views_per_sample)
        zarr_bytes = _folder_bytes(dataset) if os.path.isdir(dataset) else float("nan")
        print(f"{count} objects, {stream.views_per_sample} of {stream.num_views} views per "
              f"sample, {stream.image_size} px, 1024 points, batch {args.batch_size}; on disk: "
              f"zarr {zarr_bytes / 2**20:.1f} MiB (all arrays), png+ply "
              f"{_folder_bytes(root) / 2**20:.1f} MiB\n")
        print("| DataLoader workers | png+ply samples/s | zarr samples/s | zarr / png+ply |")
        print("|---:|---:|---:|---:|")
        for workers in args.workers:
            baseline = samples_per_second(files, args.batch_size, workers, args.epochs,
                                          shuffle=True)
            ours = samples_per_second(stream, args.batch_size, workers, args.epochs)
            print(f"| {workers} | {baseline:.0f} | {ours:.0f} | {ours / baseline:.1f}x |",
                  flush=True)


if __name__ == "__main__":
    main()
