"""At Objaverse's size: does each stage cost the same per object at 1k and at 10k objects?

    .venv/bin/python benchmarks/scale.py                 # 1,000 and 10,000 objects
    .venv/bin/python benchmarks/scale.py --quick         # 200 and 1,000 objects
    .venv/bin/python benchmarks/scale.py --sizes 1000 10000 100000

For each size, a mesh folder of that many tiny meshes (a tetrahedron OBJ, 10 category folders)
is written to a temporary folder and taken through every stage that runs once per dataset,
each timed by ``benchmarks/timing.py``:

- ``plan``: :func:`tap3d.builder.plan.make_plan` (listing, index arrays, attributes; after one
  untimed call that pays the imports);
- ``build``: :func:`tap3d.builder.build` in process (``workers=0``), tiny objects: 8 x 8
  images, 2 views, 64 points, shards of 64;
- ``resume``: the same build again on the finished dataset (plan, which shards to redo:
  none, the summary);
- ``open``: :func:`tap3d.views.open_dataset` (the lazy xarray dataset);
- ``stream``: one epoch of :class:`tap3d.stream.ViewStream` over every object, in process;
- ``verify``: :func:`tap3d.views.verify.verify` in process;
- ``verify, N workers``: the same on a warm local Dask cluster of ``--workers`` processes (one
  task per shard; the cluster's start is printed once, apart).

The short stages (plan, resume, open) keep the best of ``--repeats`` samples, the others run
once. Prints a table of seconds and milliseconds per object per stage, the ratio of the largest
size's per-object cost to the smallest's (flat: about 1.0), and the minutes ``--project``
objects (Objaverse 1.0's 800,000) would take at the largest size's cost per object.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import tempfile

from timing import timed

#: A tetrahedron: the smallest closed mesh.
TETRAHEDRON = ("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\n"
               "f 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n")
CATEGORIES = 10
STAGES = ("plan", "build", "resume", "open", "stream", "verify", "verify, workers")


def mesh_folder(root: str, objects: int) -> str:
    """``objects`` copies of the tetrahedron as ``root/cat<k>/m<i>.obj``."""
    for i in range(objects):
        folder = os.path.join(root, f"cat{i % CATEGORIES}")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"m{i:07d}.obj"), "w") as f:
            f.write(TETRAHEDRON)
    return root


def tiny_config():
    from tap3d.builder import BuildConfig

    return BuildConfig(image_size=8, views=2, points=64, shard_size=64, device="cpu", seed=0)


def stages(folder: str, out: str, objects: int, scheduler: str, repeats: int) -> dict:
    """Seconds of each stage (:data:`STAGES`) for the mesh folder ``folder`` built into
    ``out`` (``repeats`` samples of the short ones); checks that every object was built and streamed and that verify is clean and the
    same both ways."""
    from tap3d.builder import build
    from tap3d.builder.plan import make_plan
    from tap3d.stream import StreamSettings, ViewStream
    from tap3d.views import open_dataset
    from tap3d.views.verify import verify

    config = tiny_config()
    seconds = {}
    plan = timed(lambda: make_plan(folder, config), repeats=repeats, warmup=1)
    assert len(plan.result.objects) == objects
    seconds["plan"] = plan.min
    built = timed(lambda: build(folder, out, config, workers=0, overwrite=True, progress=False))
    assert built.result.done == objects, built.result.format()
    seconds["build"] = built.min
    resumed = timed(lambda: build(folder, out, config, workers=0, progress=False),
                    repeats=repeats)
    assert resumed.result.shards_rendered == 0 and resumed.result.done == objects
    seconds["resume"] = resumed.min
    opened = timed(lambda: open_dataset(out), repeats=repeats, warmup=1)
    assert opened.result.sizes["object"] == objects
    seconds["open"] = opened.min
    settings = StreamSettings(points=64, seed=0)
    streamed = timed(lambda: sum(1 for _ in ViewStream(out, settings)))
    assert streamed.result == objects
    seconds["stream"] = streamed.min
    here = timed(lambda: verify(out))
    there = timed(lambda: verify(out, scheduler=scheduler))
    assert here.result.ok and there.result == here.result, there.result.format()
    seconds["verify"], seconds["verify, workers"] = here.min, there.min
    return seconds


def table(results: dict, workers: int, project: int) -> str:
    """The markdown table: seconds and ms per object per size, the ratio last/first per object,
    and the minutes ``project`` objects would take at the largest size's cost per object."""
    sizes = sorted(results)
    first, last = sizes[0], sizes[-1]
    head = "| stage | " + " | ".join(f"{n:,} objects: s | ms/object" for n in sizes) + \
        f" | {last:,} / {first:,} per object | {project:,} objects: min |"
    lines = [head, "| --- |" + " ---: | ---: |" * len(sizes) + " ---: | ---: |"]
    for stage in STAGES:
        name = f"verify, {workers} workers" if stage == "verify, workers" else stage
        cells = [f"{results[n][stage]:.3f} | {1000 * results[n][stage] / n:.3f}" for n in sizes]
        ratio = (results[last][stage] / last) / (results[first][stage] / first)
        minutes = results[last][stage] / last * project / 60
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {ratio:.2f} | {minutes:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000],
                        help="objects per run (default: 1000 10000)")
    parser.add_argument("--quick", action="store_true", help="sizes 200 and 1000")
    parser.add_argument("--workers", type=int, default=2,
                        help="Dask workers of the verify row (default: 2)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="samples of plan, resume and open, the best kept (default: 3)")
    parser.add_argument("--project", type=int, default=800_000,
                        help="objects of the projected column (default: 800000, Objaverse 1.0)")
    parser.add_argument("--dir", default=None,
                        help="work folder (default: a temporary one, removed at the end)")
    args = parser.parse_args()
    sizes = [200, 1000] if args.quick else args.sizes
    from tap3d.views.cluster import DaskCluster

    work = args.dir or tempfile.mkdtemp(prefix="tap3d-scale-")
    os.makedirs(work, exist_ok=True)
    started = timed(lambda: DaskCluster(args.workers))
    cluster = started.result
    try:
        # import the shard check on the workers once, so that the first size does not pay it
        cluster.client.run(importlib.import_module, "tap3d.views.shardcheck")
        address = cluster.client.scheduler.address
        print(f"local Dask cluster of {args.workers} workers started in {started.min:.1f} s "
              f"(not in the table)", flush=True)
        results = {}
        for n in sizes:
            folder = mesh_folder(os.path.join(work, f"meshes-{n}"), n)
            results[n] = stages(folder, os.path.join(work, f"views-{n}.zarr"), n, address,
                                args.repeats)
            print(f"{n:,} objects: " + ", ".join(f"{k} {v:.2f} s" for k, v in results[n].items()),
                  flush=True)
    finally:
        cluster.close()
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(results, args.workers, args.project))


if __name__ == "__main__":
    main()
