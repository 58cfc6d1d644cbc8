"""Write the GPU bundle: what `benchmarks/gpu.sh` needs on a GPU machine that has torch but no
network (docs/gpu.md).

    make gpu-bundle                                   # = the line below
    .venv/bin/python benchmarks/gpu_bundle.py --out gpu-bundle
    .venv/bin/python benchmarks/gpu_bundle.py --out /tmp/toy --toy --no-wheels   # the tests' size

The folder (git-ignored, about 49 MiB at full size):

- ``wheels/``: one wheel of each package the trainer imports that such a machine lacks
  (:data:`WHEELS`: zarr and its codecs, pydantic, Pillow, with their dependencies), at the
  versions installed here, for CPython 3.12 on manylinux x86-64, from PyPI (``pip download``;
  nothing is built). Not matplotlib (17 MiB with its dependencies): the check turns off the
  one picture that needs it (part segmentation's ``parts.png``, ``--figure-shapes 0``).
- ``data/tap.zarr``: a ``--preset tap`` build of the 52 demo meshes (pybullet's; 12 views at
  224 px, 1024 points; ``--toy``: one per category at 32 px).
- ``data/modelnet40/``: labelled clouds in ModelNet40's h5 layout from 8 real meshes (the
  tests' classification set; 24 training and 12 test clouds a class).
- ``data/shapenetpart/``: part-labelled clouds of posed pybullet robots in ShapeNetPart's layout
  (the tests' part-segmentation set; 16 poses of 3 robots, 1536 points).
- ``bundle.json``: what was written, with the sizes.

``--toy`` writes the same at the tests' size (32 px, 256 points, a few clouds) in seconds.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))  # the tests' writers of labelled layouts

#: Distributions the trainer imports (tap-cli train, finetune, probe, generate) that the GPU
#: machine's Python lacks (it has torch, numpy, xarray, h5py, scikit-learn, pyyaml, click, tqdm,
#: tensorboard, fsspec): zarr with its dependencies, pydantic with its, and Pillow (sample
#: grids, generate's sheet).
WHEELS = ("zarr", "numcodecs", "donfig", "google-crc32c", "typing-extensions", "packaging",
          "pydantic", "pydantic-core", "annotated-types", "typing-inspection", "pillow")

#: The GPU machine's interpreter and platform.
PYTHON_VERSION, PLATFORMS = "3.12", ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64",
                                     "manylinux2014_x86_64")


def download_wheels(folder: str) -> list[str]:
    """One wheel per :data:`WHEELS` entry at the installed version, for CPython 3.12 on
    manylinux x86-64 (pure-Python wheels where the package has no binary part)."""
    os.makedirs(folder, exist_ok=True)
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in WHEELS]
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary=:all:", "--python-version", PYTHON_VERSION,
                    "--implementation", "cp", *platforms, "--dest", folder, *pins], check=True)
    return sorted(os.listdir(folder))


def build_views(path: str, toy: bool) -> None:
    """The ``--preset tap`` dataset of the demo meshes."""
    size = ["--image-size", "32", "--points", "256", "--limit", "1"] if toy else \
        ["--image-size", "224", "--points", "1024"]
    subprocess.run([sys.executable, "-m", "tap3d.cli", "build-dataset", "pybullet", "-o", path,
                    "--preset", "tap", *size, "--shard-size", "4" if toy else "8",
                    "--workers", "1" if toy else "2", "--quiet"], check=True)


def write_labelled(data: str, toy: bool) -> dict:
    """The classification (ModelNet40 h5) and part-segmentation (ShapeNetPart) sets."""
    import pybullet_data

    from evaluate_data import CLASS_MESHES, sample_clouds, write_modelnet40_h5
    from partseg_data import assign_splits, robot_shapes, write_shapenetpart

    root = pybullet_data.getDataPath()
    per_class, points = (6, 256) if toy else (24, 1024)
    train = sample_clouds(root, per_class, points, seed=0, rotate=False)
    test = sample_clouds(root, max(per_class // 2, 3), points, seed=1, rotate=False)
    classify = write_modelnet40_h5(os.path.join(data, "modelnet40"), train, test,
                                   list(CLASS_MESHES))
    poses, part_points = (6, 256) if toy else (16, 1536)
    shapes = robot_shapes(poses, part_points)
    partseg = write_shapenetpart(os.path.join(data, "shapenetpart"), shapes,
                                 assign_splits(shapes, val=1, test=max(poses // 4, 2)))
    return {"classify": os.path.relpath(classify, data), "partseg": os.path.relpath(partseg, data)}


def folder_mib(path: str) -> float:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path)
               for f in files) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "gpu-bundle"))
    parser.add_argument("--toy", action="store_true", help="the tests' sizes (seconds)")
    parser.add_argument("--no-wheels", dest="wheels", action="store_false",
                        help="no wheels/ (where the packages are installed already)")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    if os.path.exists(args.out):
        if not args.overwrite:
            sys.exit(f"{args.out}: exists (--overwrite replaces it)")
        shutil.rmtree(args.out)
    data = os.path.join(args.out, "data")
    os.makedirs(data)
    summary = {"toy": args.toy, "wheels": []}
    if args.wheels:
        summary["wheels"] = download_wheels(os.path.join(args.out, "wheels"))
    build_views(os.path.join(data, "tap.zarr"), args.toy)
    summary.update(views="tap.zarr", **write_labelled(data, args.toy))
    summary["mib"] = {name: round(folder_mib(os.path.join(args.out, name)), 1)
                      for name in ("wheels", "data") if os.path.isdir(os.path.join(args.out, name))}
    with open(os.path.join(args.out, "bundle.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary["mib"]), f"-> {args.out}")


if __name__ == "__main__":
    main()
