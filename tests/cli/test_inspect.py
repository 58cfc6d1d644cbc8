"""open_dataset, `tap-cli inspect` for datasets and runs, and the notebook, on real renders."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import zarr
from PIL import Image

from helpers import ROOT, tap_cli

from tap3d.views import open_dataset
from tap3d.views.pictures import dataset_sheet


@pytest.fixture(scope="module")
def small(make_dataset):
    """8 real meshes, 6 views of 48 px, shards of 3; one object marked failed afterwards."""
    out = make_dataset("inspect", views=6, image_size=48, points=512, shard_size=3)
    g = zarr.open_group(out, mode="r+")
    g["status"][6] = 2
    g["error"][6] = "made-up failure for the summary"
    return out


def test_open_dataset_dims_coords_and_values(small):
    ds = open_dataset(small)
    g = zarr.open_group(small, mode="r")
    expected = {"object": 8, "view": 6, "y": 48, "x": 48, "channel": 3, "point": 512, "xyz": 3}
    assert {k: ds.sizes[k] for k in expected} == expected
    assert ds.rgb.dims == ("object", "view", "y", "x", "channel")
    assert ds.K.dims == ("object", "view", "intrinsics_row", "intrinsics_col")
    assert list(ds.object.values) == [str(s) for s in g["object_id"][:]]
    assert list(ds.category.values) == [str(s) for s in g["category"][:]]
    assert list(ds.view.values) == list(range(6))
    assert ds.azimuth.dims == ("object", "view") and "azimuth" in ds.coords
    assert ds.rgb.chunks[0] == (3, 3, 2)  # one Dask chunk per shard, lazily
    name = str(g["object_id"][4])
    np.testing.assert_array_equal(ds.rgb.sel(object=name).values, g["rgb"][4])
    np.testing.assert_array_equal(ds.world_to_camera.sel(object=name, view=2).values,
                                  g["cameras/world_to_camera"][4, 2])
    np.testing.assert_array_equal(ds.elevation.sel(object=name).values,
                                  g["cameras/elevation"][4])
    np.testing.assert_array_equal(ds.points.values, g["points"][:])
    np.testing.assert_array_equal(ds.scale.values, g["normalization/scale"][:])
    assert ds.sel(object=name).label.item() == g["label"][4]
    zarr.open_group(str(small) + "-other", mode="w").attrs["format"] = "other"
    with pytest.raises(ValueError, match="not a tap3d.views dataset"):
        open_dataset(str(small) + "-other")


def test_inspect_dataset_prints_counts_and_draws_panels(small, tmp_path):
    sheet = tmp_path / "sheet.png"
    run = tap_cli("inspect", small, "--out", str(sheet), "--objects", "2", "--cameras",
               str(tmp_path / "cams.png"))
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "objects     8 in 2 categories: plain 6, textured 2" in out, out
    assert "done 7, failed 1, pending 0" in out
    assert "made-up failure for the summary" in out
    assert "6 per object (orthogonal layout), 48 x 48 px, 512 points" in out
    assert "KiB per view" in out and "compression ratio" in out
    result = dataset_sheet(small, str(sheet), objects=2)
    image = np.asarray(Image.open(sheet).convert("RGB")).astype(np.float32)
    assert image.shape[:2] == result["size"][::-1] == (2 * 3 * 104, (6 * 1.3 + 4.2) * 80)
    assert len(result["panels"]) == 2 * (3 * 6 + 1)
    for name, (x0, y0, x1, y1) in result["panels"]:
        panel = image[y0 + 2:y1 - 2, x0 + 2:x1 - 2]
        assert panel.size and panel.std() > 5, name  # something drawn in every panel
    assert Image.open(tmp_path / "cams.png").size[0] > 200


def test_inspect_run_draws_curves_and_latest_grid(tmp_path):
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    rng = np.random.default_rng(0)
    with open(run / "metrics.jsonl", "w") as f:
        for step in range(10, 110, 10):
            loss_fg, loss_bg = 0.05 / step ** 0.5, 0.2 / step ** 0.3
            f.write(json.dumps({"step": step, "epoch": 0, "loss": 20 * loss_fg + loss_bg,
                                "loss_fg": loss_fg, "loss_bg": loss_bg, "lr": 1e-3,
                                "samples_per_s": 10.0}) + "\n")
    for step in (50, 100):
        Image.fromarray(rng.integers(0, 255, (64, 192, 3), dtype=np.uint8)).save(
            run / "samples" / f"step_{step}.png")
    done = tap_cli("inspect", str(run))
    assert done.returncode == 0, done.stderr
    assert "10 logged steps, last step 100" in done.stdout
    assert "step_100.png" in done.stdout
    image = np.asarray(Image.open(run / "inspect.png").convert("RGB"))
    assert image.shape == (320, 1200, 3) and image.std() > 10


def test_notebook_runs_top_to_bottom(small, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    path = os.path.join(ROOT, "notebooks", "inspect_dataset.ipynb")
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        "commit the notebook with its outputs stripped"
    os.environ["TAP3D_DATASET"] = small
    try:
        client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                         resources={"metadata": {"path": str(tmp_path)}})
        client.execute()
    finally:
        del os.environ["TAP3D_DATASET"]
    printed = "".join(o.get("text", "") for cell in notebook.cells
                      for o in cell.get("outputs", []))
    assert "of the projected points fall on the mask" in printed
