"""Build throughput on heavy real meshes: the default path against PyTorch3D's loader + shader.

    .venv/bin/python benchmarks/build.py            # everything (about 4 minutes on 2 loaded cores)
    .venv/bin/python benchmarks/build.py --quick    # no Dask build, no memory table

The heavy set stands in for ShapeNetCore's models: 13 real multi-material meshes from
pybullet_data (7k-125k faces: the franka_panda visual links, a1 trunk, laikago chassis,
mini_cheetah body and upper link, the samurai monastery, the roboschool stadium), rendered as a
build does (10 views, 224 x 224, 8192 points; the per-stage table writes shards of
``--shard-size`` objects, default the whole set, the Dask table shards of one). Both paths run in the same
process, object by object in turn, so that load from other processes hits both alike:

- ``default``: tinyobjloader, per-material textures at source resolution (``--textures uv``),
  the covered-pixel shader (``--shader tap3d``), Embree;
- ``before``: PyTorch3D's ``load_obj`` with a 4 x 4 atlas and ``HardPhongShader`` on a copy of
  the mesh per view, Embree (``--obj-loader pytorch3d --textures atlas --shader pytorch3d``),
  which was the default before.

Beside them, a child process renders the same objects in turn with the source of
``--baseline`` (default: the commit before this path, the issue's "today's default").

Child processes run a function of this script by name (:data:`CHILDREN`:
``build.py --child baseline|memory ARGS...``).

Prints four tables:

1. OBJ parsers on three meshes (seconds, one thread): tinyobjloader's binding alone, tap3d's
   reader around it (its checks included), trimesh, Open3D and PyTorch3D's ``load_obj``.
2. per-stage seconds per object (load, rasterize, shade, sample, write), one thread in this
   process (``render_shard`` per object), and objects/s per core.
3. end to end: ``build`` on a warm local Dask cluster of one worker per core, objects/s, per core,
   and the projected time of ShapeNetCore v2 (52,472 models) on 16 cores.
4. peak RSS of one fresh worker process rendering the samurai monastery subdivided once (~499k
   faces), each path.
5. (``--tables glb``, not in the default run) GLB against OBJ at Objaverse's usual render
   (12 views, 512 x 512, 8192 points): 12 textured multi-primitive GLB files made from
   pybullet_data's textured meshes by ``benchmarks/glb_objects.py`` (two primitives and two
   materials each, embedded PNG/JPEG, a ``baseColorFactor``) and the same meshes as OBJ + MTL +
   images; per-stage seconds per object and objects/s per core (one thread, in this process,
   the set as one shard per format, formats in turn, best of ``--glb-rounds`` rounds), against
   the Blender renderers' ~12 GPU-seconds per object; the load split (file parse, image decode,
   the rest); how alike the two formats' views are; ``--glb-profile N``: cProfile of one GLB
   object's render, its top N functions.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from timing import timed

HEAVY = ["franka_panda/meshes/visual/" + name for name in
         ("hand.obj", "link1.obj", "link2.obj", "link3.obj", "link4.obj", "link5.obj",
          "link6.obj")] + [
    "a1/meshes/trunk.obj", "laikago/chassis.obj", "mini_cheetah/meshes/mini_body.obj",
    "mini_cheetah/meshes/mini_upper_link.obj", "samurai_monastry.obj",
    "roboschool/models_outdoor/stadium/stadium.obj"]
SHAPENET_V2_MODELS = 52_472
#: The last commit before issue 13 (tinyobjloader, textures at source resolution, the covered
#: shader): "today's default" of the issue, run from its own source in a child process.
BASELINE_REF = "4ae3ed4"
PATHS = {"default": dict(),
         "before": dict(obj_loader="pytorch3d", textures="atlas", shader="pytorch3d")}
STAGES = ("load", "rasterize", "shade", "sample", "write")
#: Objaverse's usual render (Zero123, SyncDreamer, OpenLRM: 12 views, 512 px), and what the
#: published Blender scripts spend per object: ~800k objects in 2 weeks on 8 V100s
#: (SyncDreamer issue #14), 2 * 7 * 86400 * 8 / 800_000 = 12.1 GPU-seconds.
GLB_VIEWS, GLB_SIZE = 12, 512
BLENDER_GPU_SECONDS = 2 * 7 * 86400 * 8 / 800_000


def heavy_folder(root: str, out: str) -> str:
    """The heavy set as a mesh folder ``<source>/<name>.obj`` with MTL files and images."""
    for rel in HEAVY:
        src = os.path.join(root, rel)
        category = rel.split("/")[0]
        target = os.path.join(out, category)
        os.makedirs(target, exist_ok=True)
        shutil.copyfile(src, os.path.join(target, os.path.basename(src)))
        folder = os.path.dirname(src)
        for line in open(src, errors="ignore"):
            if line.startswith("mtllib"):
                mtl = line.split(maxsplit=1)[1].strip()
                shutil.copyfile(os.path.join(folder, mtl), os.path.join(target, mtl))
                for entry in open(os.path.join(folder, mtl), errors="ignore"):
                    parts = entry.split()
                    if parts and parts[0] == "map_Kd" and \
                            os.path.isfile(os.path.join(folder, parts[-1])):
                        shutil.copyfile(os.path.join(folder, parts[-1]),
                                        os.path.join(target, parts[-1]))
    return out


def parser_table(root: str) -> list[str]:
    import warnings

    import open3d as o3d
    import tinyobjloader
    import trimesh
    from pytorch3d.io import load_obj

    from tap3d.render.objfile import read_obj

    def binding(path):
        reader = tinyobjloader.ObjReader()
        reader.ParseFromFile(path, tinyobjloader.ObjReaderConfig())

    def pytorch3d(path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_obj(path, create_texture_atlas=True, texture_atlas_size=4, texture_wrap="repeat")

    candidates = {"tinyobjloader binding": binding, "tap3d read_obj": read_obj,
                  "trimesh.load": lambda p: trimesh.load(p, force="mesh", process=False),
                  "open3d read_triangle_mesh": lambda p: o3d.io.read_triangle_mesh(p),
                  "pytorch3d load_obj + atlas": pytorch3d}
    rows = ["| mesh | faces | " + " | ".join(candidates) + " |",
            "| --- | ---: |" + " ---: |" * len(candidates)]
    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
    print("\n".join(rows), flush=True)
    for rel in ("franka_panda/meshes/visual/link6.obj", "a1/meshes/trunk.obj",
                "samurai_monastry.obj"):
        path = os.path.join(root, rel)
        times = [timed(lambda: fn(path), repeats=3).min for fn in candidates.values()]
        rows.append(f"| {os.path.basename(rel)} | {len(read_obj(path).faces)} | "
                    + " | ".join(f"{t:.3f}" for t in times) + " |")
        print(rows[-1], flush=True)
    return rows


def _baseline_child(source: str, folder: str, store: str, shard_size: str) -> None:
    """The child process of :func:`_baseline`: renders with the tap3d of ``source`` (a commit's
    source tree), one thread; reads object indices from stdin, writes ``done seconds`` lines."""
    import importlib

    import torch

    sys.path.insert(0, source)  # the baseline commit's tap3d first
    torch.set_num_threads(1)
    # its build package: tap3d.build before the layout commit 469bd89, tap3d.builder since
    name = "tap3d.builder" if os.path.isdir(os.path.join(source, "tap3d", "builder")) \
        else "tap3d.build"
    builder, writer = importlib.import_module(name), importlib.import_module("tap3d.views.writer")
    for module in (builder, writer):  # not this checkout's (its editable install finds those)
        assert os.path.abspath(module.__file__).startswith(os.path.abspath(source) + os.sep), \
            f"{module.__name__} from {module.__file__}, not from the baseline {source}"
    render_shard = builder.render_shard
    size = int(shard_size)
    plan = builder.make_plan(folder, builder.BuildConfig(shard_size=size, device="cpu"))
    writer.create_dataset(store, plan.specs(), size, plan.attributes, plan.index, overwrite=True)
    render_shard(store, 0, 0, plan.objects[:1], plan.config, threads=1)  # warm-up
    print("ready", flush=True)
    for line in sys.stdin:
        i = int(line)
        report = render_shard(store, i // size, i, plan.objects[i:i + size], plan.config,
                              threads=1)
        print(report.done, report.seconds, flush=True)


def _baseline(folder: str, workdir: str, ref: str, shard_size: int):
    """A child process rendering with the source of commit ``ref``; None without git or ref."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    source = os.path.join(workdir, "baseline")
    os.makedirs(source)
    archive = subprocess.run(["git", "-C", repo, "archive", ref, "tap3d"], capture_output=True)
    if archive.returncode != 0:
        print(f"(no baseline: git archive {ref} failed: {archive.stderr.decode().strip()})")
        return None
    subprocess.run(["tar", "-x", "-C", source], input=archive.stdout, check=True)
    log = os.path.join(workdir, "baseline.log")
    with open(log, "w") as errors:
        child = subprocess.Popen(_child_command("baseline", source, folder,
                                                os.path.join(workdir, "baseline.zarr"),
                                                shard_size),
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
                                 text=True)
    if child.stdout.readline().strip() != "ready":
        child.wait()
        raise RuntimeError("the baseline child failed to start:\n" + open(log).read()[-2000:])
    return child


def stage_table(folder: str, workdir: str, ref: str | None = BASELINE_REF,
                shard_size: int = 1) -> tuple[list, dict]:
    """Both paths shard by shard in this process, one thread, and the commit ``ref`` in a
    child process in turn with them; returns rows and totals (per object: shard totals over
    the number of objects)."""
    import torch

    from tap3d.builder import BuildConfig, make_plan, render_shard
    from tap3d.views.writer import create_dataset

    torch.set_num_threads(1)
    plans, stores = {}, {}
    for name, options in PATHS.items():
        plans[name] = make_plan(folder, BuildConfig(shard_size=shard_size, device="cpu",
                                                    **options))
        stores[name] = os.path.join(workdir, f"stages-{name}.zarr")
        plan = plans[name]
        create_dataset(stores[name], plan.specs(), shard_size, plan.attributes, plan.index,
                       overwrite=True)
    totals = {name: {stage: 0.0 for stage in STAGES + ("seconds",)} for name in PATHS}
    done = {name: 0 for name in PATHS}
    for name in PATHS:  # warm-up: imports, Embree, the first texture read
        plan = plans[name]
        render_shard(stores[name], 0, 0, plan.objects[:1], plan.config, threads=1)
    child = _baseline(folder, workdir, ref, shard_size) if ref else None
    baseline = {"done": 0, "seconds": 0.0}
    for index in range(0, len(plans["default"].objects), shard_size):
        if child is not None:
            child.stdin.write(f"{index}\n")
            child.stdin.flush()
            objects, seconds = child.stdout.readline().split()
            baseline["done"] += int(objects)
            baseline["seconds"] += float(seconds)
        for name, plan in plans.items():
            report = render_shard(stores[name], index // shard_size, index,
                                  plan.objects[index:index + shard_size], plan.config, threads=1)
            done[name] += report.done
            for stage in STAGES:
                totals[name][stage] += report.timings.get(stage, 0.0)
            totals[name]["seconds"] += report.seconds
    n = len(plans["default"].objects)
    rows = ["| path | objects | " + " | ".join(f"{s} s/object" for s in STAGES)
            + " | total s/object | objects/s per core |",
            "| --- | ---: |" + " ---: |" * (len(STAGES) + 2)]
    for name in PATHS:
        t = totals[name]
        rows.append(f"| {name} | {done[name]}/{n} | " + " | ".join(f"{t[s] / n:.3f}" for s in STAGES)
                    + f" | {t['seconds'] / n:.3f} | {n / t['seconds']:.2f} |")
    if child is not None:
        child.stdin.close()
        child.wait()
        rows.append(f"| {ref} (today's default) | {baseline['done']}/{n} |"
                    + " |" * len(STAGES) + f" {baseline['seconds'] / n:.3f} | "
                    f"{n / baseline['seconds']:.2f} |")
    ratio = totals["before"]["seconds"] / totals["default"]["seconds"]
    rows.append(f"\ndefault / before, objects/s per core in one thread: {ratio:.1f}x")
    if child is not None:
        rows.append(f"default / {ref}, objects/s per core in one thread: "
                    f"{baseline['seconds'] / totals['default']['seconds']:.1f}x")
    return rows, totals


def _warm_imports():
    import open3d  # noqa: F401
    import pytorch3d.renderer  # noqa: F401
    import tinyobjloader  # noqa: F401
    import trimesh.sample  # noqa: F401

    import tap3d.builder.shard  # noqa: F401
    return os.getpid()


def dask_table(folder: str, workdir: str, workers: int) -> list[str]:
    import dask
    from dask.distributed import Client, LocalCluster

    from tap3d.builder import BuildConfig, build

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=50)
    rows = ["| path | workers | objects | seconds | objects/s | objects/s per core "
            "| ShapeNetCore v2 on 16 cores |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    print("\n".join(rows), flush=True)
    try:
        with Client(cluster) as client:
            client.run(_warm_imports)
            for name, options in PATHS.items():
                config = BuildConfig(shard_size=1, **options)
                summary = build(folder, os.path.join(workdir, f"dask-{name}.zarr"), config,
                                scheduler=cluster.scheduler_address, progress=False,
                                overwrite=True)
                rate = summary.done / summary.seconds
                per_core = rate / workers
                hours = SHAPENET_V2_MODELS / (per_core * 16) / 3600
                rows.append(f"| {name} | {workers} | {summary.done} | {summary.seconds:.1f} | "
                            f"{rate:.2f} | {per_core:.2f} | {hours * 60:.0f} min |")
                print(rows[-1], flush=True)
    finally:
        cluster.close()
    return rows


def _high_water() -> int:
    """This process's peak resident set, KiB (``VmHWM`` restarts at exec; ``ru_maxrss`` keeps
    the parent's peak)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))


def _memory_child(mesh: str, path: str, folder: str) -> None:
    """The child process of :func:`memory_table`: renders ``mesh`` on the path ``path`` (a key
    of :data:`PATHS`) in a fresh process, one thread; prints the peak RSS after the imports and
    at the end (KiB) and the seconds of the render."""
    import torch

    from tap3d.builder import BuildConfig, make_renderer, render_object
    from tap3d.builder.plan import make_plan
    from tap3d.sources import ObjectSpec

    torch.set_num_threads(1)
    config = make_plan(folder, BuildConfig(device="cpu", **PATHS[path])).config
    renderer = make_renderer(config, threads=1)
    before = _high_water()
    seconds = timed(lambda: render_object(ObjectSpec("big", "big", mesh), config, renderer)).min
    print(before, _high_water(), seconds)


def memory_table(root: str, workdir: str) -> list[str]:
    import trimesh

    folder = os.path.join(workdir, "big")
    os.makedirs(os.path.join(folder, "big"))
    big = os.path.join(folder, "big", "samurai_x4.obj")
    mesh = trimesh.load(os.path.join(root, "samurai_monastry.obj"), force="mesh", process=False)
    trimesh.Trimesh(*trimesh.remesh.subdivide(mesh.vertices, mesh.faces), process=False).export(big)
    rows = ["| path | faces | peak RSS after imports (MiB) | peak RSS of the worker (MiB) "
            "| seconds for 10 views + 8192 points |", "| --- | ---: | ---: | ---: | ---: |"]
    print("\n".join(rows), flush=True)
    for name in PATHS:
        out = subprocess.run(_child_command("memory", big, name, folder),
                             capture_output=True, text=True, check=True)
        before, peak, seconds = out.stdout.split()[-3:]
        rows.append(f"| {name} | {len(mesh.faces) * 4} | {int(before) / 1024:.0f} | "
                    f"{int(peak) / 1024:.0f} | {float(seconds):.1f} |")
        print(rows[-1], flush=True)
    return rows


def _glb_load_split(made: list[dict]) -> list[str]:
    """Seconds per object of ``load_mesh`` and two of its parts, each format (best of 3 per
    object): the file's parse and the images' decode; the rest (GLB: accessors and scene graph;
    both: checks, normalization, the appearance) is ``load_mesh`` less those."""
    from tap3d.render.gltfdata import GltfFile
    from tap3d.render.meshes import load_mesh
    from tap3d.render.objfile import read_obj
    from tap3d.render.textures import read_image

    def best(fn):
        return timed(fn, repeats=3).min

    def glb_images(path):
        reader = GltfFile(path)
        return lambda: [reader.image(i) for i in range(len(reader.gltf.images))]

    def obj_images(path):
        files = sorted({m.image for m in read_obj(path).materials if m.image})
        return lambda: [read_image(f) for f in files]

    sums = {"GLB (pygltflib: JSON + binary chunk)": [0.0] * 3,
            "OBJ + MTL (tinyobjloader + checks)": [0.0] * 3}
    for item in made:
        glb, obj = item["glb"], item["obj"]
        for total, (parse, images, load) in zip(sums.values(), (
                (lambda: GltfFile(glb), glb_images(glb), lambda: load_mesh(glb)),
                (lambda: read_obj(obj), obj_images(obj), lambda: load_mesh(obj)))):
            for k, fn in enumerate((parse, images, load)):
                total[k] += best(fn)
    n = len(made)
    rows = ["| format | file parse | image decode | the rest | load_mesh |",
            "| --- | ---: | ---: | ---: | ---: |"]
    for name, (parse, images, load) in sums.items():
        rows.append(f"| {name} | {parse / n:.4f} | {images / n:.4f} | "
                    f"{(load - parse - images) / n:.4f} | {load / n:.4f} |")
    return rows


def _glb_texel_split(plans: dict) -> tuple[list[str], object]:
    """Seconds per object of the shader's texture lookup (``mesh.textures.sample`` on the
    covered pixels of the 12 views) against the rest of shading, each format; for GLB also its
    two parts (linear base colour: sRGB-decoded bilinear lookups x factor; the sRGB encode).
    Best of 3 each. Returns the rows and the GLB object with the most covered pixels."""
    from tap3d.builder import make_renderer
    from tap3d.render.basecolor import linear_to_srgb
    from tap3d.render.cameras import make_cameras, make_layout
    from tap3d.render.meshes import load_mesh

    sums, most = {}, (0, None)
    for name, plan in plans.items():
        config = plan.config
        renderer = make_renderer(config, threads=1)
        cameras = make_cameras(make_layout(config.layout, config.views, config.distance),
                               config.fov, device="cpu")
        total = sums.setdefault(name, [0.0] * 5)
        for spec in plan.objects:
            mesh = load_mesh(spec.path)
            covered = renderer.rasterizer.covered(mesh.verts, mesh.faces, cameras)
            face, bary = covered.face, covered.bary
            shade = timed(lambda: renderer.shader(mesh, cameras, covered, config.image_size),
                          repeats=3).min
            sample = timed(lambda: mesh.textures.sample(face, bary), repeats=3).min
            parts = [0.0, 0.0]
            if hasattr(mesh.textures, "linear"):  # glTF's base colour
                linear = timed(lambda: mesh.textures.linear(face, bary), repeats=3)
                parts = [linear.min, timed(lambda: linear_to_srgb(linear.result),
                                           repeats=3).min]
                if len(face) > most[0]:
                    most = (len(face), spec)
            for k, value in enumerate((len(face), sample, shade - sample, *parts)):
                total[k] += value
    n = len(next(iter(plans.values())).objects)
    rows = ["| format | covered pixels / object | texture lookup s | of it: linear base colour "
            "s | of it: sRGB encode s | rest of the shader s |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, (pixels, sample, rest, linear, encode) in sums.items():
        parts = f"{linear / n:.3f} | {encode / n:.3f}" if linear else " | "
        rows.append(f"| {name} | {pixels / n:,.0f} | {sample / n:.3f} | {parts} | "
                    f"{rest / n:.3f} |")
    return rows, most[1]


def _views_alike(stores: dict) -> str:
    """Mask disagreement and mean |rgb| (of 255, where both cover) between the two stores."""
    from tap3d.views import schema

    glb, obj = (schema.open_views(store) for store in stores.values())
    mask_a, mask_b = np.asarray(glb["mask"][:]), np.asarray(obj["mask"][:])
    both = mask_a & mask_b
    rgb = np.abs(np.asarray(glb["rgb"][:], np.int16) - np.asarray(obj["rgb"][:], np.int16))
    return (f"GLB against OBJ views: masks disagree on {100 * (mask_a != mask_b).mean():.3f}% "
            f"of pixels, mean |rgb| {rgb[both].mean():.2f} of 255 where both cover")


def glb_table(root: str, workdir: str, rounds: int = 3, profile: int = 0) -> list[str]:
    """GLB against the same meshes as OBJ at 12 views of 512 px, one thread in this process
    (module docstring, table 5); returns the rows printed."""
    import torch
    from glb_objects import make_sets

    from tap3d.builder import BuildConfig, make_plan, render_shard
    from tap3d.views.writer import create_dataset

    torch.set_num_threads(1)
    glb, obj, made = make_sets(root, os.path.join(workdir, "glb-set"))
    n = len(made)
    faces = sorted(item["faces"] for item in made)
    print(f"{n} objects, {faces[0]}-{faces[-1]} faces (median {faces[n // 2]}), "
          f"{sum(item['primitives'] for item in made)} primitives, "
          f"{sum(item['materials'] for item in made)} materials, GLB files "
          f"{sum(item['glb_bytes'] for item in made) / 2**20:.1f} MiB; images: "
          + ", ".join(sorted({item['image'] for item in made})) + "\n", flush=True)
    config = BuildConfig(views=GLB_VIEWS, image_size=GLB_SIZE, shard_size=n, device="cpu")
    plans = {"GLB": make_plan(glb, config), "OBJ + MTL + PNG/JPEG": make_plan(obj, config)}
    stores = {}
    for name, plan in plans.items():
        assert len(plan.objects) == n and plan.config.layout == "mvcnn", plan.config
        stores[name] = os.path.join(workdir, f"glb-{len(stores)}.zarr")
        create_dataset(stores[name], plan.specs(), n, plan.attributes, plan.index,
                       overwrite=True)
        render_shard(stores[name], 0, 0, plan.objects[:1], plan.config, threads=1)  # warm-up
    best = {}
    for _ in range(rounds):  # the formats in turn, so that other load hits both alike
        for name, plan in plans.items():
            run = timed(lambda: render_shard(stores[name], 0, 0, plan.objects, plan.config,
                                             threads=1))
            assert run.result.done == n, run.result.failed
            if name not in best or run.min < best[name][0]:
                best[name] = (run.min, run.result.timings)
    rows = ["| path | " + " | ".join(f"{s} s/object" for s in STAGES)
            + " | total s/object | objects/s per core | Blender's GPU-s / these core-s |",
            "| --- |" + " ---: |" * (len(STAGES) + 3)]
    for name, (seconds, stages) in best.items():
        rows.append(f"| {name} | " + " | ".join(f"{stages.get(s, 0.0) / n:.3f}" for s in STAGES)
                    + f" | {seconds / n:.3f} | {n / seconds:.2f} | "
                    f"{BLENDER_GPU_SECONDS / (seconds / n):.0f}x |")
    glb_seconds, obj_seconds = (value[0] for value in best.values())
    glb_rate = n / glb_seconds
    rows.append(f"\nGLB / OBJ seconds per object: {glb_seconds / obj_seconds:.2f}; "
                f"goal 1 object/s per core: {'met' if glb_rate >= 1 else 'NOT met'} "
                f"({glb_rate:.2f}); Blender ~{BLENDER_GPU_SECONDS:.1f} GPU-s per object")
    rows.append(_views_alike(stores))
    print("\n".join(rows), flush=True)
    print("\n### Load split, seconds per object (best of 3 each, one thread)\n")
    split = _glb_load_split(made)
    print("\n".join(split), flush=True)
    print("\n### Shading split, seconds per object (best of 3 each, one thread)\n")
    texels, largest = _glb_texel_split(plans)
    print("\n".join(texels), flush=True)
    rows += [""] + split + [""] + texels
    if profile:
        rows += [""] + _glb_profile(plans["GLB"], largest, profile)
    return rows


def _glb_profile(plan, spec, top: int) -> list[str]:
    """cProfile of rendering one GLB object (``spec``: the one with the most covered pixels)
    once, one thread: its top ``top`` functions by cumulative and by own time."""
    import cProfile
    import io
    import pstats

    from tap3d.builder import make_renderer, render_object

    renderer = make_renderer(plan.config, threads=1)
    render_object(spec, plan.config, renderer)  # warm
    profiler = cProfile.Profile()
    profiler.enable()
    stages = {}
    render_object(spec, plan.config, renderer, stages)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    lines = [f"### cProfile of one GLB object ({spec.object_id}; stages "
             + ", ".join(f"{k} {v:.3f}" for k, v in stages.items()) + ")", out.getvalue()]
    print("\n".join(lines), flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="no Dask build, no memory table")
    parser.add_argument("--tables", default="parsers,stages,dask,memory",
                        help="comma-separated tables to print (parsers, stages, dask, memory; "
                             "glb: GLB against OBJ at 12 views of 512 px, not in the default)")
    parser.add_argument("--glb-rounds", type=int, default=3,
                        help="rounds of the GLB table (the formats in turn; the best kept)")
    parser.add_argument("--glb-profile", type=int, default=0, metavar="N",
                        help="also cProfile one GLB object in the GLB table, top N functions")
    parser.add_argument("--shard-size", type=int, default=len(HEAVY),
                        help="objects per shard in the per-stage table (default: the whole "
                             "heavy set, as a build's shards of 64 hold many objects; 1: the "
                             "write stage pays one file per array per object)")
    parser.add_argument("--baseline", default=BASELINE_REF,
                        help="git commit rendered as today's default beside the two paths "
                             "('' for none)")
    args = parser.parse_args()
    import pybullet_data

    root = pybullet_data.getDataPath()
    tables = {"parsers", "stages"} if args.quick else set(args.tables.split(","))
    with tempfile.TemporaryDirectory() as workdir:
        folder = heavy_folder(root, os.path.join(workdir, "heavy"))
        if "parsers" in tables:
            print("## OBJ parsers, seconds (best of 3, one thread)\n")
            parser_table(root)
        if "stages" in tables:
            print("\n## Per-stage seconds per object, heavy set (10 views, 224 px, 8192 points, "
                  f"shard size {args.shard_size}), one thread\n")
            rows, _ = stage_table(folder, workdir, args.baseline, args.shard_size)
            print("\n".join(rows), flush=True)
        if "dask" in tables:
            print(f"\n## End to end on a warm local Dask cluster ({args.workers} workers)\n")
            dask_table(folder, workdir, args.workers)
        if "memory" in tables:
            print("\n## Peak memory (VmHWM) of one worker on the ~499k-face mesh\n")
            memory_table(root, workdir)
        if "glb" in tables:
            print(f"\n## GLB against OBJ + MTL + images ({GLB_VIEWS} views, {GLB_SIZE} px, "
                  "8192 points), seconds per object, one thread\n")
            glb_table(root, workdir, args.glb_rounds, args.glb_profile)
    print(f"\n(numpy {np.__version__}, {os.cpu_count()} cores, peak RSS of this process "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")


#: What a child process of this script runs: ``build.py --child NAME ARGS...``.
CHILDREN = {"baseline": _baseline_child, "memory": _memory_child}


def _child_command(name: str, *args) -> list[str]:
    """The command line of a fresh Python process running ``CHILDREN[name](*args)``."""
    return [sys.executable, os.path.abspath(__file__), "--child", name, *map(str, args)]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        CHILDREN[sys.argv[2]](*sys.argv[3:])
    else:
        main()
