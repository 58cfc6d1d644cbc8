"""Part-labelled data: the ShapeNetPart layout and tap3d datasets with part labels, written
from posed URDF robots (real meshes), read back; malformed files name the file and line."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytest.importorskip("pybullet")

from partseg_data import (CATEGORY_INDEX, ROBOT_CATEGORY, SYNSET, assign_splits, global_part,
                          robot_shapes, write_shapenetpart, write_tap3d_parts)
from tap3d.clouds.parts import PartDataError, load_part_labelled
from tap3d.clouds.posed_robots import ROBOTS, posed_robot


@pytest.fixture(scope="module")
def shapes():
    return robot_shapes(per_robot=4, points=300, seed=1)


@pytest.fixture()
def folder(tmp_path, shapes):
    return write_shapenetpart(str(tmp_path), shapes, assign_splits(shapes))


def test_posed_robots_differ_by_seed_and_cover_every_part():
    a, na, pa = posed_robot("kuka", 0, 500)
    b, _, pb = posed_robot("kuka", 1, 500)
    again, _, _ = posed_robot("kuka", 0, 500)
    np.testing.assert_array_equal(a, again)
    assert np.abs(a - b).max() > 0.05  # other joint angles move the arm
    assert set(pa) == set(pb) == set(range(len(ROBOTS["kuka"].parts)))
    np.testing.assert_allclose(np.linalg.norm(na, axis=1), 1, atol=1e-4)
    assert a[:, 1].max() > 0.5  # y-up: the arm rises along y (it is 1.3 m tall when straight)


def test_shapenetpart_layout_reads_back(folder, shapes):
    assert sorted(os.listdir(folder)) == sorted(
        ["synsetoffset2category.txt", "train_test_split"] + [SYNSET[c] for c in
                                                             ROBOT_CATEGORY.values()])
    data = load_part_labelled(os.path.dirname(folder + "/"))
    assert data.name == "shapenetpart" and len(data.categories) == 16 and data.num_parts == 50
    assert data.category_parts[CATEGORY_INDEX["Lamp"]] == [24, 25, 26, 27]
    assert data.category_parts[CATEGORY_INDEX["Table"]] == [47, 48, 49]
    splits = assign_splits(shapes)
    expected_train = [s for s, split in zip(shapes, splits) if split != "test"]
    expected_test = [s for s, split in zip(shapes, splits) if split == "test"]
    assert len(data.train) == len(expected_train) == 6 and len(data.test) == len(expected_test)
    by_name = {shape.name: shape for shape in data.train.shapes + data.test.shapes}
    for robot, token, xyz, normals, part in shapes:
        shape = by_name[f"{SYNSET[ROBOT_CATEGORY[robot]]}/{token}"]
        assert shape.category == CATEGORY_INDEX[ROBOT_CATEGORY[robot]]
        np.testing.assert_array_equal(shape.part, global_part(robot, part))
        np.testing.assert_allclose(shape.points, xyz, atol=1e-6)
        np.testing.assert_allclose(shape.normals, normals, atol=1e-6)
    assert {s.name for s in data.test.shapes} == {
        f"{SYNSET[ROBOT_CATEGORY[s[0]]]}/{s[1]}" for s in expected_test}


def _first_file(folder):
    with open(os.path.join(folder, "train_test_split", "shuffled_train_file_list.json")) as f:
        entry = json.load(f)[0]
    return os.path.join(folder, *entry.split("/")[1:]) + ".txt"


def test_row_with_six_columns_names_file_and_line(folder):
    path = _first_file(folder)
    lines = open(path).read().splitlines()
    lines[4] = " ".join(lines[4].split()[:6])
    open(path, "w").write("\n".join(lines) + "\n")
    with pytest.raises(PartDataError, match=rf"{path}:5: 6 columns, expected 7"):
        load_part_labelled(folder)


def test_part_outside_its_category_names_file_and_line(folder):
    path = _first_file(folder)
    lines = open(path).read().splitlines()
    fields = lines[9].split()
    fields[6] = "3.000000"  # an airplane part in a lamp / earphone / table
    lines[9] = " ".join(fields)
    open(path, "w").write("\n".join(lines) + "\n")
    with pytest.raises(PartDataError, match=rf"{path}:10: part 3.000000 is not one of"):
        load_part_labelled(folder)


def test_missing_split_entries_are_errors(folder):
    path = _first_file(folder)
    os.remove(path)
    with pytest.raises(PartDataError, match=rf"{path}: listed in the split files but missing"):
        load_part_labelled(folder)
    split = os.path.join(folder, "train_test_split", "shuffled_val_file_list.json")
    os.remove(split)
    with pytest.raises(PartDataError, match=rf"the val split file {split} is missing"):
        load_part_labelled(folder)


def test_split_entry_of_an_unlisted_synset_is_an_error(folder):
    split = os.path.join(folder, "train_test_split", "shuffled_test_file_list.json")
    json.dump(["shape_data/99999999/abc"], open(split, "w"))
    with pytest.raises(PartDataError, match=rf"{split}: entry 1 .* names synset 99999999"):
        load_part_labelled(folder)


def test_tap3d_dataset_with_part_labels_reads_back(tmp_path, shapes):
    splits = assign_splits(shapes)
    path = write_tap3d_parts(str(tmp_path / "parts.zarr"), shapes, splits)
    data = load_part_labelled(path)
    assert data.name == "tap3d" and data.categories == ["kuka", "laikago", "panda"]
    assert data.category_parts == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert data.part_names[4:7] == ["laikago_body", "laikago_upper_legs", "laikago_lower_legs"]
    assert len(data.test) == 6 and len(data.train) == 6
    first = next(s for s in data.train.shapes if s.name == shapes[0][1])
    np.testing.assert_array_equal(first.part, shapes[0][4])  # kuka's block starts at 0
    laikago = next(s for s in data.test.shapes if s.category == 1)
    assert set(laikago.part) <= {4, 5, 6}


def test_tap3d_dataset_without_parts_is_refused(tmp_path, shapes):
    import zarr

    path = write_tap3d_parts(str(tmp_path / "parts.zarr"), shapes, assign_splits(shapes))
    group = zarr.open_group(path, mode="r+")
    del group.attrs["parts"]
    with pytest.raises(PartDataError, match="without part labels .*the parts attribute"):
        load_part_labelled(path)


def _mesh_folder(root, pybullet_root, shapes_of=None):
    """Slab (listed first, ids 3-4) and Totem (ids 0-2): 3 random_urdfs meshes each, one per
    split, 200 points; ``shapes_of(shapes)`` may alter the shapes before they are written."""
    from partseg_data import MESH_CATEGORIES, mesh_part_shapes, write_part_folder

    shapes = (mesh_part_shapes(pybullet_root, "Slab", [10, 11, 12], 200)
              + mesh_part_shapes(pybullet_root, "Totem", [20, 21, 22], 200))
    shapes = shapes_of(shapes) if shapes_of else shapes
    return write_part_folder(str(root), [(name, c[0]) for name, c in MESH_CATEGORIES.items()],
                             shapes, ["train", "val", "test"] * 2), shapes


def test_categories_of_ones_own_get_their_part_ids_from_the_files(tmp_path, pybullet_root):
    folder, shapes = _mesh_folder(tmp_path, pybullet_root)
    lines = open(os.path.join(folder, "synsetoffset2category.txt")).read().splitlines()
    assert lines == ["Slab\t90000002", "Totem\t90000001"]
    data = load_part_labelled(folder)
    assert data.name == "shapenetpart" and data.categories == ["Slab", "Totem"]
    assert data.category_parts == [[3, 4], [0, 1, 2]] and data.num_parts == 5
    assert data.part_names == ["Totem_0", "Totem_1", "Totem_2", "Slab_0", "Slab_1"]
    assert "Slab 3..4, Totem 0..2" in data.notes[-1]
    assert len(data.train) == 4 and len(data.test) == 2
    by_name = {s.name: s for s in data.train.shapes + data.test.shapes}
    for synset, token, xyz, normals, part in shapes:
        shape = by_name[f"{synset}/{token}"]
        assert shape.category == (0 if synset == "90000002" else 1)
        np.testing.assert_array_equal(shape.part, part)
        np.testing.assert_allclose(shape.points, xyz, atol=1e-6)
    # the geometric labels are real: a Totem's bottom third lies below its middle third
    totem = next(s for s in data.test.shapes if s.category == 1)
    assert totem.points[totem.part == 0, 1].max() <= totem.points[totem.part == 1, 1].min() + 1e-5


def test_part_ids_of_ones_own_categories_are_checked(tmp_path, pybullet_root):
    def relabel(category, mapping, only_first=False):
        def change(shapes):
            out, done = [], False
            for synset, token, xyz, normals, part in shapes:
                if synset == MESH_CATEGORIES[category][0] and not (only_first and done):
                    part, done = np.vectorize(lambda p: mapping.get(p, p))(part), True
                out.append((synset, token, xyz, normals, part))
            return out
        return change

    from partseg_data import MESH_CATEGORIES

    folder, _ = _mesh_folder(tmp_path / "gap", pybullet_root, relabel("Totem", {1: 2}))
    with pytest.raises(PartDataError, match=r"synsetoffset2category.txt: category Totem "
                                            r"\(90000001\) has part ids 0..2 without 1"):
        load_part_labelled(folder)
    folder, shapes = _mesh_folder(tmp_path / "shared", pybullet_root,
                                  relabel("Slab", {3: 2}, only_first=True))
    slab = f"90000002/{shapes[0][1]}.txt"
    with pytest.raises(PartDataError, match=rf"part id 2 is used by category Slab \(in {slab}\) "
                                            r"and by category Totem \(in 90000001/"):
        load_part_labelled(folder)
    folder, _ = _mesh_folder(tmp_path / "unused", pybullet_root, relabel("Slab", {3: 4, 4: 5}))
    with pytest.raises(PartDataError, match=r"no category uses part id\(s\) 3; the ids must run "
                                            r"from 0 to 5"):
        load_part_labelled(folder)
    folder, _ = _mesh_folder(tmp_path / "empty", pybullet_root)
    with open(os.path.join(folder, "synsetoffset2category.txt"), "a") as f:
        f.write("Kite\t90000003\n")
    with pytest.raises(PartDataError, match=r"category Kite \(90000003\) has no shape"):
        load_part_labelled(folder)
    with open(os.path.join(folder, "synsetoffset2category.txt"), "a") as f:
        f.write("Totem\t90000004\n")
    with pytest.raises(PartDataError, match=r"name Totem listed more than once"):
        load_part_labelled(folder)


def test_a_subset_of_the_16_keeps_their_fixed_part_ids(tmp_path, shapes):
    folder = write_shapenetpart(str(tmp_path), shapes, assign_splits(shapes))
    categories = os.path.join(folder, "synsetoffset2category.txt")
    with open(categories, "w") as f:  # only the three categories that have shapes
        f.writelines(f"{name}\t{SYNSET[name]}\n" for name in ROBOT_CATEGORY.values())
    data = load_part_labelled(folder)
    assert len(data.categories) == 16 and data.num_parts == 50
    assert data.category_parts[CATEGORY_INDEX["Lamp"]] == [24, 25, 26, 27]
    with open(categories, "w") as f:  # one name not of the 16: every block from the files
        f.writelines(f"{'Lampe' if name == 'Lamp' else name}\t{SYNSET[name]}\n"
                     for name in ROBOT_CATEGORY.values())
    with pytest.raises(PartDataError, match=r"no category uses part id\(s\) 0, 1, .*, 15, 19, "):
        load_part_labelled(folder)  # the robots' ids (16-18, 24-27, 47-49) leave gaps
