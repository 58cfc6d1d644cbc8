"""The Objaverse 1.0 source (a downloaded subset of real GLB meshes, LVIS categories) and the
object list (``--objects FILE``) of every source."""

from __future__ import annotations

import gzip
import os
import shutil

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from helpers import objaverse_uid, tap_cli, write_objaverse
from tap3d.builder import BuildConfig, build
from tap3d.cli import main
from tap3d.sources import MESH_SUFFIXES, UNCATEGORIZED, SourceError, discover

DUCK, MUG, BUNNY, CYLINDER, RANDOM = (objaverse_uid(n) for n in
                                      ("duck", "mug", "bunny", "cylinder", "random000"))
#: Listed in object-paths.json.gz but not downloaded (one of them in LVIS).
ABSENT = tuple(objaverse_uid(f"absent{k}") for k in range(5))
#: A uid under two categories (not in sorted order in the file): the first sorted one wins.
LVIS = {"toy": [DUCK, ABSENT[0]], "duck": [DUCK], "mug": [MUG], "bunny": [BUNNY],
        "chair": [ABSENT[1]]}
PRESENT = {DUCK: ("000-000", "duck"), MUG: ("000-000", "mug"), BUNNY: ("000-001", "bunny"),
           CYLINDER: ("000-001", "cylinder"), RANDOM: ("000-159", "random000")}
#: In dataset order: sorted by (category, uid).
EXPECTED = sorted([(BUNNY, "bunny"), (DUCK, "duck"), (MUG, "mug"),
                   (CYLINDER, UNCATEGORIZED), (RANDOM, UNCATEGORIZED)],
                  key=lambda pair: (pair[1], pair[0]))


@pytest.fixture(scope="module")
def objaverse_root(tmp_path_factory, pybullet_root) -> str:
    """``<tmp>/.objaverse``, holding ``hf-objaverse-v1``."""
    root = tmp_path_factory.mktemp("home") / ".objaverse"
    write_objaverse(root, pybullet_root, PRESENT, ABSENT, LVIS)
    return str(root)


def _ids(path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_discovery_lists_the_present_uids_in_their_lvis_categories(objaverse_root):
    base = os.path.join(objaverse_root, "hf-objaverse-v1")
    for root in (objaverse_root, base, base + os.sep):  # the folder holding it, or itself
        found = discover(root)
        assert found.kind == "objaverse" and found.root == base
        assert [(o.object_id, o.category) for o in found.objects] == EXPECTED
        assert found.categories == ["bunny", "duck", "mug", UNCATEGORIZED]
        assert found.category_names == {c: c for c in found.categories}
        assert all(o.split == "" and os.path.isfile(o.path)
                   and o.path.endswith(o.object_id + ".glb") for o in found.objects)


def test_synsets_take_lvis_names_and_limit_is_per_category(objaverse_root):
    assert [o.object_id for o in discover(objaverse_root, synsets=["duck", "mug"]).objects] == \
        [DUCK, MUG]
    assert {o.object_id for o in discover(objaverse_root, synsets=[UNCATEGORIZED]).objects} == \
        {CYLINDER, RANDOM}
    limited = discover(objaverse_root, limit=1)
    assert [o.category for o in limited.objects] == ["bunny", "duck", "mug", UNCATEGORIZED]
    assert limited.objects[-1].object_id == min(CYLINDER, RANDOM)
    with pytest.raises(SourceError, match=r"'duk' is not an LVIS category \(close matches: duck"):
        discover(objaverse_root, synsets=["duk"])
    # an LVIS category none of whose objects was downloaded: nothing to build
    with pytest.raises(SourceError, match="no Objaverse objects found.*--synsets"):
        discover(objaverse_root, synsets=["chair"])


def test_without_lvis_annotations_every_object_is_uncategorized(tmp_path, objaverse_root):
    base = tmp_path / "hf-objaverse-v1"
    shutil.copytree(os.path.join(objaverse_root, "hf-objaverse-v1"), base)
    os.remove(base / "lvis-annotations.json.gz")
    found = discover(base)
    assert found.categories == [UNCATEGORIZED] and len(found.objects) == 5
    with pytest.raises(SourceError, match="lvis-annotations.json.gz does not exist"):
        discover(base, synsets=["duck"])


def test_object_list_selects_before_the_limit(tmp_path, objaverse_root):
    first, second = sorted([CYLINDER, RANDOM])
    listed = _ids(tmp_path / "ids.txt", f"# chosen\n\n{second}  # a comment\n {DUCK} \n{DUCK}\n")
    found = discover(objaverse_root, objects=listed, limit=1)
    assert [(o.object_id, o.category) for o in found.objects] == [(DUCK, "duck"),
                                                                   (second, UNCATEGORIZED)]
    assert found.categories == ["duck", UNCATEGORIZED]
    assert [o.object_id for o in discover(objaverse_root, objects=[first]).objects] == [first]


def test_object_list_names_the_file_and_the_ids_the_source_lacks(tmp_path, objaverse_root):
    listed = _ids(tmp_path / "ids.txt", f"{DUCK}\n{ABSENT[2]}\nnot-a-uid\n")
    with pytest.raises(SourceError) as error:
        discover(objaverse_root, objects=listed)
    message = str(error.value)
    assert message.startswith(f"{listed}: 2 of its 3 object ids are not in {objaverse_root}")
    assert ABSENT[2] in message and "not-a-uid" in message and DUCK not in message
    # an object of another category than --synsets selects
    with pytest.raises(SourceError, match=r"categories that --synsets selects\): " + DUCK):
        discover(objaverse_root, synsets=["mug"], objects=_ids(tmp_path / "d.txt", DUCK))
    for text, words in [("# nothing\n\n", "names no object"), (None, "cannot read")]:
        path = tmp_path / "other.txt"
        if text is None:
            path.unlink()
        else:
            path.write_text(text)
        with pytest.raises(SourceError, match=words):
            discover(objaverse_root, objects=str(path))
    result = CliRunner().invoke(main, ["build-dataset", objaverse_root, "-o",
                                       str(tmp_path / "o.zarr"), "--objects", listed])
    assert result.exit_code == 1 and f"Error: {listed}: 2 of its 3" in result.output
    assert not (tmp_path / "o.zarr").exists()


def test_object_list_for_other_sources(tmp_path, mesh_folder):
    listed = _ids(tmp_path / "ids.txt", "textured/table.obj\nplain/mug.obj\n")
    assert [o.object_id for o in discover(mesh_folder, objects=listed).objects] == [
        "plain/mug.obj", "textured/table.obj"]
    with pytest.raises(SourceError, match="1 of its 1 object ids.*: mug.obj"):
        discover(mesh_folder, objects=["mug.obj"])
    assert [o.object_id for o in discover("pybullet", objects=["duck.obj"]).objects] == \
        ["duck.obj"]


def test_objaverse_folder_without_object_paths_or_files(tmp_path):
    base = tmp_path / "hf-objaverse-v1"
    (base / "glbs" / "000-000").mkdir(parents=True)
    (base / "glbs" / "000-000" / f"{DUCK}.glb").write_bytes(b"")
    with pytest.raises(SourceError, match="without object-paths.json.gz"):
        discover(tmp_path)
    with gzip.open(base / "object-paths.json.gz", "wt") as f:  # listed in another folder
        f.write('{"%s": "glbs/000-001/%s.glb"}' % (DUCK, DUCK))
    with pytest.raises(SourceError, match="no Objaverse objects found"):
        discover(base)
    (base / "object-paths.json.gz").write_bytes(b"not gzip")
    with pytest.raises(SourceError, match="cannot be read as gzip JSON"):
        discover(base)


def test_objaverse_xl_files_build_as_a_mesh_folder(tmp_path, pybullet_root):
    """Objaverse-XL's local files: mixed formats in plain folders, each suffix picked up."""
    import trimesh

    assert set(MESH_SUFFIXES) == {".glb", ".gltf", ".obj", ".ply", ".stl", ".off"}
    duck = trimesh.load(os.path.join(pybullet_root, "duck.obj"), force="mesh")
    for suffix in MESH_SUFFIXES:
        folder = tmp_path / "repos" / suffix[1:]
        folder.mkdir(parents=True)
        duck.export(folder / f"duck{suffix.upper() if suffix == '.stl' else suffix}")
    found = discover(tmp_path / "repos")
    assert found.kind == "mesh_folder"
    assert sorted(o.category for o in found.objects) == sorted(s[1:] for s in MESH_SUFFIXES)


def test_build_dataset_cli_writes_uids_and_lvis_categories(tmp_path, objaverse_root):
    out = str(tmp_path / "out.zarr")
    done = tap_cli("build-dataset", objaverse_root, "-o", out, "--image-size", "32", "--points",
                   "64", "--views", "2", "--workers", "0", "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 of 5 objects done, 0 failed" in done.stdout
    g = zarr.open_group(out, mode="r")
    assert [(str(i), str(c)) for i, c in zip(g["object_id"][:], g["category"][:])] == EXPECTED
    assert g.attrs["categories"] == ["bunny", "duck", "mug", UNCATEGORIZED]
    np.testing.assert_array_equal(g["label"][:], [0, 1, 2, 3, 3])
    assert g.attrs["source"] == {"root": os.path.join(objaverse_root, "hf-objaverse-v1"),
                                 "kind": "objaverse"}
    assert (g["mask"][:].reshape(5, -1).mean(1) > 0.01).all()  # every GLB rendered something
    # the other form of the root is the same source: the build is resumed, nothing re-rendered
    again = build(os.path.join(objaverse_root, "hf-objaverse-v1"), out,
                  BuildConfig(views=2, image_size=32, points=64), workers=0, progress=False)
    assert again.done == 5 and again.shards_rendered == 0
