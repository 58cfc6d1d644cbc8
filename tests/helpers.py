"""Helpers shared by the tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil

import numpy as np

#: The repository root (configs/, notebooks/): tests live one or two folders below it.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Real meshes used across the tests: textured (duck, table), material colours (toys), plain.
MESHES = {
    "duck": "duck.obj",
    "table": "table/table.obj",
    "mug": "objects/mug.obj",
    "bunny": "bunny.obj",
    "teddy": "teddy2_VHACD_CHs.obj",
    "cylinder": "toys/cylinder.obj",
    "random000": "random_urdfs/000/000.obj",
    "random005": "random_urdfs/005/005.obj",
}
IMAGE_SIZE = 96
POINTS = 2048
#: The meshes of the TAP authors' tree that :func:`write_tap_tree` writes, and the split of each.
TAP_TREE = {"duck": "train", "mug": "train", "random000": "val", "bunny": "test"}


def copy_obj(src: str, dst_obj: str) -> None:
    """Copy an OBJ with its .mtl and texture images next to it, under a new name."""
    os.makedirs(os.path.dirname(dst_obj), exist_ok=True)
    shutil.copyfile(src, dst_obj)
    folder = os.path.dirname(src)
    for line in open(src, errors="ignore"):
        if line.startswith("mtllib"):
            mtl = line.split(maxsplit=1)[1].strip()
            shutil.copyfile(os.path.join(folder, mtl), os.path.join(os.path.dirname(dst_obj), mtl))
            for mline in open(os.path.join(folder, mtl), errors="ignore"):
                parts = mline.split()
                if parts and parts[0].startswith("map_"):
                    image = os.path.join(folder, parts[-1])
                    if os.path.isfile(image):
                        shutil.copyfile(image, os.path.join(os.path.dirname(dst_obj), parts[-1]))


def project(points: np.ndarray, K: np.ndarray, world_to_camera: np.ndarray,
            projection: str = "perspective"):
    """Pixel coordinates (u, v) and camera z of world points with the stored matrices."""
    from tap3d.views.projection import project as project_points

    return project_points(points, K, world_to_camera, projection)


def mask_hits(points: np.ndarray, K: np.ndarray, world_to_camera: np.ndarray,
              mask: np.ndarray, projection: str = "perspective") -> tuple[np.ndarray, np.ndarray]:
    """Which world points project onto ``mask`` (``(S, S)`` bool) dilated by one pixel (3 x 3),
    and their camera z: ``(hit (N,) bool, z (N,))``. Points outside the image miss."""
    uv, z = project(points, K, world_to_camera, projection)
    pix = np.round(uv).astype(int)
    inside = ((pix >= 0) & (pix < mask.shape[0])).all(1)
    padded = np.pad(mask, 1)
    dilated = np.any([padded[dy:dy + mask.shape[0], dx:dx + mask.shape[1]]
                      for dy in range(3) for dx in range(3)], axis=0)
    hit = np.zeros(len(pix), bool)
    hit[inside] = dilated[pix[inside, 1], pix[inside, 0]]
    return hit, z


def assert_points_on_masks(points: np.ndarray, K: np.ndarray, world_to_camera: np.ndarray,
                           mask: np.ndarray, projection: str = "perspective") -> None:
    """Every object's points (``(N, P, 3)``) in front of every camera and >= 98% of them on
    each view's mask (``(N, V, S, S)``) within one pixel (:func:`mask_hits`)."""
    for i in range(len(points)):
        for v in range(K.shape[1]):
            hit, z = mask_hits(points[i], K[i, v], world_to_camera[i, v], mask[i, v], projection)
            assert (z > 0).all(), (i, v)
            assert hit.mean() >= 0.98, (i, v, hit.mean())


def tap_cli(*args, cwd=None, env=None):
    """Run ``tap-cli`` from this environment; returns the CompletedProcess (text output)."""
    import subprocess
    import sys

    exe = os.path.join(os.path.dirname(sys.executable), "tap-cli")
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd, env=env)


def assert_same_arrays(a_store, b_store) -> None:
    """Every array of the format equal between two datasets (attributes may differ)."""
    import zarr

    from tap3d.views.schema import array_specs

    a, b = zarr.open_group(a_store, mode="r"), zarr.open_group(b_store, mode="r")
    for name in array_specs(1, 1, 1, 1):
        np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)


@contextlib.contextmanager
def dask_cluster(folder, workers: int = 2, env: dict | None = None,
                 worker_args: tuple[str, ...] = ()):
    """``dask scheduler`` and ``workers`` ``dask worker`` processes on 127.0.0.1, as a user
    starts them; yields the scheduler file. Connect with ``Client(scheduler_file=...)``."""
    import subprocess
    import sys
    import time

    bin_dir = os.path.dirname(sys.executable)
    scheduler_file = os.path.join(str(folder), "scheduler.json")
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    processes = [subprocess.Popen([os.path.join(bin_dir, "dask"), "scheduler", "--host",
                                   "127.0.0.1", "--port", "0", "--no-dashboard",
                                   "--scheduler-file", scheduler_file], **quiet)]
    try:
        while not os.path.exists(scheduler_file):
            assert processes[0].poll() is None, "dask scheduler exited"
            time.sleep(0.1)
        for _ in range(workers):
            processes.append(subprocess.Popen(
                [os.path.join(bin_dir, "dask"), "worker", "--scheduler-file", scheduler_file,
                 "--nthreads", "1", "--no-dashboard", *worker_args], **quiet))
        yield scheduler_file
    finally:
        for process in processes[::-1]:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def torchrun_stop_and_resume(tmp_path, args, stop_at: int) -> tuple[dict, dict]:
    """``tap-cli ARGS --out RUN`` under torchrun, 2 processes on the CPU (gloo): once unbroken
    (``tmp_path/full``), once stopped after step ``stop_at`` and resumed (``tmp_path/part``).
    Asserts that both end with the same parameters, bit for bit, and that the checkpoint holds
    both ranks' generator states; returns the two ``last.pt`` dicts."""
    import subprocess
    import sys

    import torch

    from tap3d.train.checkpoint import load_checkpoint

    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(out, *extra):
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc_per_node", "2", "-m", "tap3d.cli", *args, "--out", str(out),
                   "--device", "cpu", "--quiet", *extra]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return load_checkpoint(os.path.join(out, "checkpoints", "last.pt"))

    full = run(tmp_path / "full")
    assert run(tmp_path / "part", "--stop-at", str(stop_at))["step"] == stop_at
    part = run(tmp_path / "part", "--resume")
    assert full["step"] == part["step"] > stop_at
    assert isinstance(part["rng"], list) and len(part["rng"]) == 2
    for key in full["model"]:
        torch.testing.assert_close(full["model"][key], part["model"][key], rtol=0, atol=0,
                                   msg=key)
    return full, part


def real_cloud(index: int, points: int) -> np.ndarray:
    """``(points, 3)`` float32 surface samples (seeded) of the ``index``-th mesh of
    :data:`MESHES` (pybullet_data), centred, farthest point at 1."""
    import pybullet_data
    import trimesh

    path = os.path.join(pybullet_data.getDataPath(), list(MESHES.values())[index])
    mesh = trimesh.load(path, force="mesh")
    xyz, _ = trimesh.sample.sample_surface(mesh, points, seed=index)
    xyz = xyz - xyz.mean(0)
    return (xyz / np.linalg.norm(xyz, axis=1).max()).astype(np.float32)


def write_tap_tree(root, pybullet_root, tree: dict | None = None, size: int = 64) -> dict:
    """The TAP authors' layout (``pointclouds/<split>/model_K.ply`` +
    ``shapenet55v1/<split>/model_K_VVV.jpg``) from real renders: each mesh of ``tree`` (name ->
    split; default :data:`TAP_TREE`), moved into a made-up source frame (y-up, scaled and
    offset), sampled to 1024 points (PLY, open3d), and rendered by tap3d's Embree backend and
    plain shader at ``size`` px in the 12 views of the authors' cameras for the cloud as their
    loader reads it (axes [2, 0, 1], centred, unit radius), JPEG (PIL). Returns what was
    written per object: the source points, the renders' masks and RGB."""
    import open3d as o3d
    import torch
    from PIL import Image

    from tap3d.importers import tap_cameras
    from tap3d.render.cameras import orthographic_cameras
    from tap3d.render.meshes import load_mesh
    from tap3d.render.surface import sample_surface
    from tap3d.render.rasterize import make_rasterizer
    from tap3d.render.shade import CoveredShader, ViewRenderer

    renderer = ViewRenderer(make_rasterizer("embree", size), CoveredShader("plain"))
    written = {}
    for k, (name, split) in enumerate((tree or TAP_TREE).items()):
        mesh = load_mesh(os.path.join(pybullet_root, MESHES[name]), textures="none")
        points, _ = sample_surface(mesh, 1024, seed=k)
        offset, scale = np.array([0.3, -1.0, 2.0]) * k, 5.0 + k
        source = points.astype(np.float64) * scale + offset  # the PLY's frame (y-up)
        theirs = source[:, [2, 0, 1]]
        centroid, radius = theirs.mean(0), np.linalg.norm(theirs - theirs.mean(0), axis=1).max()
        cams = tap_cameras(((theirs - centroid) / radius).astype(np.float32), size)
        verts = ((mesh.verts.double().numpy() * scale + offset)[:, [2, 0, 1]] - centroid) / radius
        moved = dataclasses.replace(mesh, verts=torch.from_numpy(verts.astype(np.float32)))
        K = cams["cameras/K"]
        views = renderer(moved, orthographic_cameras(cams["cameras/R"], cams["cameras/T"],
                                                     K[:, 0, 0], K[:, :2, 2], size))
        stem = f"model_{k:06d}"
        folder = os.path.join(root, "pointclouds", split)
        os.makedirs(folder, exist_ok=True)
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(source))
        o3d.io.write_point_cloud(os.path.join(folder, f"{stem}.ply"), cloud)
        images = os.path.join(root, "shapenet55v1", split)
        os.makedirs(images, exist_ok=True)
        for v in range(12):
            Image.fromarray(views.rgb[v]).save(os.path.join(images, f"{stem}_{v + 1:03d}.jpg"),
                                               quality=95)
        written[f"{split}/{stem}"] = {"source": source, "mask": views.mask, "rgb": views.rgb}
    return written


def objaverse_uid(name: str) -> str:
    """A 32-hex uid, as Objaverse 1.0's, made from a name."""
    import hashlib

    return hashlib.md5(name.encode()).hexdigest()


def write_objaverse(root, pybullet_root, present: dict, absent: tuple = (),
                    lvis: dict | None = None) -> str:
    """Objaverse 1.0 as the ``objaverse`` package downloads a subset, under
    ``root/hf-objaverse-v1``: ``object-paths.json.gz`` listing ``present`` and ``absent`` uids,
    the ``glbs/000-XXX/<uid>.glb`` files of ``present`` only (uid -> (folder, a :data:`MESHES`
    name), exported from pybullet_data's OBJ with trimesh), a downloader's ``.tmp`` file, a
    ``metadata/`` file, and ``lvis-annotations.json.gz`` when ``lvis`` (name -> uids) is given.
    Returns the ``hf-objaverse-v1`` folder."""
    import gzip
    import json

    import trimesh

    base = os.path.join(root, "hf-objaverse-v1")
    paths = {uid: f"glbs/{folder}/{uid}.glb" for uid, (folder, _) in present.items()}
    paths.update({uid: f"glbs/000-{k % 3:03d}/{uid}.glb" for k, uid in enumerate(absent)})
    for uid, (folder, name) in present.items():
        os.makedirs(os.path.join(base, "glbs", folder), exist_ok=True)
        mesh = trimesh.load(os.path.join(pybullet_root, MESHES[name]), force="mesh")
        mesh.export(os.path.join(base, paths[uid]))
    first = os.path.join(base, "glbs", next(iter(present.values()))[0])
    open(os.path.join(first, f"{objaverse_uid('partial')}.glb.tmp"), "wb").close()
    os.makedirs(os.path.join(base, "metadata"), exist_ok=True)
    for name, data in [("object-paths.json.gz", paths), ("metadata/000-000.json.gz", {}),
                       *([("lvis-annotations.json.gz", lvis)] if lvis is not None else [])]:
        with gzip.open(os.path.join(base, name), "wt") as f:
            json.dump(data, f)
    return base
