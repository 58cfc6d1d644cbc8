"""Rasterizer backends side by side: PyTorch3D's CPU rasterizer against Embree ray casting.

    .venv/bin/python benchmarks/rasterize.py            # everything (a few minutes on 2 cores)
    .venv/bin/python benchmarks/rasterize.py --quick    # fewer repeats, no end-to-end build

Prints two tables measured in one run:

1. rasterization views/s of each backend at 224 x 224 (``(meshes, cameras) -> Fragments``, 10
   views in one call) for meshes of about 1k, 5k, 20k and 100k faces (real pybullet meshes; the
   20k one is the duck subdivided once) and their ratio, plus Embree with PyTorch3D's shading
   (what a build does per view). Both backends get the same CPU threads (``--threads``, default
   all cores). PyTorch3D rasterizes 2 views of the meshes above 10k faces (it is
   O(pixels x faces)); views/s is per view either way.
2. end-to-end build throughput (objects/s; 10 views, 8192 points) of each backend on the demo
   meshes (``tap-cli build-dataset pybullet``), with the default local Dask cluster.

The peak memory of a worker on a ~500k-face mesh is ``benchmarks/build.py``'s memory table.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile

import numpy as np
from timing import timed


def _meshes(root: str, workdir: str) -> list[tuple[str, str]]:
    import trimesh

    duck20k = os.path.join(workdir, "duck_subdivided.obj")
    duck = trimesh.load(os.path.join(root, "duck.obj"), force="mesh", process=False)
    trimesh.Trimesh(*trimesh.remesh.subdivide(duck.vertices, duck.faces)).export(duck20k)
    return [("bunny (real)", os.path.join(root, "bunny.obj")),
            ("duck (real)", os.path.join(root, "duck.obj")),
            ("duck x4 (subdivided)", duck20k),
            ("samurai monastery (real)", os.path.join(root, "samurai_monastry.obj"))]


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
            timings[backend] = timed(lambda: rasterizer(batch, cameras), repeats=reps).min / views
        renderer = ViewRenderer(make_rasterizer("embree", 224, "cpu", threads))
        cameras = make_cameras(make_layout("sphere", 10))
        shaded = timed(lambda: renderer(mesh, cameras), repeats=repeats).min / 10
        rows.append(f"| {name} | {faces} | {1 / timings['pytorch3d']:.2f} | "
                    f"{1 / timings['embree']:.0f} | {timings['pytorch3d'] / timings['embree']:.0f}x "
                    f"| {1 / shaded:.0f} |")
        print(rows[-1], flush=True)
    return rows


def build_table(workdir: str) -> list[str]:
    from tap3d.builder import BuildConfig, build

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="one repeat, no build table")
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
    print(f"\n(numpy {np.__version__}, peak RSS of this process "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
