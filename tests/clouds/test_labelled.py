"""Labelled point-cloud datasets: ScanObjectNN and ModelNet40 h5 layouts, ModelNet meshes as a
build source (glued OFF headers, the split array) and a tap3d dataset as DATA."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import zarr

from tap3d.clouds import LabelledDataError, load_labelled
from tap3d.clouds.labelled import SCANOBJECTNN_CLASSES

from helpers import ROOT, tap_cli
from evaluate_data import CLASS_MESHES, sample_clouds, write_modelnet40_h5, write_modelnet_meshes
from evaluate_data import write_scanobjectnn

OFF_CLASSES = {name: CLASS_MESHES[name] for name in ("duck", "mug", "bunny", "random000")}


@pytest.fixture(scope="module")
def clouds(pybullet_root):
    """Train (5 per class) and test (2 per class) clouds of 2048 points from 8 real meshes."""
    return sample_clouds(pybullet_root, 5, 2048, seed=0), sample_clouds(pybullet_root, 2, 2048, 1)


@pytest.fixture(scope="module")
def modelnet_dataset(tmp_path_factory, pybullet_root):
    """ModelNet-layout OFF files (glued headers) of 4 real meshes, 2 train + 1 test each, built
    with ``tap-cli build-dataset`` (Embree, 6 views of 64 px)."""
    root = tmp_path_factory.mktemp("modelnet")
    meshes = write_modelnet_meshes(str(root / "ModelNet4"), pybullet_root, OFF_CLASSES)
    out = str(root / "modelnet.zarr")
    done = tap_cli("build-dataset", meshes, "-o", out, "--views", "6", "--image-size", "64",
                   "--points", "1024", "--backend", "embree", "--device", "cpu", "--workers", "0",
                   "--shard-size", "4", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    return meshes, out


@pytest.mark.parametrize("variant", ["pb_t50_rs", "obj_bg", "obj_only"])
def test_scanobjectnn_variants(tmp_path, clouds, variant):
    (train, train_y), (test, test_y) = clouds
    root = write_scanobjectnn(str(tmp_path / "h5_files"), (train, train_y), (test[::-1],
                                                                             test_y[::-1]))
    data = load_labelled(root, variant=variant)
    assert data.name == f"scanobjectnn/{variant}" and data.classes == list(SCANOBJECTNN_CLASSES)
    np.testing.assert_array_equal(data.train_points, train)
    np.testing.assert_array_equal(data.test_labels, test_y[::-1])
    assert data.train_labels.dtype == np.int64 and data.train_points.dtype == np.float32
    folder = "main_split_nobg" if variant == "obj_only" else "main_split"
    assert load_labelled(os.path.join(root, folder), variant=variant).train_points.shape == \
        train.shape


def test_modelnet40_h5(tmp_path, clouds):
    (train, train_y), (test, test_y) = clouds
    folder = write_modelnet40_h5(str(tmp_path), (train, train_y), (test, test_y),
                                 list(CLASS_MESHES))
    with __import__("h5py").File(os.path.join(folder, "ply_data_train0.h5")) as f:
        assert f["label"].shape == (len(train_y) // 2, 1) and f["label"].dtype == np.uint8
    for path in (folder, str(tmp_path)):  # the folder or its parent
        data = load_labelled(path)
        assert data.name == "modelnet40" and data.classes == list(CLASS_MESHES)
        np.testing.assert_array_equal(data.train_points, train)  # train0 then train1
        np.testing.assert_array_equal(data.train_labels, train_y)
        np.testing.assert_array_equal(data.test_labels, test_y)
        assert data.train_normals.shape == train.shape  # the files' normal key


def test_what_is_missing_is_named(tmp_path, clouds):
    (train, train_y), (test, test_y) = clouds
    with pytest.raises(LabelledDataError, match="does not exist"):
        load_labelled(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LabelledDataError, match=r"empty: not a labelled point-cloud dataset"):
        load_labelled(tmp_path / "empty")
    root = write_scanobjectnn(str(tmp_path / "sonn"), (train, train_y), (test, test_y),
                              [("main_split", "objectdataset")])
    with pytest.raises(LabelledDataError, match="training_objectdataset_augmentedrot_scale75.h5"):
        load_labelled(root)  # pb_t50_rs files missing
    with pytest.raises(LabelledDataError, match="main_split_nobg"):
        load_labelled(root, variant="obj_only")
    os.remove(os.path.join(root, "main_split", "test_objectdataset.h5"))
    with pytest.raises(LabelledDataError, match="test_objectdataset.h5, which is missing"):
        load_labelled(root, variant="obj_bg")
    folder = write_modelnet40_h5(str(tmp_path / "mn"), (train, train_y), (test, test_y),
                                 list(CLASS_MESHES))
    os.remove(os.path.join(folder, "shape_names.txt"))
    with pytest.raises(LabelledDataError, match="shape_names.txt"):
        load_labelled(folder)
    with open(tmp_path / "empty" / "zarr.json", "w") as f:
        f.write('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    with pytest.raises(LabelledDataError, match="not a tap3d.views dataset"):
        load_labelled(tmp_path / "empty")
    done = tap_cli("probe", str(tmp_path / "nowhere"))
    assert done.returncode != 0 and "nowhere: does not exist" in done.stderr


def test_modelnet_meshes_with_glued_headers_build_with_their_split(modelnet_dataset):
    meshes, dataset = modelnet_dataset
    first = open(os.path.join(meshes, "duck", "train", sorted(
        os.listdir(os.path.join(meshes, "duck", "train")))[0])).readline()
    assert first.startswith("OFF") and first[3].isdigit()  # e.g. OFF490 518 0
    g = zarr.open_group(dataset, mode="r")
    assert g.attrs["source"]["kind"] == "modelnet"
    assert (g["status"][:] == 1).all(), list(g["error"][:])
    ids, split = g["object_id"][:], g["split"][:]
    assert [str(s) for s in split] == [str(i).split("/")[1] for i in ids]
    assert sorted(set(str(c) for c in g["category"][:])) == sorted(OFF_CLASSES)
    assert list(split).count("train") == 8 and list(split).count("test") == 4
    data = load_labelled(dataset)
    assert data.name == "tap3d" and "split array" in data.notes[0]
    assert len(data.train_labels) == 8 and len(data.test_labels) == 4
    assert sorted(np.bincount(data.test_labels)) == [1, 1, 1, 1]
    assert data.train_points.shape == (8, 1024, 3)


def test_other_sources_have_an_empty_split(mesh_folder, small_config):
    from tap3d.builder import make_plan

    plan = make_plan(mesh_folder, small_config)
    assert (plan.index["split"] == "").all() and len(plan.index["split"]) == 8


def test_tap3d_dataset_without_split_gets_a_seeded_split(tmp_path, modelnet_dataset):
    _, dataset = modelnet_dataset
    copy = str(tmp_path / "nosplit.zarr")
    shutil.copytree(dataset, copy)
    g = zarr.open_group(copy, mode="r+")
    g["split"][:] = np.array([""] * g["split"].shape[0])
    a = load_labelled(copy, test_fraction=0.34, seed=3)
    assert "seeded per category" in a.notes[0]
    assert np.bincount(a.test_labels).tolist() == [1, 1, 1, 1]  # round(3 * 0.34) per category
    b = load_labelled(copy, test_fraction=0.34, seed=3)
    np.testing.assert_array_equal(a.test_points, b.test_points)
    others = [load_labelled(copy, test_fraction=0.34, seed=s).test_points for s in range(4, 8)]
    assert any(not np.array_equal(a.test_points, o) for o in others)


def test_a_tap3d_dataset_as_data_for_probe_and_finetune(tmp_path, modelnet_dataset):
    _, dataset = modelnet_dataset
    done = tap_cli("probe", dataset, "--embed-dim", "8", "--points", "192", "--device", "cpu",
                   "--json", str(tmp_path / "probe.json"))
    assert done.returncode == 0, done.stderr[-2000:]
    probed = json.load(open(tmp_path / "probe.json"))
    assert probed["train"] == 8 and probed["test"] == 4
    assert probed["svm_oa"] in (50.0, 75.0, 100.0), probed  # 2 of 4 or more (measured 3)
    done = tap_cli("finetune", dataset, "-o", str(tmp_path / "run"), "--config",
                   os.path.join(ROOT, "configs", "finetune-cpu.yaml"),
                   "--batch-size", "4", "--epochs", "2", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.load(open(tmp_path / "run" / "results.json"))
    assert results["steps"] == 4 and results["classes"] == sorted(OFF_CLASSES)


RESAMPLED_CLASSES = {name: CLASS_MESHES[name] for name in ("duck", "mug", "bunny", "random000")}


@pytest.fixture(scope="module")
def resampled(tmp_path_factory, pybullet_root):
    """``modelnet40_normal_resampled`` of 4 real meshes: 2 training and 1 test shape each, 10,000
    points with normals, as ``<class>/<id>.txt`` and ``*_{1024,8192}pts_fps.dat``."""
    from evaluate_data import sample_with_normals, write_modelnet40_resampled

    train = sample_with_normals(pybullet_root, 2, 10_000, seed=0, classes=RESAMPLED_CLASSES)
    test = sample_with_normals(pybullet_root, 1, 10_000, seed=1, classes=RESAMPLED_CLASSES)
    root = tmp_path_factory.mktemp("resampled")
    folder = write_modelnet40_resampled(str(root), train, test, list(RESAMPLED_CLASSES))
    return train, test, folder


def test_modelnet40_normal_resampled_text_files(tmp_path, resampled):
    train, test, folder = resampled
    copy = str(tmp_path / "modelnet40_normal_resampled")
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("*.dat"))  # the text files only
    assert open(os.path.join(copy, "modelnet40_train.txt")).read().split() == [
        "duck_0001", "duck_0002", "mug_0001", "mug_0002", "bunny_0001", "bunny_0002",
        "random000_0001", "random000_0002"]
    first = open(os.path.join(copy, "bunny", "bunny_0003.txt")).readline().strip().split(",")
    assert len(first) == 6 and len(open(os.path.join(copy, "duck", "duck_0001.txt"))
                                   .read().splitlines()) == 10_000
    for path in (copy, str(tmp_path)):  # the folder or its parent
        data = load_labelled(path, max_points=1500)
        assert data.name == "modelnet40" and data.classes == list(RESAMPLED_CLASSES)
        np.testing.assert_array_equal(data.train_labels, train[1])
        np.testing.assert_array_equal(data.test_labels, test[1])
        assert data.train_points.shape == (8, 1500, 3) and data.train_points.dtype == np.float32
        # the first 1500 lines of each file (as PointNet++ reads them), 6 decimals
        np.testing.assert_allclose(data.train_points, train[0][:, :1500, :3], atol=1e-6)
        np.testing.assert_allclose(data.test_normals, test[0][:, :1500, 3:], atol=1e-6)
        assert "first 1500 points" in data.notes[0]
    os.remove(os.path.join(copy, "mug", "mug_0002.txt"))
    with pytest.raises(LabelledDataError, match=r"mug_0002.txt: listed in .*modelnet40_train.txt"):
        load_labelled(copy)


def test_modelnet40_normal_resampled_fps_files(resampled):
    import pickle

    train, test, folder = resampled
    with open(os.path.join(folder, "modelnet40_test_8192pts_fps.dat"), "rb") as f:
        points, labels = pickle.load(f)  # the file is Point-BERT's plain pickle
    assert points[0].shape == (8192, 6) and labels[0].dtype == np.int32 and labels[0].shape == (1,)
    data = load_labelled(folder)  # max_points 2048: the 8192 file, its first 2048 points
    assert "modelnet40_train_8192pts_fps.dat (first 2048 of 8192" in data.notes[0]
    np.testing.assert_array_equal(data.test_points, np.stack(points)[:, :2048, :3])
    np.testing.assert_array_equal(data.test_labels, test[1])
    np.testing.assert_array_equal(data.test_normals, np.stack(points)[:, :2048, 3:])
    np.testing.assert_allclose(np.linalg.norm(data.train_normals, axis=2), 1, atol=1e-5)
    # the first k points of farthest-point order are a farthest-point sample of k: well spread
    from scipy.spatial import cKDTree

    gap = cKDTree(data.train_points[0]).query(train[0][0][:, :3])[0].max()
    random_gap = cKDTree(train[0][0][:2048, :3]).query(train[0][0][:, :3])[0].max()
    assert gap < 0.6 * random_gap, (gap, random_gap)
    small = load_labelled(folder, max_points=1000)  # the 1024 file is enough
    assert small.train_points.shape == (8, 1000, 3) and "1024pts_fps.dat" in small.notes[0]


def _malicious_pickle(marker: str) -> bytes:
    """A pickle that, loaded with ``pickle.load``, runs ``open(marker, "w")`` (builtins.exec)."""
    return (b"cbuiltins\nexec\n(V" + f"open({marker!r}, 'w').close()".encode() + b"\ntR.")


def test_a_dat_file_that_would_run_code_is_refused(tmp_path, resampled):
    import pickle
    import subprocess
    import sys

    _, _, folder = resampled
    copy = str(tmp_path / "modelnet40_normal_resampled")
    shutil.copytree(folder, copy)
    marker = str(tmp_path / "ran")
    payload = _malicious_pickle(marker)
    # the payload is real: plain pickle.load runs it (in another process)
    probe = str(tmp_path / "payload.pkl")
    open(probe, "wb").write(payload)
    subprocess.run([sys.executable, "-c", f"import pickle; pickle.load(open({probe!r}, 'rb'))"],
                   check=True)
    assert os.path.exists(marker)
    os.remove(marker)
    dat = os.path.join(copy, "modelnet40_train_8192pts_fps.dat")
    open(dat, "wb").write(payload)
    with pytest.raises(LabelledDataError, match=rf"{dat}: refused to load the global "
                                                r"builtins\.exec"):
        load_labelled(copy)
    assert not os.path.exists(marker)
    # hidden inside a well-formed file, and through os.system
    points, labels = pickle.load(open(os.path.join(copy, "modelnet40_test_8192pts_fps.dat"),
                                      "rb"))

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    with open(dat, "wb") as f:
        pickle.dump([points, labels[:-1] + [Payload()]], f)
    with pytest.raises(LabelledDataError, match=r"refused to load the global (posix|os)\.system"):
        load_labelled(copy)
    assert not os.path.exists(marker)
