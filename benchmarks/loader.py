"""The Zarr stream against a loader of per-view PNG files and per-object PLY files.

    .venv/bin/python benchmarks/loader.py --dataset data/demo.zarr --s3   # local disk and S3
    .venv/bin/python benchmarks/loader.py                   # builds the demo set in a temp dir

TAP's public code reads its multi-view renders as one PNG image per view and the point clouds as
one file per object. This benchmark writes the same dataset in that layout
(``<object>/view_VV.png`` RGB, ``<object>/mask_VV.png``, ``<object>/cameras.npz``,
``<object>/points.ply``) and times, in one run, samples per second of

- ``zarr``: :class:`tap3d.stream.ViewStream` (whole-shard reads, shuffle buffer);
- ``png+ply``: a map-style ``Dataset`` that opens the drawn views' PNGs with Pillow and the PLY
  with trimesh (through fsspec), shuffled by the DataLoader;

for the same samples (1024 random points, half the views, scaling 0.9-1.1, uint8 images) with
the same batch size and the same number of DataLoader worker processes. The demo's 52 objects
are repeated (``--repeat``, default 16: 832 objects) in shards of 64 as a ShapeNetCore build
has them. Rows: the local disk with a warm page cache (decoding and per-file overhead only),
and with ``--s3`` an S3 endpoint on 127.0.0.1 (moto's server), where every file or chunk is an
HTTP request, as on object storage or a network file system (without its network latency, so
a real remote store widens the gap).
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
from timing import timed


class PngPlyDataset(torch.utils.data.Dataset):
    """One sample per object from per-view PNG files and a per-object PLY file.

    Produces the same dict of tensors as ``ViewStream`` (points, features, images, masks, K,
    world_to_camera, index).
    """

    def __init__(self, root: str, num_points: int = 1024, views_per_sample: int = 5,
                 seed: int = 0):
        import fsspec

        self.root = root.rstrip("/")
        fs, self.path = fsspec.core.url_to_fs(self.root)
        self.objects = sorted(os.path.basename(p.rstrip("/"))
                              for p in fs.ls(self.path, detail=False))
        self.num_points, self.views_per_sample, self.seed = num_points, views_per_sample, seed
        self._fs, self._pid = None, None

    def __len__(self) -> int:
        return len(self.objects)

    def _open(self, path: str):
        import fsspec

        if self._pid != os.getpid():  # one file system per process (DataLoader workers)
            self._fs = fsspec.core.url_to_fs(self.root, skip_instance_cache=True)[0]
            self._pid = os.getpid()
        return self._fs.open(path, "rb")

    def __getitem__(self, i: int) -> dict:
        import trimesh
        from PIL import Image

        folder = f"{self.path}/{self.objects[i]}"
        rng = np.random.default_rng([self.seed, i])
        with self._open(f"{folder}/cameras.npz") as f:
            cameras = dict(np.load(f))
        with self._open(f"{folder}/points.ply") as f:
            points = np.asarray(trimesh.load(f, file_type="ply").vertices, dtype=np.float32)
        chosen = rng.choice(len(points), self.num_points, replace=False)
        views = np.sort(rng.choice(len(cameras["K"]), self.views_per_sample, replace=False))
        scale = rng.uniform(0.9, 1.1)
        xyz = (points[chosen] * scale).astype(np.float32)
        height = xyz[:, 1:2] - xyz[:, 1].min()

        def png(name):
            with self._open(f"{folder}/{name}") as f:
                return np.asarray(Image.open(f))

        images = np.stack([png(f"view_{v:02d}.png") for v in views])
        masks = np.stack([png(f"mask_{v:02d}.png") for v in views]) > 0
        world_to_camera = cameras["world_to_camera"][views].copy()
        world_to_camera[:, :3, 3] *= scale
        return {"points": torch.from_numpy(xyz),
                "features": torch.from_numpy(np.concatenate([xyz, height], 1)),
                "images": torch.from_numpy(images).permute(0, 3, 1, 2),
                "masks": torch.from_numpy(masks), "K": torch.from_numpy(cameras["K"][views]),
                "world_to_camera": torch.from_numpy(world_to_camera),
                "index": torch.tensor(i)}


class MotoS3:
    """moto's S3 server on 127.0.0.1 (the test extra installs it); s3fs finds it through the
    environment, in this process and in DataLoader workers."""

    def __enter__(self):
        import socket
        import boto3

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        exe = os.path.join(os.path.dirname(sys.executable), "moto_server")
        self.server = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        endpoint = f"http://127.0.0.1:{port}"
        os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint,
                           "FSSPEC_S3_ENDPOINT_URL": endpoint})
        for _ in range(300):
            try:
                boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
                return self
            except Exception:  # noqa: BLE001 - starting
                time.sleep(0.1)
        raise RuntimeError("moto_server did not start")

    def __exit__(self, *exc):
        self.server.terminate()
        self.server.wait()


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

    from tap3d.views.schema import INDEX_ARRAYS, SHARD_ARRAYS, array_specs
    from tap3d.views.writer import (create_dataset,
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


def samples_per_second(dataset, batch_size: int, workers: int, epochs: int, **loader) -> float:
    """Samples/s over ``epochs`` passes, after one untimed pass (warm page cache, workers)."""
    counts = []  # samples per pass, the untimed one first

    def one_epoch() -> None:
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(len(counts))
        data = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                                           **loader)
        counts.append(sum(len(batch["index"]) for batch in data))

    seconds = timed(one_epoch, number=epochs, warmup=1).min * epochs
    return sum(counts[1:]) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default=None,
                        help="tap3d dataset (default: build the pybullet demo in a temp dir)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--s3", action="store_true",
                        help="also from a local S3 server (moto), where each file is a request")
    parser.add_argument("--repeat", type=int, default=16,
                        help="repeat the objects this many times (1: the dataset as it is)")
    parser.add_argument("--shard-size", type=int, default=64,
                        help="objects per shard of the repeated dataset (the build default)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from tap3d.views.schema import bytes_on_disk
    from tap3d.stream import StreamSettings, ViewStream

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
        export = timed(lambda: export_png_ply(dataset, root))
        count = export.result
        print(f"exported {count} objects as PNG + PLY in {export.min:.1f} s\n")
        stream = ViewStream(dataset, StreamSettings(points=1024, seed=0))
        zarr_bytes = bytes_on_disk(dataset)
        print(f"{count} objects, {stream.views_per_sample} of {stream.num_views} views per "
              f"sample, {stream.image_size} px, 1024 points, batch {args.batch_size}; on disk: "
              f"zarr {zarr_bytes / 2**20:.1f} MiB (all arrays), png+ply "
              f"{bytes_on_disk(root) / 2**20:.1f} MiB\n")
        print("| storage | DataLoader workers | png+ply samples/s | zarr samples/s | "
              "zarr / png+ply |")
        print("|---|---:|---:|---:|---:|")

        def compare(label, zarr_url, files_url, workers_list):
            stream = ViewStream(zarr_url, StreamSettings(points=1024, seed=0))
            files = PngPlyDataset(files_url, num_points=1024,
                                  views_per_sample=stream.views_per_sample)
            for workers in workers_list:
                baseline = samples_per_second(files, args.batch_size, workers, args.epochs,
                                              shuffle=True)
                ours = samples_per_second(stream, args.batch_size, workers, args.epochs)
                print(f"| {label} | {workers} | {baseline:.0f} | {ours:.0f} | "
                      f"{ours / baseline:.1f}x |", flush=True)

        compare("local disk (page cache warm)", dataset, root, args.workers)
        if args.s3:
            import fsspec

            with MotoS3():
                fs = fsspec.filesystem("s3")
                fs.put(dataset.rstrip("/") + "/", "bench/ds.zarr", recursive=True)
                fs.put(root.rstrip("/") + "/", "bench/png_ply", recursive=True)
                compare("S3 (moto server, 127.0.0.1)", "s3://bench/ds.zarr", "s3://bench/png_ply",
                        args.workers)


if __name__ == "__main__":
    main()
