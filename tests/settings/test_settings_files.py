"""Settings of every command (tap3d.settings): a YAML file with a wrong-typed value or an unknown
choice fails before any work, naming the file and the key; defaults < file < options; old run
folders' settings still load; the command-line options are made from the settings classes."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from click.testing import CliRunner

from tap3d.buildconfig import BuildConfig
from tap3d.cli import main
from tap3d.evaluate.probe import ProbeConfig
from tap3d.settings import SettingsError, load_settings
from tap3d.train import FinetuneConfig, PartSegConfig, TrainConfig


#: command line (DATA and OUT filled in) -> (a wrong-typed key, an unknown-choice key) of its
#: settings class; every one must fail before anything is written.
COMMANDS = {
    "build": (["build-dataset", "pybullet", "-o", "{out}"], ("image_size", "ten"),
              ("shading", "glossy")),
    "train": (["train", "{data}", "-o", "{out}"], ("lr", "fast"), ("sampling", "poisson")),
    "finetune": (["finetune", "{data}", "-o", "{out}"], ("epochs", 2.5),
                 ("rotation", "sideways")),
    "partseg": (["finetune", "{data}", "-o", "{out}", "--task", "partseg"], ("normals", "maybe"),
                ("loss", "dice")),
    "probe": (["probe", "{data}", "--json", "{out}"], ("svm_c", "large"),
              ("variant", "hardest")),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("kind", ["wrong type", "unknown choice"])
def test_a_bad_value_in_a_settings_file_fails_first_naming_file_and_key(tmp_path, command, kind):
    args, wrong, choice = COMMANDS[command]
    key, value = wrong if kind == "wrong type" else choice
    path = tmp_path / f"{command}.yaml"
    path.write_text(yaml.safe_dump({key: value}))
    out = tmp_path / "out"
    data = tmp_path / "no-data-here"  # never read: the settings fail first
    argv = [a.format(data=data, out=out) for a in args] + ["--config", str(path)]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code != 0, result.output
    assert f"{path}: {key} must be" in result.output, result.output
    assert repr(value) in result.output or str(value) in result.output
    assert "Traceback" not in result.output
    assert not out.exists() and not data.exists()


def test_options_name_themselves_and_override_the_file(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("lr: 1e-3\nbatch_size: 4\nquery: tap\n")
    config = load_settings(TrainConfig, str(path), batch_size=8)
    # defaults < file < options; YAML 1.2's 1e-3 is a float
    assert (config.lr, config.batch_size, config.query, config.epochs) == (1e-3, 8, "tap", 100)
    with pytest.raises(SettingsError, match="options: generator_factor must be one of 8, 16, "
                                            "32, got 12"):
        load_settings(TrainConfig, str(path), generator_factor=12)
    with pytest.raises(SettingsError, match=f"{path}: unknown config keys: w_feet"):
        path.write_text("w_feet: 1\n")
        load_settings(TrainConfig, str(path))
    # a bool is not an int, a float with a fraction is not an int; an int is a float
    for bad in ({"points": True}, {"points": 10.5}, {"device": "gpu"}):
        with pytest.raises(SettingsError, match=f"options: {next(iter(bad))} "):
            load_settings(TrainConfig, None, **bad)
    assert load_settings(TrainConfig, None, w_fg=20).w_fg == 20.0


def test_cli_reports_a_bad_option_as_the_option(tmp_path):
    result = CliRunner().invoke(main, ["finetune", str(tmp_path), "-o", str(tmp_path / "r"),
                                       "--task", "partseg", "--rotation", "so3"])
    assert result.exit_code == 2 and "--rotation: not a setting of --task partseg" in \
        result.output, result.output
    result = CliRunner().invoke(main, ["train", str(tmp_path), "-o", str(tmp_path / "r"),
                                       "--generator-factor", "12"])
    assert result.exit_code == 2 and "'12' is not one of '8', '16', '32'" in result.output


def test_every_setting_is_an_option_of_its_command():
    commands = {"train": [TrainConfig], "finetune": [FinetuneConfig, PartSegConfig],
                "probe": [ProbeConfig], "build-dataset": [BuildConfig]}
    for name, classes in commands.items():
        params = {p.name: p for p in main.commands[name].params}
        for cls in classes:
            for field in dataclasses.fields(cls):
                assert field.name in params, (name, field.name)
                assert params[field.name].default is None  # not given: file or defaults decide
                assert params[field.name].help, (name, field.name)
