"""Linear probe and few-shot folds on labelled clouds of real meshes (CPU, seconds)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from tap3d.clouds import LabelledDataError
from tap3d.clouds.folds import parse_few_shot
from tap3d.evaluate.probe import few_shot_folds

from helpers import tap_cli


@pytest.fixture(scope="module")
def labelled(modelnet40_h5):
    """The shared ModelNet40-h5 clouds (conftest): 8 real meshes, 12 training and 6 test."""
    return modelnet40_h5


def test_few_shot_folds_are_balanced_seeded_and_disjoint(labelled):
    (train_x, train_y), (test_x, test_y), _ = labelled
    folds = few_shot_folds(train_y, test_y, way=5, shot=10, query=5, folds=10, seed=0)
    assert len(folds) == 10
    for fold in folds:
        assert len(set(fold["classes"])) == 5
        assert sorted(np.bincount(train_y[fold["train"]], minlength=8)[fold["classes"]]) == [10] * 5
        assert sorted(np.bincount(test_y[fold["test"]], minlength=8)[fold["classes"]]) == [5] * 5
        assert set(train_y[fold["train"]]) == set(test_y[fold["test"]]) == set(fold["classes"])
        assert len(set(fold["train"])) == 50 and len(set(fold["test"])) == 25
        # no cloud is both a training and a test sample
        train_clouds = {train_x[i].tobytes() for i in fold["train"]}
        assert not train_clouds & {test_x[i].tobytes() for i in fold["test"]}
    again = few_shot_folds(train_y, test_y, 5, 10, 5, 10, seed=0)
    assert all(np.array_equal(a["train"], b["train"]) and np.array_equal(a["test"], b["test"])
               for a, b in zip(folds, again))
    other = few_shot_folds(train_y, test_y, 5, 10, 5, 10, seed=1)
    assert any(not np.array_equal(a["train"], b["train"]) for a, b in zip(folds, other))
    assert len({tuple(f["classes"]) for f in folds}) > 1  # folds draw different classes
    with pytest.raises(ValueError, match="needs 5 classes with 13 training"):
        few_shot_folds(train_y, test_y, 5, 13, 5)


def test_few_shot_setting_names():
    assert parse_few_shot("5way10shot") == (5, 10) and parse_few_shot("10Way20Shot") == (10, 20)
    for bad in ("5way", "1way5shot", "fiveway10shot"):
        with pytest.raises(ValueError, match="NwayKshot"):
            parse_few_shot(bad)


def test_probe_command_writes_svm_and_few_shot(tmp_path, labelled):
    *_, data = labelled
    out = tmp_path / "probe.json"
    done = tap_cli("probe", data, "--embed-dim", "8", "--points", "192", "--device", "cpu",
                   "--few-shot", "5way10shot", "--few-shot", "4way5shot", "--query", "5",
                   "--json", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.load(open(out))
    assert 100 / 8 < result["svm_oa"] <= 100
    assert set(result["few_shot"]) == {"5way10shot", "4way5shot"}
    assert result["few_shot_source"] == "seeded"  # tap3d's folds, drawn from DATA
    assert result["few_shot_folds"] == {"5way10shot": 10, "4way5shot": 10}
    for setting, (mean, std) in result["few_shot"].items():
        way, _ = parse_few_shot(setting)
        # random features of 8 different meshes: far above chance (measured 95.6 and 89.0)
        assert mean >= 2.5 * 100 / way, result
        # the mean and (population) standard deviation of 10 fold accuracies, each a whole
        # number of the fold's way x 5 test clouds: the sums of the counts and of their
        # squares are whole numbers; and the folds differ
        counts = np.array([mean, mean**2 + std**2]) / (100 / (way * 5)) ** np.array([1, 2]) * 10
        np.testing.assert_allclose(counts, np.round(counts), rtol=0, atol=1e-6, err_msg=setting)
        assert std > 0, result
    assert "5way10shot:" in done.stdout and "+-" in done.stdout
    done = tap_cli("probe", data, "--few-shot", "5way", "--embed-dim", "8")
    assert done.returncode != 0 and "NwayKshot" in done.stderr


@pytest.fixture(scope="module")
def fewshot_folder(tmp_path_factory, pybullet_root):
    """Point-BERT's ``ModelNetFewshot/5way_10shot/{0,1}.pkl`` from the 8 real meshes: 10 training
    clouds (of 12 per class) and 20 test clouds (of 22) per class, 512 points x y z nx ny nz."""
    from evaluate_data import sample_with_normals, write_fewshot_folds

    train = sample_with_normals(pybullet_root, 12, 512, seed=2)
    test = sample_with_normals(pybullet_root, 22, 512, seed=3)
    return train, test, write_fewshot_folds(str(tmp_path_factory.mktemp("fewshot")), train, test,
                                            way=5, shot=10, folds=2)


def test_point_bert_fold_files_read_back(fewshot_folder):
    import pickle

    from tap3d.clouds.folds import fold_files, read_fold_file

    (train, train_y), (test, test_y), root = fewshot_folder
    files = fold_files(root, "5way10shot")
    assert [os.path.relpath(f, root) for f in files] == ["5way_10shot/0.pkl", "5way_10shot/1.pkl"]
    assert fold_files(os.path.join(root, "5way_10shot"), "5way10shot") == files
    raw = pickle.load(open(files[1], "rb"))  # Point-BERT's plain pickle
    fold = read_fold_file(files[1], 5, 10)
    points, labels = fold["train"]
    assert points.shape == (50, 512, 3) and points.dtype == np.float32
    assert labels.dtype == np.int64 and np.bincount(labels).tolist() == [10] * 5
    assert np.bincount(fold["test"][1]).tolist() == [20] * 5
    for (cloud, i, key), x, y in zip(raw["train"], points, labels):
        np.testing.assert_array_equal(x, cloud[:, :3])
        assert y == i and isinstance(key, np.int32)
        # every fold cloud is one of the training clouds of its ModelNet class
        assert any(np.array_equal(cloud, c) for c in train[train_y == key])
    with pytest.raises(LabelledDataError, match=r"1.pkl: the training samples hold 5 classes "
                                                r"with \[10\] samples each, not 5way20shot"):
        read_fold_file(files[1], 5, 20)
    with pytest.raises(LabelledDataError, match=r"no 10way_10shot folder .* found: 5way10shot"):
        fold_files(root, "10way10shot")


def test_probe_on_point_bert_folds(tmp_path, labelled, fewshot_folder):
    *_, data = labelled
    *_, root = fewshot_folder
    out = tmp_path / "probe.json"
    done = tap_cli("probe", data, "--embed-dim", "8", "--points", "192", "--device", "cpu",
                   "--few-shot-folds", root, "--json", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.load(open(out))
    assert result["few_shot_source"] == root and result["few_shot_folds"] == {"5way10shot": 2}
    mean, std = result["few_shot"]["5way10shot"]
    assert mean >= 2.5 * 100 / 5, result  # random features of 5 different meshes
    # the mean and (population) std of 2 fold accuracies, each a whole number of 100 test clouds
    a, b = mean - std, mean + std
    np.testing.assert_allclose([a, b], np.round([a, b]), atol=1e-6)
    assert "5way10shot:" in done.stdout and f"(2 folds of {root})" in done.stdout
    done = tap_cli("probe", root)  # the folds are not DATA: the message says where they go
    assert done.returncode != 0 and "--few-shot-folds" in done.stderr


def test_a_fold_file_that_would_run_code_is_refused(tmp_path, labelled, fewshot_folder):
    import pickle
    import shutil

    from tap3d.clouds.folds import read_fold_file

    *_, data = labelled
    *_, root = fewshot_folder
    copy = str(tmp_path / "ModelNetFewshot")
    shutil.copytree(root, copy)
    marker = str(tmp_path / "ran")
    fold = os.path.join(copy, "5way_10shot", "1.pkl")
    content = pickle.load(open(fold, "rb"))

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    content["test"][3] = (Payload(), 0, np.int32(1))  # inside a well-formed fold
    with open(fold, "wb") as f:
        pickle.dump(content, f)
    with pytest.raises(LabelledDataError, match=rf"{fold}: refused to load the global "
                                                r"(posix|os)\.system"):
        read_fold_file(fold)
    done = tap_cli("probe", data, "--embed-dim", "8", "--points", "192", "--device", "cpu",
                   "--few-shot-folds", copy)
    assert done.returncode != 0 and "refused to load the global" in done.stderr
    with open(fold, "wb") as f:  # numpy's own pickle loader is refused too
        f.write(b"cnumpy\nload\n(V" + marker.encode() + b"\ntR.")
    with pytest.raises(LabelledDataError, match=r"refused to load the global numpy\.load"):
        read_fold_file(fold)
    assert not os.path.exists(marker)
    with open(fold, "wb") as f:
        pickle.dump(content, f)
    pickle.load(open(fold, "rb"))  # the payload is real: plain pickle.load runs it
    assert os.path.exists(marker)


def test_probe_draws_the_tsne_of_the_test_features(tmp_path, labelled):
    from PIL import Image

    *_, data = labelled
    out, picture = tmp_path / "probe.json", tmp_path / "tsne.png"
    done = tap_cli("probe", data, "--embed-dim", "8", "--points", "192", "--device", "cpu",
                   "--tsne", str(picture), "--json", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.load(open(out))
    assert result["tsne"]["file"] == str(picture) and "t-SNE" in done.stdout
    # a random backbone alone: one panel; 8 meshes, 6 test clouds each, form clusters
    (score,) = result["tsne"]["silhouette"].values()
    assert 0 < score <= 1
    width, height = Image.open(picture).size
    assert (width, height) == (500, 500)


def test_tsne_panels_put_a_reinitialized_copy_beside_the_trained_backbone(tmp_path, labelled):
    from PIL import Image

    from tap3d.clouds.pipeline import eval_features
    from tap3d.evaluate.probe import pooled_features, tsne_panels
    from tap3d.evaluate.tsne import draw_tsne
    from tap3d.models.backbones import make_backbone

    _, (test_x, test_y), _ = labelled
    torch.manual_seed(1)
    model = make_backbone("pointmlp", embed_dim=8)
    with torch.no_grad():  # "trained": weights no initializer draws
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(1.5).add_(0.01)
    inputs = eval_features(test_x, 192, 1, "cpu")
    trained = pooled_features(model, inputs)
    panels = tsne_panels(model, True, trained, inputs, seed=0)
    assert list(panels) == ["random initialization", "pre-trained"]
    assert panels["pre-trained"] is trained
    assert panels["random initialization"].shape == trained.shape
    assert not np.allclose(panels["random initialization"], trained)
    # the re-initialization is seeded, and the model given is left as it was
    again = tsne_panels(model, True, trained, inputs, seed=0)
    np.testing.assert_array_equal(again["random initialization"],
                                  panels["random initialization"])
    np.testing.assert_array_equal(pooled_features(model, inputs), trained)
    scores = draw_tsne(tmp_path / "two.png", panels, test_y, [f"c{i}" for i in range(8)])
    assert set(scores) == set(panels)
    assert Image.open(tmp_path / "two.png").size == (1000, 500)
