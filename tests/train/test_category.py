"""Category-level evaluation on real meshes: the robot-part set (several link meshes per class,
test meshes unseen), the shape-descriptor baseline, and fine-tuning from scratch on it."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
import torch

from helpers import ROOT
from tap3d.evaluate.descriptors import classical_baseline, shape_descriptors
from tap3d.clouds.labelled import load_labelled
from tap3d.train import finetune, load_finetune_config
from tap3d.clouds.robot_parts import (LABELLINGS, robot_part_clouds, robot_part_split,
                                       write_robot_parts)


@pytest.fixture(scope="module")
def part_set(tmp_path_factory, pybullet_root):
    """The part-type labelling (5 classes), 24 training and 8 test clouds per class, written
    in ScanObjectNN's layout."""
    parts = robot_part_clouds(pybullet_root, "part", train_per_class=24, test_per_class=8)
    return parts, write_robot_parts(tmp_path_factory.mktemp("parts"), parts)


@pytest.mark.parametrize("labels", sorted(LABELLINGS))
def test_every_class_has_unseen_test_meshes(labels):
    split = robot_part_split(labels)
    assert list(split) == list(LABELLINGS[labels])
    for name, (train, test) in split.items():
        assert train and test, name
        train_meshes = {m for part in train for m in part}
        assert not train_meshes & {m for part in test for m in part}, name
    every = [m for parts in LABELLINGS[labels].values() for part in parts for m in part]
    assert len(every) == len(set(every))  # no mesh in two classes or two parts


@pytest.mark.parametrize("labels", sorted(LABELLINGS))
def test_every_mesh_of_every_labelling_is_there(labels, pybullet_root):
    """pybullet_data's files, and robosuite's for part_large (installed by make install)."""
    from tap3d.clouds.robot_parts import mesh_path

    missing = [rel for parts in LABELLINGS[labels].values() for part in parts for rel in part
               if not os.path.isfile(mesh_path(pybullet_root, rel))]
    assert not missing, missing


def test_written_set_reads_back_with_its_classes(part_set):
    parts, folder = part_set
    labelled = load_labelled(folder)
    assert labelled.classes == list(LABELLINGS["part"])
    assert labelled.train_points.shape == (5 * 24, 2048, 3)
    assert labelled.test_points.shape == (5 * 8, 2048, 3)
    assert np.bincount(labelled.test_labels).tolist() == [8] * 5
    np.testing.assert_array_equal(labelled.train_points, parts.train_points)
    with h5py.File(f"{folder}/main_split/test_objectdataset_augmentedrot_scale75.h5") as f:
        meshes = {m.decode() for m in f["mesh"][:]}
    assert meshes == set(parts.test_meshes) and not meshes & set(parts.train_meshes)


def test_scans_are_partial_shifted_and_keep_a_floor(part_set):
    """Each cloud: a floor at its lowest height (5-25% of the points), the object's box shifted
    off the cloud's centre, and clouds of the same mesh that differ (new rotation, view)."""
    parts, _ = part_set
    clouds = parts.train_points
    height = clouds[..., 1]
    floor = (height - height.min(1, keepdims=True) < 0.06).mean(1)
    assert (floor >= 0.045).all() and np.median(floor) < 0.4, floor
    same = np.flatnonzero(parts.train_meshes == parts.train_meshes[0])
    assert len(same) >= 2
    a, b = clouds[same[0]], clouds[same[1]]
    assert np.abs(np.sort(a[:, 0]) - np.sort(b[:, 0])).mean() > 0.01


def test_descriptors_ignore_pose_and_scale_but_not_shape(part_set):
    parts, _ = part_set
    clouds = parts.train_points[:10].astype(np.float64)
    angle = 0.7
    c, s = np.cos(angle), np.sin(angle)
    moved = clouds @ np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]]).T * 3.0 + [1.0, -2.0, 0.5]
    a, b = shape_descriptors(clouds), shape_descriptors(moved)
    assert a.shape == (10, 70) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-4)
    other = shape_descriptors(parts.train_points[-10:])  # another class
    assert np.abs(a - other).mean() > 10 * np.abs(a - b).mean()
    with pytest.raises(ValueError, match="expected"):
        shape_descriptors(clouds[..., :2])


def test_classical_baseline_beats_chance_on_unseen_meshes(part_set):
    _, folder = part_set
    scores = classical_baseline(folder)
    print(f"shape descriptors, 5 part types, unseen meshes: {scores}")
    assert scores["forest"] >= 1.5 * 20.0, scores
    with pytest.raises(ValueError, match="unknown classifier"):
        classical_baseline(folder, ["knn"])


CATEGORY_CONFIG = os.path.join(ROOT, "configs", "finetune-category-cpu.yaml")


@pytest.mark.slow
def test_finetuning_from_scratch_learns_part_types_of_unseen_meshes(tmp_path, pybullet_root):
    """configs/finetune-category-cpu.yaml from random initialization (3,000 steps, about 2.5
    minutes on one core) on ``part_large``: 8 part types of 164 real link parts of
    pybullet_data's and robosuite's robots and grippers, OBJ_ONLY scans, 200 training and 32
    test clouds per class, the test clouds scanned from meshes no training cloud came from.
    Measured: last test OA 43.4 (chance 12.5; descriptors + forest 46.1 on this seed's set)."""
    parts = robot_part_clouds(pybullet_root, "part_large", train_per_class=200,
                              test_per_class=32, variant="obj_only")
    assert not set(parts.test_meshes) & set(parts.train_meshes)
    folder = write_robot_parts(tmp_path / "parts", parts)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = finetune(folder, str(tmp_path / "run"),
                           load_finetune_config(CATEGORY_CONFIG, variant="obj_only"),
                           progress=False)
    finally:
        torch.set_num_threads(threads)
    print(f"fine-tuning from scratch, 8 part types, unseen meshes: {results}")
    chance = 100.0 / len(parts.classes)
    assert results["steps"] == 3000 and len(parts.classes) == 8 and "voted_oa" in results
    assert results["last_oa"] >= 3 * chance, results


def test_obj_only_scans_keep_the_object_only():
    """``background=False`` (ScanObjectNN's OBJ_ONLY) on a unit sphere: the scan rotates it about
    the up axis and scales it per axis, so every point lies on an axis-aligned ellipsoid about
    the cloud's centre (within the jitter); with the background (PB_T50_RS) the floor and
    clutter points (5-26%) do not."""
    import trimesh

    from tap3d.clouds.robot_parts import scan

    sphere = trimesh.creation.icosphere(subdivisions=4)
    for background in (False, True):
        cloud = scan(sphere, 1024, np.random.default_rng(3), background=background)
        squares = cloud.astype(np.float64) ** 2
        inverse_axes, *_ = np.linalg.lstsq(squares, np.ones(len(cloud)), rcond=None)
        off = (np.abs(squares @ inverse_axes - 1) > 0.05).mean()
        if background:
            assert off >= 0.04, off
        else:
            assert off == 0.0 and np.all(1 / np.sqrt(inverse_axes) > 0.75), (off, inverse_axes)


def test_obj_only_set_is_written_and_read_as_its_variant(tmp_path, pybullet_root):
    parts = robot_part_clouds(pybullet_root, "part", train_per_class=2, test_per_class=1,
                              points=256, variant="obj_only")
    folder = write_robot_parts(tmp_path / "nobg", parts)
    assert os.path.isfile(f"{folder}/main_split_nobg/training_objectdataset.h5")
    labelled = load_labelled(folder, "obj_only")
    np.testing.assert_array_equal(labelled.test_points, parts.test_points)
    with pytest.raises(ValueError, match="unknown variant"):
        robot_part_clouds(pybullet_root, variant="obj_bg")


def test_random_sampling_keeps_the_floor_share_that_fps_inflates(part_set):
    """Test-time inputs of 192 points: farthest-point sampling over-samples the sparse floor of
    PB_T50_RS-like scans; ``sampling: random`` keeps the share the clouds have, and draws the
    same subset every call."""
    from tap3d.clouds.pipeline import eval_features

    parts, _ = part_set
    clouds = parts.train_points[:40]

    def floor_share(features):
        height = features[..., 3]  # above the lowest point, in unit-sphere units
        return (height < 0.03).float().mean().item()

    stored = floor_share(eval_features(clouds, 2048, 1, "cpu"))
    fps = floor_share(eval_features(clouds, 192, 1, "cpu"))
    random = eval_features(clouds, 192, 1, "cpu", sampling="random")
    assert torch.equal(random, eval_features(clouds, 192, 1, "cpu", sampling="random"))
    assert fps > 1.5 * stored and abs(floor_share(random) - stored) < 0.5 * (fps - stored), \
        (stored, fps, floor_share(random))
    with pytest.raises(ValueError, match="sampling"):
        eval_features(clouds, 192, 1, "cpu", sampling="grid")
