"""Planning at scale: the mesh-folder listing and the index arrays, computed per folder and with
a dict of labels, equal the per-object definitions they replace."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tap3d.buildconfig import BuildConfig
from tap3d.builder.plan import _index_arrays, make_plan
from tap3d.sources import base, discover


def _naive_listing(root: str, synsets=None) -> list[tuple[str, str, str]]:
    """The listing's definition, per file: os.path.splitext, relpath, the parent's name."""
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        for name in sorted(files):
            if os.path.splitext(name)[1].lower() in base.MESH_SUFFIXES:
                path = os.path.join(directory, name)
                category = os.path.basename(directory) if directory != root else \
                    os.path.basename(os.path.abspath(root))
                found.append((os.path.relpath(path, root).replace(os.sep, "/"), category, path))
    return sorted((o for o in found if not synsets or o[1] in synsets),
                  key=lambda o: (o[1], o[0]))


@pytest.fixture
def tree(tmp_path):
    """Meshes at the root, in folders and nested folders; names that are and are not meshes
    (upper-case suffixes, hidden files, a file named just '.obj', other suffixes)."""
    names = ["top.obj", "a/x.OBJ", "a/y.ply", "a/notes.txt", "a/.hidden.stl", "a/.obj",
             "a/b/deep.glb", "a/b/..obj", "c/z.off", "c/z.obj.bak", "c/d/e/w.gltf", "b/v.stl"]
    for name in names:
        path = tmp_path / "root" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    return str(tmp_path / "root")


@pytest.mark.parametrize("synsets", [None, ["a", "e"]])
def test_mesh_folder_listing_equals_the_per_file_definition(tree, synsets):
    found = discover(tree, synsets=synsets)
    assert [(o.object_id, o.category, o.path) for o in found.objects] == \
        _naive_listing(tree, synsets)
    assert found.categories == sorted({o.category for o in found.objects})
    assert "a/.hidden.stl" in [o.object_id for o in found.objects]


def test_limit_keeps_the_first_per_category_and_split():
    objects = [base.ObjectSpec(f"{c}/{i}", c, "/x", split) for c in "ba" for i in range(5)
               for split in ("train", "test")]
    found = base.finish(base.Source("modelnet", "/x", objects), 2)
    assert [(o.object_id, o.split) for o in found.objects] == [
        ("a/0", "train"), ("a/0", "test"), ("a/1", "train"), ("a/1", "test"),
        ("b/0", "train"), ("b/0", "test"), ("b/1", "train"), ("b/1", "test")]  # stable sort
    assert found.categories == ["a", "b"]
    assert base.finish(base.Source("modelnet", "/x", objects), 0).categories == []


def test_index_arrays_with_many_categories():
    rng = np.random.default_rng(0)
    categories = [f"lvis_{i:04d}" for i in range(1156)]
    objects = [base.ObjectSpec(f"{i:032x}", categories[k], "/x")
               for i, k in enumerate(rng.integers(0, len(categories), 5000))]
    found = base.finish(base.Source("objaverse", "/x", objects), None)
    index = _index_arrays(found)
    assert index["label"].dtype == np.int32
    assert index["label"].tolist() == [found.label(o.category) for o in found.objects]
    for key in ("object_id", "category", "split"):
        assert index[key].dtype.kind == "U"
        assert index[key].tolist() == [getattr(o, key) for o in found.objects]


def test_make_plan_index_of_a_mesh_folder(tree):
    plan = make_plan(tree, BuildConfig(image_size=8, views=1, points=64, shard_size=2,
                                       device="cpu"))
    ids = [o[0] for o in _naive_listing(tree)]
    assert plan.index["object_id"].tolist() == ids
    assert [plan.attributes["categories"][i] for i in plan.index["label"]] == \
        plan.index["category"].tolist()
    assert plan.ranges == [(i, min(i + 2, len(ids))) for i in range(0, len(ids), 2)]
