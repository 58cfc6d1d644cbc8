"""The build: bad meshes are recorded and the build goes on, seeds, Dask workers, the CLI."""

from __future__ import annotations

import os

import numpy as np
import pytest
import zarr

from helpers import assert_same_arrays, copy_obj, tap_cli
from tap3d.builder import BuildConfig, build
from tap3d.render.meshes import MeshError, load_mesh

TINY = BuildConfig(views=3, layout="random", image_size=32, points=128, shard_size=2, seed=3)


def _write_broken(folder, pybullet_root) -> dict[str, str]:
    """Broken meshes next to good ones; returns file name -> expected words of the reason."""
    os.makedirs(folder, exist_ok=True)
    bunny = open(os.path.join(pybullet_root, "bunny.obj")).read()
    (folder / "empty.obj").write_bytes(b"")
    (folder / "garbage.obj").write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096,
                                                                              dtype=np.uint8)))
    lines = bunny.splitlines()
    first_v = next(i for i, line in enumerate(lines) if line.startswith("v "))
    lines[first_v] = "v nan 0.0 0.0"
    (folder / "nan_vertex.obj").write_text("\n".join(lines) + "\n")
    (folder / "index_past_end.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\nf 1 2 9\n")
    (folder / "zero_area.obj").write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
    return {"empty.obj": "empty file", "garbage.obj": "not a text OBJ file", "nan_vertex.obj": "NaN",
            "index_past_end.obj": "index vertices", "zero_area.obj": "zero area"}


def test_broken_meshes_fail_with_reason_and_build_goes_on(tmp_path, pybullet_root):
    src = tmp_path / "src"
    expected = _write_broken(src / "bad", pybullet_root)
    for name in ("duck.obj", "bunny.obj"):
        copy_obj(os.path.join(pybullet_root, name), str(src / "good" / name))
    out = str(tmp_path / "out.zarr")
    summary = build(str(src), out, TINY, workers=0, progress=False)
    g = zarr.open_group(out)
    ids, status, error = list(g["object_id"][:]), g["status"][:], g["error"][:]
    assert summary.done == 2 and len(summary.failed) == len(expected)
    for name, words in expected.items():
        i = ids.index(f"bad/{name}")
        assert status[i] == 2
        assert str(src / "bad" / name) in error[i] and words in error[i], error[i]
        assert not g["mask"][i].any()  # nothing rendered for a failed object
    for name in ("duck.obj", "bunny.obj"):
        i = ids.index(f"good/{name}")
        assert status[i] == 1 and error[i] == "" and g["mask"][i].any()
    assert "failed bad/garbage.obj" in summary.format()


@pytest.mark.parametrize("content, reason", [
    ("v 0 0 0\nv 1 0 0\n", "no faces"),
    ("f 1 2 3\n", "no vertices"),
    ("v 0 0 0\nv 0 0 0\nv 0 0 0\nf 1 2 3\n", "zero area"),
    ("v 0 0 0\nv inf 0 0\nv 0 1 0\nf 1 2 3\n", "infinite"),
])
def test_load_mesh_rejects(tmp_path, content, reason):
    path = tmp_path / "bad.obj"
    path.write_text(content)
    with pytest.raises(MeshError) as info:
        load_mesh(path)
    assert str(path) in str(info.value) and reason in str(info.value)


def test_missing_texture_falls_back_with_warning(tmp_path, pybullet_root):
    copy_obj(os.path.join(pybullet_root, "duck.obj"), str(tmp_path / "duck.obj"))
    os.remove(tmp_path / "duckCM.png")
    mesh = load_mesh(tmp_path / "duck.obj")
    assert mesh.warnings and "duckCM.png" in mesh.warnings[0]
    out = str(tmp_path / "out.zarr")
    build(str(tmp_path), out, TINY, workers=0, progress=False)
    g = zarr.open_group(out)
    assert g["status"][0] == 1 and "duckCM.png" in str(g["warnings"][0])


@pytest.mark.slow
def test_same_seed_same_arrays_whatever_the_workers(tmp_path, mesh_folder):
    """In process, one Dask worker and two Dask workers give identical datasets."""
    outs = {}
    for workers in (0, 1, 2):
        outs[workers] = str(tmp_path / f"w{workers}.zarr")
        summary = build(mesh_folder, outs[workers], TINY, synsets=["plain"], limit=4,
                        workers=workers, progress=False)
        assert summary.done == 4
    ref = zarr.open_group(outs[0])
    for workers in (1, 2):
        assert_same_arrays(outs[0], outs[workers])
    # the random layout is drawn per object: objects differ, and another seed differs
    dist = ref["cameras/distance"][:]
    assert not np.allclose(dist[0], dist[1]) and ((dist >= 1.8) & (dist < 2.2)).all()
    reseeded = str(tmp_path / "seed4.zarr")
    build(mesh_folder, reseeded, BuildConfig(**{**TINY.__dict__, "seed": 4}), synsets=["plain"],
          limit=4, workers=0, progress=False)
    assert not np.array_equal(ref["points"][:], zarr.open_group(reseeded)["points"][:])


def test_cli_build_and_preview(tmp_path, mesh_folder):
    out = tmp_path / "cli.zarr"
    run = tap_cli("build-dataset", mesh_folder, "-o", str(out), "--views", "6", "--image-size", "32",
               "--points", "64", "--synsets", "textured", "--workers", "0", "--quiet")
    assert run.returncode == 0, run.stderr
    assert "2 of 2 objects done, 0 failed" in run.stdout and "views/s" in run.stdout
    g = zarr.open_group(str(out))
    assert g["rgb"].shape == (2, 6, 32, 32, 3) and g.attrs["layout"]["name"] == "orthogonal"
    # the same output with other settings is refused, naming them, and left unchanged
    before = {name: os.path.getmtime(os.path.join(d, f)) for d, _, files in os.walk(out)
              for f in files for name in [os.path.join(d, f)]}
    again = tap_cli("build-dataset", mesh_folder, "-o", str(out), "--workers", "0")
    assert again.returncode != 0 and "different settings" in again.stderr
    for setting in ("views: existing 6, this build 10", "image_size: existing 32",
                    "points_per_object", "objects: existing 2, this build 8"):
        assert setting in again.stderr, again.stderr
    assert {name: os.path.getmtime(name) for name in before} == before
    # the same command again resumes: nothing left to render
    same = tap_cli("build-dataset", mesh_folder, "-o", str(out), "--views", "6", "--image-size",
                "32", "--points", "64", "--synsets", "textured", "--workers", "0", "--quiet")
    assert same.returncode == 0 and "resumed: 0 of 1 shards rendered" in same.stdout, same.stdout
    sheet = tmp_path / "sheet.png"
    run = tap_cli("preview", str(out), "-o", str(sheet))
    assert run.returncode == 0, run.stderr
    from PIL import Image

    image = np.asarray(Image.open(sheet))
    assert image.shape == (2 * 112, 6 * 112, 3) and image.min() < 200


@pytest.mark.parametrize("source", ["does/not/exist", "empty"])
def test_cli_bad_source_writes_nothing(tmp_path, source):
    if source == "empty":
        (tmp_path / "empty").mkdir()
    out = tmp_path / "never.zarr"
    run = tap_cli("build-dataset", source, "-o", str(out), "--workers", "0", cwd=tmp_path)
    assert run.returncode != 0
    assert len(run.stderr.strip().splitlines()) == 1 and source in run.stderr
    assert not out.exists()
