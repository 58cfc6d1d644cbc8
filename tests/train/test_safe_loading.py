"""Files are data (docs/weights.md): a checkpoint whose pickle would run code is refused by every
loader and every command that reads weights, naming the file and the refused global, and
``--trust-checkpoint`` (``trust=True``) is the only way past; tap3d's own checkpoints (new and
legacy) and the TAP authors' checkpoints load without it."""

from __future__ import annotations

import dataclasses
import io
import os
import pathlib
import re
import shutil
import zipfile

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from tap3d.cli import main
from tap3d.train.weights import (CheckpointError, WeightsError, export_backbone, export_model, init_model, load_backbone, load_backbone_weights, load_model_weights, load_torch_file)
from tap3d.models import TAPModel, make_backbone
from tap3d.models.openpoints import model_to_openpoints
from tap3d.models.segmentation import make_segmenter
from tap3d.train.weights import load_pretrained_backbone
from tap3d.train import FinetuneConfig, finetune, load_config, load_finetune_config, load_model
from tap3d.train.checkpoint import (CHECKPOINT_FORMAT, CHECKPOINT_VERSION, load_checkpoint,
                                    rng_state, save_checkpoint, set_rng_state)
from tap3d.train.config import model_config
from tap3d.train.finetune import build_classifier

from evaluate_data import write_modelnet40_h5
from helpers import ROOT
from partseg_data import write_part_folder

LEGACY = os.path.join(ROOT, "tests", "data", "legacy-469bd89")
SYSTEM = f"{os.system.__module__}.system"  # posix.system: what the pickle names


class Shell:
    """Unpickles as ``os.system(command)``: what a malicious checkpoint holds."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class Exec:
    """Unpickles as ``exec(source)``."""

    def __init__(self, source: str):
        self.source = source

    def __reduce__(self):
        return exec, (self.source,)


class Note:
    """A harmless object of a class of its own (a config object, say): refused all the same."""

    def __init__(self, text: str):
        self.text = text


def authors_structure():
    """A TAP model with the authors' structure at small widths (their names exist for it)."""
    return load_config(None, backbone="pointmlp", embed_dim=8, photograph_dim=32,
                       photograph_depth=1, photograph_heads=4, photograph_head_dim=4,
                       photograph_qkv_bias=False, photograph_memory_hidden=131,
                       photograph_memory_norm=False, photograph_output_norm=False, query="tap",
                       generator_factor=32, batch_size=1, views_per_sample=3, max_steps=1,
                       device="cpu", eval_objects=0, checkpoint_every=1, sample_every=100)


def backbone_file(path, extra) -> str:
    """A tap3d backbone file (PointMLP, width 8) whose config also holds ``extra``."""
    torch.save({"format": "tap3d.backbone", "version": 1, "backbone": "pointmlp",
                "state_dict": make_backbone("pointmlp", embed_dim=8).state_dict(),
                "config": {"backbone": "pointmlp", "extra": extra}, "step": 0}, path)
    return str(path)


def authors_file(path, best_val, **extra) -> str:
    """The authors' ``*_ckpt_latest.pth`` (under DDP: ``module.``) with ``best_val`` and
    ``extra`` entries."""
    theirs = model_to_openpoints(TAPModel(model_config(authors_structure(), 64, "perspective"))
                                 .state_dict(), "pointmlp")
    torch.save({"model": {f"module.{k}": v for k, v in theirs.items()}, "optimizer": {},
                "scheduler": {}, "epoch": 99, "best_val": best_val, **extra}, path)
    return str(path)


def run_folder(path, extra) -> str:
    """A pre-training run folder whose ``last.pt`` also holds ``extra`` next to the states."""
    config = authors_structure()
    built = model_config(config, 64, "perspective")
    save_checkpoint(os.path.join(path, "checkpoints"), {
        "model": TAPModel(built).state_dict(), "step": 0, "epoch": 0, "batch_in_epoch": 0,
        "config": dataclasses.asdict(config), "model_args": dataclasses.asdict(built),
        "rng": {**rng_state(), "extra": extra}})
    return str(path)


@pytest.fixture
def marker(tmp_path):
    """A file that exists only if a checkpoint ran its code."""
    return tmp_path / "MARKER"


@pytest.fixture
def evil(tmp_path, marker):
    """Malicious files of every kind a command reads (``os.system("touch MARKER")`` inside an
    otherwise valid checkpoint): ``backbone``, ``authors``, ``run`` (folder)."""
    payload = Shell(f"touch {marker}")
    return {"backbone": backbone_file(tmp_path / "evil-backbone.pt", payload),
            "authors": authors_file(tmp_path / "evil_ckpt_latest.pth", payload),
            "run": run_folder(tmp_path / "evil-run", payload)}


def assert_refused(error: str, path: str, marker, name: str = SYSTEM) -> None:
    """One line naming the file, the refused global and the opt-in; nothing ran."""
    assert not marker.exists(), "the checkpoint's code ran"
    assert path in error and name in error and "--trust-checkpoint" in error, error


# -- the Python loaders ----------------------------------------------------------------------

#: loader -> (the kind of file it reads, how)
LOADERS = {
    "load_torch_file": ("backbone", lambda path, out: load_torch_file(path)),
    "load_checkpoint (file)": ("backbone", lambda path, out: load_checkpoint(path)),
    "load_checkpoint (run)": ("run", lambda path, out: load_checkpoint(path)),
    "load_model": ("run", lambda path, out: load_model(path)),
    "load_backbone_weights": ("backbone", lambda path, out: load_backbone_weights(path)),
    "load_backbone (run)": ("run", lambda path, out: load_backbone(path)),
    "export_backbone": ("backbone", export_backbone),
    "load_model_weights": ("authors", lambda path, out: load_model_weights(path)),
    "init_model": ("authors", lambda path, out: init_model(
        TAPModel(model_config(authors_structure(), 64, "perspective")), path)),
    "export_model": ("authors", export_model),
    "build_classifier": ("backbone", lambda path, out: build_classifier(
        FinetuneConfig(backbone_checkpoint=path, embed_dim=8), 3)),
    "load_pretrained_backbone": ("backbone", lambda path, out: load_pretrained_backbone(
        make_segmenter("pointmlp", 4, 1, embed_dim=8), path)),
}


@pytest.mark.parametrize("loader", LOADERS)
def test_every_loader_refuses_a_file_that_would_run_code(tmp_path, evil, marker, loader):
    kind, load = LOADERS[loader]
    with pytest.raises(CheckpointError) as error:
        load(evil[kind], str(tmp_path / "out.pt"))
    source = evil[kind]
    if os.path.isdir(source):
        source = os.path.join(source, "checkpoints", "last.pt")
    assert_refused(str(error.value), source, marker)
    assert "\n" not in str(error.value) and isinstance(error.value, WeightsError)
    assert not (tmp_path / "out.pt").exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4")
def test_refusal_names_each_kind_of_global_and_file_format(tmp_path, marker):
    """exec (torch leaves builtins. off: put back), the pre-1.6 file format, a class of one's
    own, and a pickle that calls through a global hidden in a protocol-4 frame."""
    cases = {"exec": (Exec(f"open({str(marker)!r}, 'w').write('ran')"), "builtins.exec", {}),
             "old": (Shell(f"touch {marker}"), SYSTEM, {"_use_new_zipfile_serialization": False}),
             "note": (Note("hello"), f"{Note.__module__}.Note", {}),
             "protocol4": (Shell(f"touch {marker}"), "Unsupported operand",
                           {"pickle_protocol": 4})}
    for name, (payload, refused, options) in cases.items():
        path = str(tmp_path / f"{name}.pt")
        torch.save({"model": {"w": torch.ones(2)}, "x": payload}, path, **options)
        with pytest.raises(CheckpointError, match=re.escape(path)) as error:
            load_torch_file(path)
        assert_refused(str(error.value), path, marker, refused)


def test_trust_is_the_only_way_past(tmp_path, marker):
    """With ``trust=True`` / ``--trust-checkpoint`` a file of one's own classes loads (and a
    malicious one would run: the opt-in is the full unpickler, for files one trusts)."""
    path = backbone_file(tmp_path / "note.pt", Note("trained on a Tuesday"))
    with pytest.raises(CheckpointError, match=re.escape(f"{Note.__module__}.Note")):
        load_backbone_weights(path)
    out = tmp_path / "exported.pt"
    refused = CliRunner().invoke(main, ["export-backbone", path, "-o", str(out)])
    assert refused.exit_code == 1 and "--trust-checkpoint" in refused.output
    assert not out.exists()
    done = CliRunner().invoke(main, ["export-backbone", path, "-o", str(out),
                                     "--trust-checkpoint"])
    assert done.exit_code == 0, done.output
    assert load_torch_file(out)["backbone"] == "pointmlp"  # what tap3d writes is data
    assert load_backbone_weights(path, trust=True).config["extra"].text == "trained on a Tuesday"
    shell = backbone_file(tmp_path / "shell.pt", Shell(f"touch {marker}"))
    load_torch_file(shell, trust=True)
    assert marker.exists()  # trust means trust


def test_unreadable_files_are_weights_errors_not_refusals(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n")
    with pytest.raises(WeightsError, match="not a torch checkpoint") as error:
        load_torch_file(text)
    assert not isinstance(error.value, CheckpointError)
    with pytest.raises(FileNotFoundError):
        load_torch_file(tmp_path / "missing.pt")


# -- the commands ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def views(make_dataset, duck_and_mug_meshes):
    """The duck and the mug, 3 views of 64 x 64, 1024 points."""
    return make_dataset("safe-loading", duck_and_mug_meshes, views=3, image_size=64,
                        points=1024, shard_size=2)


@pytest.fixture(scope="module")
def clouds(tmp_path_factory):
    """A ModelNet40 h5 folder of random clouds: 3 classes, 6 train and 3 test clouds each."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("clouds")

    def split(per_class):
        labels = np.repeat(np.arange(3), per_class)
        return rng.normal(size=(len(labels), 256, 3)).astype(np.float32), labels

    return write_modelnet40_h5(str(root), split(6), split(3), ["a", "b", "c"])


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """A ShapeNetPart folder of random clouds of one category (Totem: 3 parts by height)."""
    rng = np.random.default_rng(1)
    shapes = []
    for i in range(6):
        xyz = rng.uniform(-1, 1, size=(256, 3))
        part = np.digitize(xyz[:, 1], [-1 / 3, 1 / 3])
        shapes.append(("90000001", f"shape{i}", xyz, np.zeros_like(xyz), part))
    return write_part_folder(str(tmp_path_factory.mktemp("parts")), [("Totem", "90000001")],
                             shapes, ["train"] * 3 + ["val"] + ["test"] * 2)


@pytest.fixture
def train_yaml(tmp_path):
    """:func:`authors_structure` as a YAML config (its scalar settings)."""
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in vars(authors_structure()).items()
                                    if isinstance(v, (int, float, str, bool))}))
    return str(path)


COMMANDS = {
    "export-backbone": lambda f, d, o: ["export-backbone", f["backbone"], "-o", o],
    "export-model": lambda f, d, o: ["export-model", f["authors"], "-o", o],
    "generate": lambda f, d, o: ["generate", f["authors"], d["views"], "-o", o,
                                 "--device", "cpu"],
    "finetune --backbone-checkpoint": lambda f, d, o: [
        "finetune", d["clouds"], "-o", o, "--backbone-checkpoint", f["backbone"],
        "--device", "cpu", "--max-steps", "1", "--quiet"],
    "finetune --task partseg --backbone-checkpoint": lambda f, d, o: [
        "finetune", d["parts"], "--task", "partseg", "-o", o, "--backbone-checkpoint",
        f["backbone"], "--device", "cpu", "--max-steps", "1", "--quiet"],
    "finetune --resume": lambda f, d, o: [
        "finetune", d["clouds"], "-o", f["run"], "--resume", "--device", "cpu", "--batch-size",
        "2", "--embed-dim", "8", "--max-steps", "1", "--quiet"],
    "probe": lambda f, d, o: ["probe", d["clouds"], "--backbone-checkpoint", f["backbone"],
                              "--device", "cpu", "--points", "256"],
    "train --init": lambda f, d, o: ["train", d["views"], "-o", o, "--config", d["yaml"],
                                     "--init", f["authors"], "--quiet"],
    "train --resume": lambda f, d, o: ["train", d["views"], "-o", f["run"], "--config",
                                       d["yaml"], "--resume", "--quiet"],
}

#: the data each command reads before the weights (fixtures)
NEEDS = {"generate": "views", "train --init": "views", "train --resume": "views",
         "finetune --backbone-checkpoint": "clouds", "finetune --resume": "clouds",
         "probe": "clouds", "finetune --task partseg --backbone-checkpoint": "parts"}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_refuses_a_file_that_would_run_code(request, tmp_path, evil, marker,
                                                          command):
    """Each command that reads weights, in process: exit 1, one message naming the file and
    ``posix.system``, nothing ran, nothing written; the same command with
    ``--trust-checkpoint`` unpickles the file, and its code runs (what trusting a file means)."""
    data = {"yaml": request.getfixturevalue("train_yaml")}
    if command in NEEDS:
        data[NEEDS[command]] = request.getfixturevalue(NEEDS[command])
    out = str(tmp_path / "out")
    result = CliRunner().invoke(main, COMMANDS[command](evil, data, out))
    source = evil["run"] if "resume" in command else \
        evil["authors"] if command in ("export-model", "generate", "train --init") \
        else evil["backbone"]
    if os.path.isdir(source):
        source = os.path.join(source, "checkpoints", "last.pt")
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert_refused(result.output, source, marker)
    assert not os.path.exists(os.path.join(out, "checkpoints"))
    CliRunner().invoke(main, COMMANDS[command](evil, data, out) + ["--trust-checkpoint"])
    assert marker.exists()


# -- what must load without the opt-in ----------------------------------------------------------

def test_tap3d_run_folders_load_as_data(tmp_path, clouds):
    """A new run's checkpoint names no global at all (its NumPy state is plain ints); resume is
    exact."""
    config = load_finetune_config(os.path.join(ROOT, "configs", "finetune-cpu.yaml"),
                                  epochs=1, max_steps=2, batch_size=4, checkpoint_every=1)
    run = str(tmp_path / "run")
    finetune(clouds, run, config, progress=False, stop_at=1)
    last = os.path.join(run, "checkpoints", "last.pt")
    assert torch.serialization.get_unsafe_globals_in_checkpoint(last) == []
    state = torch.load(last, weights_only=True)  # torch's own allowlist suffices
    assert isinstance(state["rng"]["numpy"][1], list)
    assert (state["format"], state["version"]) == (CHECKPOINT_FORMAT, CHECKPOINT_VERSION)
    assert finetune(clouds, run, config, progress=False, resume=True)["steps"] == 2


def test_run_folders_of_development_versions_are_refused_naming_the_version(tmp_path, clouds):
    """``legacy-469bd89/`` holds run folders written by a development version of tap3d 0.1.0
    (commit 469bd89), before checkpoints had a version: every reader refuses them in one
    sentence naming the file, the version found and the one read; a resume changes none of
    their files."""
    words = ("tap3d checkpoint version none", "reads version 1 only")
    for kind in ("pretrain", "finetune"):
        last = os.path.join(LEGACY, kind, "checkpoints", "last.pt")
        for read in (load_checkpoint, load_backbone_weights, load_model_weights, load_model):
            with pytest.raises(WeightsError) as error:
                read(os.path.join(LEGACY, kind))
            assert last in str(error.value) and all(w in str(error.value) for w in words)
    old = tmp_path / "old"
    shutil.copytree(os.path.join(LEGACY, "finetune"), old)
    before = {p: p.read_bytes() for p in old.rglob("*") if p.is_file()}
    done = CliRunner().invoke(main, ["finetune", clouds, "-o", str(old), "--resume", "--embed-dim",
                                     "4", "--max-steps", "6", "--batch-size", "4"])
    assert done.exit_code == 1 and all(w in done.output for w in words), done.output
    assert all(path.read_bytes() == data for path, data in before.items())  # nothing lost
    untagged = tmp_path / "backbone.pt"  # a backbone file from before format and version
    torch.save({"backbone": "pointmlp", "state_dict": make_backbone("pointmlp", embed_dim=8)
                .state_dict()}, untagged)
    with pytest.raises(WeightsError, match="tap3d backbone file version none.*export it again"):
        load_backbone_weights(untagged)


def test_rng_states_restore_exactly():
    state = rng_state()
    expected = (np.random.rand(5), torch.rand(5))
    set_rng_state(state)
    np.testing.assert_array_equal(np.random.rand(5), expected[0])
    assert torch.equal(torch.rand(5), expected[1])


def _numpy1_names(path: str) -> None:
    """Rewrite a torch file's pickle as numpy 1 wrote it (``numpy.core.multiarray``)."""
    with zipfile.ZipFile(path) as source:
        entries = [(info, source.read(info)) for info in source.infolist()]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as target:
        for info, data in entries:
            if info.filename.endswith("data.pkl"):
                assert b"numpy._core.multiarray" in data
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            target.writestr(info, data)
    pathlib.Path(path).write_bytes(buffer.getvalue())


def test_authors_checkpoints_load_as_data_with_numpy_values(tmp_path):
    """Their ckpt_latest with numpy numbers (``best_val`` as np.float64, arrays), also written by
    numpy 1, loads without the opt-in; so does their clean file."""
    path = authors_file(tmp_path / "x_ckpt_latest.pth", np.float64(87.5),
                        metrics={"acc": np.float32(0.5), "per_class": np.arange(3)})
    _numpy1_names(path)
    weights = load_model_weights(path)
    assert weights.origin == "openpoints" and weights.step == 99 and not weights.backbone_only
    assert load_torch_file(path)["best_val"] == 87.5
    clean = tmp_path / "x_clean.pth"
    model = load_torch_file(path)["model"]
    torch.save({"model": {k[len("module.encoder."):]: v for k, v in model.items()
                          if k.startswith("module.encoder.")}}, clean)
    assert load_backbone_weights(clean).backbone == "pointmlp"


def test_the_package_has_one_torch_load_and_one_trust_path():
    """Every ``torch.load`` of tap3d and the benchmarks is the safe loader's; ``weights_only=
    False`` appears once, in its ``trust`` branch."""
    loads, unsafe = [], []
    for folder in ("tap3d", "benchmarks"):
        for path in pathlib.Path(ROOT, folder).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#")[0]
                if "torch.load(" in code and "``" not in code:
                    loads.append((path.name, number))
                if "weights_only=False" in code and "``" not in code:
                    unsafe.append((path.name, number))
    assert [name for name, _ in loads] == ["torchfile.py", "torchfile.py"], loads
    assert [name for name, _ in unsafe] == ["torchfile.py"], unsafe
