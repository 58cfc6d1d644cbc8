"""Linear probe and few-shot folds on labelled clouds of real meshes (CPU, seconds)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tap3d.evaluate.probe import few_shot_folds, parse_few_shot

from helpers import tap_cli
from evaluate_data import CLASS_MESHES, sample_clouds, write_modelnet40_h5


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, pybullet_root):
    """ModelNet40-h5 layout: 8 real meshes, 12 training and 6 test clouds of 256 points."""
    train = sample_clouds(pybullet_root, 12, 256, seed=0, rotate=False)
    test = sample_clouds(pybullet_root, 6, 256, seed=1, rotate=False)
    return train, test, write_modelnet40_h5(str(tmp_path_factory.mktemp("probe")), train, test,
                                            list(CLASS_MESHES))


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
