"""Storage that fails: a fault at each step of creating a store, while writing a shard (a full
disk) and while reading one back. Every fault ends in one line naming the store and the key;
the same command afterwards ends with the arrays of an uninterrupted build, or refuses in one
true sentence. Faults are injected into zarr's ``LocalStore`` (the store under every local
dataset), one request failing as a network error past its retries or a full disk would."""

from __future__ import annotations

import errno
import shutil

import numpy as np
import pytest
import zarr
from zarr.storage import LocalStore

from tap3d.builder import BuildConfig, build
from tap3d.views.schema import CREATION, FormatError, open_views
from tap3d.views.storage import StorageError
from tap3d.views.verify import verify

from helpers import assert_same_arrays

CONFIG = BuildConfig(views=2, image_size=16, points=64, shard_size=1, seed=3)


def _build(source, out, **options):
    return build(source, out, CONFIG, workers=0, progress=False, limit=1, **options)


class Faults:
    """Fails the ``occurrence``-th request for ``key`` of one kind (``set``, ``get``) once,
    with ``OSError(code)``; records every key written, in order."""

    def __init__(self):
        self.armed = None
        self.written: list[str] = []

    def arm(self, kind: str, key: str, occurrence: int = 1, code: int = errno.EIO) -> None:
        self.armed = [kind, key, occurrence, code]

    def hit(self, kind: str, key: str) -> None:
        if self.armed and self.armed[:2] == [kind, key]:
            self.armed[2] -= 1
            if self.armed[2] == 0:
                code = self.armed[3]
                self.armed = None
                raise OSError(code, f"injected: {errno.errorcode[code]}")


@pytest.fixture
def faults(monkeypatch):
    state = Faults()
    set_, set_if_not_exists, get = LocalStore.set, LocalStore.set_if_not_exists, LocalStore.get

    async def failing_set(self, key, value):
        state.written.append(key)
        state.hit("set", key)
        await set_(self, key, value)

    async def failing_set_if_not_exists(self, key, value):
        state.written.append(key)
        state.hit("set", key)
        await set_if_not_exists(self, key, value)

    async def failing_get(self, key, prototype, byte_range=None):
        state.hit("get", key)
        return await get(self, key, prototype, byte_range)

    monkeypatch.setattr(LocalStore, "set", failing_set)
    monkeypatch.setattr(LocalStore, "set_if_not_exists", failing_set_if_not_exists)
    monkeypatch.setattr(LocalStore, "get", failing_get)
    return state


@pytest.fixture(scope="module")
def reference(tmp_path_factory, mesh_folder):
    """An uninterrupted build (2 objects in shards of 1)."""
    out = str(tmp_path_factory.mktemp("faults") / "reference.zarr")
    _build(mesh_folder, out)
    return out


def _creation_writes(faults, mesh_folder, tmp_path) -> list[str]:
    """The keys a build writes while creating its store, in order (up to the last write of
    the group's metadata before the first shard)."""
    _build(mesh_folder, str(tmp_path / "recorded.zarr"))
    written = faults.written
    faults.written = []
    first_shard = next(i for i, key in enumerate(written) if key.startswith("rgb/c/"))
    return written[:first_shard]


#: Creation steps: (name, how to find the request among the creation writes).
STEPS = {
    "the group's first metadata": lambda keys: ("zarr.json", 1),
    "the first array's metadata": lambda keys: (keys[1], 1),
    "a sub-group's metadata": lambda keys: ("cameras/zarr.json", 1),
    "a parent check of an array": lambda keys: ("cameras/zarr.json", 2),
    "a middle array's metadata": lambda keys: ("points/zarr.json", 1),
    "the last array's metadata": lambda keys: ("split/zarr.json", 1),
    "an object_id chunk": lambda keys: ("object_id/c/0", 1),
    "a category chunk": lambda keys: ("category/c/1", 1),
    "a label chunk": lambda keys: ("label/c/1", 1),
    "the consolidated metadata": lambda keys: ("zarr.json", keys.count("zarr.json") - 1),
    "the creation marker": lambda keys: ("zarr.json", keys.count("zarr.json")),
}


@pytest.mark.parametrize("step", list(STEPS))
def test_a_fault_while_creating_then_the_same_command_builds_it(step, faults, reference,
                                                                mesh_folder, tmp_path):
    keys = _creation_writes(faults, mesh_folder, tmp_path)
    key, occurrence = STEPS[step](keys)
    assert keys.count(key) >= occurrence, (key, keys)
    out = str(tmp_path / "faulted.zarr")
    faults.arm("set", key, occurrence)
    with pytest.raises(StorageError) as raised:
        _build(mesh_folder, out)
    message = str(raised.value)
    assert "\n" not in message and out in message and key in message, message
    assert faults.armed is None  # the fault was hit
    if step != "the group's first metadata":  # then nothing readable was written
        with pytest.raises(FormatError, match="creation never finished"):
            open_views(out)
        assert not verify(out).ok
    summary = _build(mesh_folder, out)
    assert summary.done == 2 and summary.shards_rendered == 2
    assert_same_arrays(out, reference)
    assert zarr.open_group(out, mode="r").attrs[CREATION] == "complete"
    report = verify(out)
    assert report.ok, report.format()


def test_a_full_disk_while_writing_a_shard_keeps_the_finished_ones(faults, reference,
                                                                     mesh_folder, tmp_path):
    """``ENOSPC`` on shard 1's RGB: one line naming the store, the key and the shard, exit 1
    from ``tap-cli``; shard 0 is kept, and the same command renders shard 1 only."""
    from click.testing import CliRunner

    from tap3d.cli import main

    out = str(tmp_path / "full.zarr")
    faults.arm("set", "rgb/c/1/0/0/0/0", code=errno.ENOSPC)
    args = ["build-dataset", mesh_folder, "-o", out, "--views", "2", "--image-size", "16",
            "--points", "64", "--shard-size", "1", "--seed", "3", "--limit", "1",
            "--workers", "0", "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and faults.armed is None
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert out in lines[0] and "rgb/c/1/0/0/0/0" in lines[0] and "shard 1" in lines[0]
    assert "No space" in lines[0] or "ENOSPC" in lines[0], lines[0]
    status = zarr.open_group(out, mode="r")["status"][:]
    assert status.tolist() == [1, 0]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "1 of 2 shards rendered" in result.output
    assert_same_arrays(out, reference)


def test_a_read_outage_while_resuming_changes_nothing_and_advises_no_overwrite(
        faults, reference, mesh_folder, tmp_path):
    """A half-built store whose ``status`` cannot be read: a storage error naming the key,
    no advice to overwrite (which would discard the finished shard); then the plain re-run
    resumes it."""
    out = str(tmp_path / "half.zarr")
    faults.arm("set", "status/c/1")
    with pytest.raises(StorageError):
        _build(mesh_folder, out)
    for key in ("zarr.json", "status/c/0", "object_id/c/0"):
        faults.arm("get", key)
        with pytest.raises(StorageError) as raised:
            _build(mesh_folder, out)
        assert key in str(raised.value) and "overwrite" not in str(raised.value), key
        assert faults.armed is None
    assert zarr.open_group(out, mode="r")["status"][:].tolist() == [1, 0]
    assert _build(mesh_folder, out).shards_rendered == 1
    assert_same_arrays(out, reference)


def test_readers_report_a_network_error_as_one_not_as_a_format_error(faults, reference):
    """``open_views`` (every reader), ``verify`` and the stream name the key that failed."""
    from tap3d.stream import StreamSettings, ViewStream

    def stream(store):
        return list(ViewStream(store, StreamSettings(points=32)))

    for read in (open_views, verify, stream):
        faults.arm("get", "zarr.json")
        with pytest.raises(StorageError, match="zarr.json: could not read"):
            read(reference)
    faults.arm("get", "points/c/1/0/0")
    with pytest.raises(StorageError, match="points/c/1/0/0"):
        list(ViewStream(reference, StreamSettings(points=32)))


def test_a_store_torn_by_an_older_version_is_refused_and_verify_finds_it(reference,
                                                                           mesh_folder,
                                                                           tmp_path):
    """A store created before the ``creation`` attribute, whose ``label`` and ``category``
    chunks were never written (they read as 0 and ""): the build refuses to resume it in one
    sentence, and ``tap-cli verify`` reports both arrays."""
    out = str(tmp_path / "torn.zarr")
    shutil.copytree(reference, out)
    group = zarr.open_group(out, mode="r+")
    del group.attrs[CREATION]
    for key in ("label/c/1", "category/c/0"):
        (tmp_path / "torn.zarr" / key).unlink()
    with pytest.raises(ValueError, match="index arrays category, label differ.*--overwrite"):
        _build(mesh_folder, out)
    report = verify(out)
    defects = {d.array for d in report.defects}
    assert defects == {"category"}, report.format()
    categories = group.attrs["categories"]
    assert len(categories) == 2  # label 0 is a valid label: only category gives it away
    np.testing.assert_array_equal(group["label"][:], [0, 0])
