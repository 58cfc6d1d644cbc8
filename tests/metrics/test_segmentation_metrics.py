"""Part-segmentation scores against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tap3d.metrics import (part_scores, predict_parts, refine_parts,
                                                 shape_miou)


def test_shape_miou_counts_a_part_absent_from_both_as_100():
    truth = np.array([0, 0, 1, 1])
    predicted = np.array([0, 1, 1, 1])
    # part 0: 1 / 2; part 1: 2 / 3; part 2 in neither: 100
    assert shape_miou(predicted, truth, [0, 1, 2]) == pytest.approx((50 + 200 / 3 + 100) / 3)
    # only over the category's parts: part 2 dropped
    assert shape_miou(predicted, truth, [0, 1]) == pytest.approx((50 + 200 / 3) / 2)


def test_category_with_one_part():
    truth = np.full(10, 5)
    assert shape_miou(truth, truth, [5]) == 100
    predicted = truth.copy()
    predicted[:3] = 6  # outside the category: those points are simply wrong
    assert shape_miou(predicted, truth, [5]) == pytest.approx(70)


def test_instance_and_class_miou():
    parts = [[0, 1], [2]]
    truth = [np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1]), np.array([2, 2, 2, 2, 2])]
    predicted = [np.array([0, 0, 1, 1]),  # 100
                 np.array([0, 1, 1, 1]),  # (1/2 + 2/3) / 2 = 58.33
                 np.array([2, 0, 0, 0, 0])]  # 20
    scores = part_scores(predicted, truth, [0, 0, 1], parts, ["a", "b"])
    assert scores["instance_miou"] == pytest.approx((100 + 175 / 3 + 20) / 3)
    assert scores["category_miou"] == pytest.approx({"a": (100 + 175 / 3) / 2, "b": 20})
    assert scores["class_miou"] == pytest.approx(((100 + 175 / 3) / 2 + 20) / 2)
    assert scores["category_shapes"] == {"a": 2, "b": 1} and scores["shapes"] == 3


def test_refine_changes_only_doubtful_points():
    rng = np.random.default_rng(0)
    xyz = np.concatenate([rng.normal(0, 0.05, (20, 3)), rng.normal(0, 0.05, (12, 3)) + 1])
    predicted = np.array([10] * 20 + [12] * 12)
    predicted[3] = 11  # a part of one point inside the cluster of 10
    predicted[25] = 40  # not a part of this category (10, 11, 12)
    predicted[30] = 10  # a real part (20 points) in the wrong place: not doubtful, kept
    refined = refine_parts(predicted, xyz, [10, 11, 12])
    expected = predicted.copy()
    expected[3], expected[25] = 10, 12
    np.testing.assert_array_equal(refined, expected)
    np.testing.assert_array_equal(predicted[3], 11)  # the input is not modified
    # nothing doubtful: unchanged
    clean = np.array([10] * 20 + [12] * 12)
    np.testing.assert_array_equal(refine_parts(clean, xyz, [10, 11, 12]), clean)


def test_refine_of_a_part_with_few_points_uses_the_other_parts():
    xyz = np.stack([np.linspace(0, 1, 30), np.zeros(30), np.zeros(30)], 1)
    predicted = np.array([0] * 15 + [1] * 15)
    predicted[[0, 1]] = 2  # two points of part 2 at the end of the line of part 0
    refined = refine_parts(predicted, xyz, [0, 1, 2])
    assert (refined[:15] == 0).all() and (refined[15:] == 1).all()


def test_predict_parts_averages_the_plain_pass_and_the_votes():
    class Linear(torch.nn.Module):
        def forward(self, features, categories):
            return torch.stack([features[..., 0], features[..., 1] + categories[:, None]], -1)

    features = torch.randn(5, 7, 6)
    categories = torch.tensor([0, 1, 0, 1, 1])
    plain = predict_parts(Linear(), features, categories, batch_size=2)
    torch.testing.assert_close(plain, Linear()(features, categories))
    voted = predict_parts(Linear(), features, categories, votes=3, seed=4, batch_size=2)
    factors = [np.random.default_rng([4, v]).uniform(0.8, 1.2, size=3) for v in range(3)]
    mean_x = (1 + sum(f[0] for f in factors)) / 4
    torch.testing.assert_close(voted[..., 0], features[..., 0] * float(mean_x))
    assert not torch.allclose(voted, plain)
