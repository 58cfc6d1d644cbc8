"""Rasterizer backends side by side: PyTorch3D's CPU rasterizer against Embree ray casting.

    .venv/bin/python benchmarks/rasterize.py            # everything (a few minutes on 2 cores)
    .venv/bin/python benchmarks/rasterize.py --quick    # fewer repeats, no end-to-end build

Prints three tables measured in one run:

1. rasterization views/s of each backend at 224 x 224 (``(meshes, cameras) -> Fragments``, 10
   views in one call) for meshes of about 1k, 5k, 20k and 100k faces (real pybullet meshes; the
   20k one is the duck subdivided once) and their ratio, plus Embree with PyTorch3D's shading
   (what a build does per view). Both backends get the same CPU threads (``--threads``, default
   all cores). PyTorch3D rasterizes 2 views of the meshes above 10k faces (it is
   O(pixels x faces)); views/s is per view either way.
2. end-to-end build throughput (objects/s; 10 views, 8192 points) of each backend on the demo
   meshes (``tap-cli build-dataset pybullet``), with the default local Dask cluster.
3. peak resident memory of one worker process rendering a ~500k-face mesh (the samurai monastery
   subdivided once) with the CPU default backend (embree).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np


def _meshes(root: str, workdir: str) -> list[tuple[str, str]]:
    import trimesh

    duck20k = os.path.join(workdir, "duck_subdivided.obj")
    duck = trimesh.load(os.path.join(root, "duck.obj"), force="mesh", process=False)
    trimesh.Trimesh(*trimesh.remesh.subdivide(duck.vertices, duck.faces)).export(duck20k)
    return [("bunny (real)", os.path.join(root, "bunny.obj")),
            ("duck (real)", os.path.join(root, "duck.obj")),
            ("duck x4 (subdivided)", duck20k),
            ("samurai monastery (real)", os.path.join(root, "samurai_monastry.obj"))]


def _time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
    return best


def rasterizer_table(root: str, workdir: str, threads: int, repeats: int) -> list[str]:
    import torch

    from tap3d.render.cameras import make_cameras, make_layout
    from tap3d.render.meshes import load_mesh
    from tap3d.render.rasterize import make_rasterizer
    from tap3d.render.shade import ViewRenderer

    torch.set_num_threads(threads)
    rows = ["| mesh | faces | pytorch3d views/s | embree views/s | ratio "
            "| embree + shading views/s |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    print("\n".join(rows), flush=True)
    for name, path in _meshes(root, workdir):
        mesh = load_mesh(path)
        faces = mesh.num_faces
        p3d_views = 10 if faces < 10_000 else 2  # PyTorch3D takes seconds per view beyond that
        timings = {}
        for backend, views in (("pytorch3d", p3d_views), ("embree", 10)):
            cameras = make_cameras(make_layout("sphere", 10))[list(range(views))]
            batch = mesh.to_meshes().extend(views)
            rasterizer = make_rasterizer(backend, 224, "cpu", threads)
            reps = repeats if backend == "embree" or faces < 10_000 else 1
            if backend == "embree":
                rasterizer(batch, cameras)  # warm-up: first call loads Embree
            timings[backend] = _time(lambda: rasterizer(batch, cameras), reps) / views
        renderer = ViewRenderer(make_rasterizer("embree", 224, "cpu", threads))
        cameras = make_cameras(make_layout("sphere", 10))
        shaded = _time(lambda: renderer(mesh, cameras), repeats) / 10
        rows.append(f"| {name} | {faces} | {1 / timings['pytorch3d']:.2f} | "
                    f"{1 / timings['embree']:.0f} | {timings['pytorch3d'] / timings['embree']:.0f}x "
                    f"| {1 / shaded:.0f} |")
        print(rows[-1], flush=True)
    return rows


def build_table(workdir: str) -> list[str]:
    from tap3d.build import BuildConfig, build

    rows = ["| backend | objects | seconds | objects/s | views/s | ratio |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    results = {}
    for backend in ("pytorch3d", "embree"):
        summary = build("pybullet", os.path.join(workdir, f"demo-{backend}.zarr"),
                        BuildConfig(backend=backend, shard_size=8), progress=False)
        results[backend] = summary
    base = results["pytorch3d"].seconds
    for backend, s in results.items():
        rows.append(f"| {backend} | {s.done} | {s.seconds:.1f} | {s.done / s.seconds:.2f} | "
                    f"{s.views_per_second:.1f} | {base / s.seconds:.1f}x |")
    return rows


_MEMORY_CHILD = """
import resource, sys, time
from dataclasses import replace
from tap3d.build import BuildConfig, make_renderer, render_object
from tap3d.sources import ObjectSpec
import torch
torch.set_num_threads(1)
backend, path = sys.argv[1], sys.argv[2]
config = replace(BuildConfig(backend=backend, device="cpu"), layout="clip2point")
renderer = make_renderer(config, threads=1)
began = time.perf_counter()
out = render_object(ObjectSpec("big", "big", path), config, renderer)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - began)
"""


def memory_table(root: str, workdir: str) -> list[str]:
    import trimesh

    big = os.path.join(workdir, "samurai_x4.obj")
    mesh = trimesh.load(os.path.join(root, "samurai_monastry.obj"), force="mesh", process=False)
    trimesh.Trimesh(*trimesh.remesh.subdivide(mesh.vertices, mesh.faces), process=False).export(big)
    faces = len(mesh.faces) * 4
    rows = ["| backend | faces | peak RSS of the worker (MiB) | seconds for 10 views + 8192 points |",
            "| --- | ---: | ---: | ---: |"]
    # PyTorch3D's CPU rasterizer needs minutes per view at this size, so only the CPU default
    # (embree) is measured here.
    for backend in ("embree",):
        out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, backend, big],
                             capture_output=True, text=True, check=True)
        rss_kib, seconds = out.stdout.split()
        rows.append(f"| {backend} | {faces} | {int(rss_kib) / 1024:.0f} | {float(seconds):.1f} |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="one repeat, no build or memory table")
    args = parser.parse_args()
    import pybullet_data

    root = pybullet_data.getDataPath()
    with tempfile.TemporaryDirectory() as workdir:
        print(f"## Rasterize + shade, 224 x 224, {args.threads} threads per backend\n")
        rasterizer_table(root, workdir, args.threads, 1 if args.quick else 3)
        if args.quick:
            return
        print("\n## End-to-end build of the demo meshes (10 views, 8192 points)\n")
        print("\n".join(build_table(workdir)), flush=True)
        print("\n## Peak memory of one worker on a ~500k-face mesh\n")
        memory_table(root, workdir)
    print(f"\n(numpy {np.__version__}, peak RSS of this process "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
