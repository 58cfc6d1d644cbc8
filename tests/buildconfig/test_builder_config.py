"""Build settings (tap3d.buildconfig, ``tap-cli build-dataset``): one source of truth for the
options, their precedence (defaults < preset < --config file < explicit options), resume by
resolved settings, and the import flow sources -> render -> builder."""

from __future__ import annotations

import ast
import dataclasses
import os
import re

import pytest
import zarr
from click.testing import CliRunner

import tap3d.builder
from tap3d.buildconfig import (CHOICES, PRESETS, BuildConfig, compared_attributes, field_type,
                               load_build_config, preset_config)
from tap3d.cli import main
from tap3d.settings import field_help

BUILD_HELP = field_help(BuildConfig)
RESUME_SETTINGS = tuple(compared_attributes())

FIELDS = dataclasses.fields(BuildConfig)
COMMAND = main.commands["build-dataset"]
#: BuildConfig field -> its dataset attribute, where the names differ.
ATTRIBUTE = {"points": "points_per_object"}


def _other_value(field):
    """A valid value of ``field`` other than its default."""
    if field.name in CHOICES:
        return next(c for c in CHOICES[field.name] if c != field.default)
    kind = field_type(field.name)
    if isinstance(kind, tuple):  # a tuple field defaulting to None: from ones
        base = field.default if field.default is not None else (1.0,) * len(kind)
        return tuple(kind[i](v / 2 + 0.125 * i) for i, v in enumerate(base))
    if kind is bool:
        return not field.default
    if kind is str:
        return "cpu" if field.default != "cpu" else "cuda"
    return kind((field.default or 0) + (1 if kind is int else 0.5))


def _arguments(values: dict) -> list[str]:
    args = []
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + flag[2:])
        else:
            args += [flag, *map(str, value if isinstance(value, tuple) else (value,))]
    return args


@pytest.fixture
def resolved(monkeypatch):
    """``resolved(*args)``: the BuildConfig that ``tap-cli build-dataset SRC -o OUT *args``
    hands to :func:`tap3d.builder.build` (which is replaced: nothing is built)."""
    seen = []

    def fake_build(source, output, config, **kwargs):
        seen.append(config)
        raise ValueError("not building")

    monkeypatch.setattr(tap3d.builder, "build", fake_build)

    def run(*args):
        result = CliRunner().invoke(main, ["build-dataset", "src", "-o", "out.zarr", *args])
        assert "not building" in result.output, result.output
        return seen.pop()

    return run


def test_every_field_is_an_option_whose_default_is_the_dataclass_one():
    params = {p.name: p for p in COMMAND.params}
    assert set(BUILD_HELP) == {f.name for f in FIELDS}  # a help line per field, none stale
    for field in FIELDS:
        option = params[field.name]
        assert option.opts == ["--" + field.name.replace("_", "-")]
        assert option.default is None  # not given: the preset, file or dataclass decides
        assert BUILD_HELP[field.name] and option.help.startswith(BUILD_HELP[field.name])
        if field.name in CHOICES:
            assert tuple(option.type.choices) == CHOICES[field.name]
        if field.default is not None:
            shown = " ".join(map(str, field.default)) if isinstance(field.default, tuple) \
                else str(field.default)
            assert option.help.endswith(f"[default: {shown}]"), option.help
    for name, settings in PRESETS.items():
        assert set(settings) <= {f.name for f in FIELDS}
        assert f"{name}: " + ", ".join(f"{k} {v}" for k, v in settings.items()) in \
            params["preset"].help


def test_cli_reaches_every_field_and_defaults_to_the_dataclass(resolved):
    assert resolved() == BuildConfig()
    values = {field.name: _other_value(field) for field in FIELDS}
    assert all(values[f.name] != f.default for f in FIELDS)
    assert resolved(*_arguments(values)) == BuildConfig(**values)


def test_preset_sets_any_field_unless_the_user_gives_it(resolved, monkeypatch, tmp_path):
    monkeypatch.setitem(PRESETS, "tap", {**PRESETS["tap"], "image_size": 64, "points": 100})
    assert (resolved("--preset", "tap").image_size, resolved("--preset", "tap").points) == (64, 100)
    given = resolved("--preset", "tap", "--image-size", "32")
    assert (given.image_size, given.points, given.views, given.layout) == (32, 100, 12, "mvcnn")
    # defaults < preset < file < explicit options; the file may name the preset
    config = tmp_path / "build.yaml"
    config.write_text("preset: tap\npoints: 200\nfov: 40\nbackground: [0, 0, 0]\n")
    from_file = resolved("--config", str(config))
    assert (from_file.preset, from_file.image_size, from_file.points, from_file.fov,
            from_file.background, from_file.shading) == ("tap", 64, 200, 40.0, (0.0, 0.0, 0.0),
                                                         "plain")
    both = resolved("--config", str(config), "--points", "300", "--preset", "clip2point")
    assert (both.preset, both.views, both.image_size, both.points, both.fov) == \
        ("clip2point", 10, 224, 300, 40.0)
    # views from the file without a layout: its own layout, not the preset's
    config.write_text("preset: tap\nviews: 6\n")
    assert (resolved("--config", str(config)).layout, load_build_config(str(config)).views) == \
        ("auto", 6)
    assert load_build_config(None, preset="tap") == preset_config("tap")


#: Bad ``--config`` files -> words of the error.
BAD_FILES = {
    "image_size: 64\nsynsets: chair\n": "unknown config keys: synsets",
    "image_size: '64'\n": "image_size must be of type int, got '64'",
    "background: [1, 1]\n": "background must be 3 numbers",
    "- views\n": "expected a mapping of settings",
    "preset: mvcnn\n": "preset must be one of clip2point, clip2point-pretrain, tap",
}


@pytest.mark.parametrize("text", BAD_FILES)
def test_bad_config_file_is_an_error_naming_it(tmp_path, text):
    words, path = BAD_FILES[text], tmp_path / "build.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["build-dataset", "src", "-o", str(tmp_path / "o.zarr"),
                                       "--config", str(path)])
    assert result.exit_code != 0 and words in result.output, result.output
    assert str(path) in result.output
    assert not (tmp_path / "o.zarr").exists()


def test_every_rendering_setting_is_compared_on_resume():
    """A new BuildConfig field is recorded and compared when a build resumes, unless it says how
    the settings were spelled (``preset``) or where they run (``device``)."""
    for field in FIELDS:
        if field.name not in ("preset", "device", "distance"):  # distance: in the layout
            assert ATTRIBUTE.get(field.name, field.name) in RESUME_SETTINGS, field.name
    assert "preset" not in RESUME_SETTINGS


def _build(tmp_path, mesh_folder, out, *args):
    small = ["--image-size", "32", "--points", "64", "--shard-size", "1", "--synsets",
             "textured", "--workers", "0", "--quiet"]
    return CliRunner().invoke(main, ["build-dataset", mesh_folder, "-o", str(out), *small, *args])


def test_resume_compares_resolved_settings_not_their_spelling(tmp_path, mesh_folder):
    """Built with ``--preset clip2point``, resumed without it or with a file spelling the same
    settings (and the other way round); a real difference is still refused."""
    first, second = tmp_path / "preset.zarr", tmp_path / "plain.zarr"
    done = _build(tmp_path, mesh_folder, first, "--preset", "clip2point")
    assert done.exit_code == 0 and "2 of 2 objects done" in done.output, done.output
    assert zarr.open_group(str(first), mode="r").attrs["preset"] == "clip2point"
    config = tmp_path / "build.yaml"
    config.write_text("views: 10\nlayout: clip2point\nshading: textured\nfov: 60\n")
    for spelling in ([], ["--config", str(config)], ["--layout", "auto"]):
        again = _build(tmp_path, mesh_folder, first, *spelling)
        assert again.exit_code == 0, again.output
        assert "resumed: 0 of 2 shards rendered" in again.output, again.output
    assert zarr.open_group(str(first), mode="r").attrs["preset"] == "clip2point"  # kept
    done = _build(tmp_path, mesh_folder, second)
    assert done.exit_code == 0 and zarr.open_group(str(second), mode="r").attrs["preset"] is None
    again = _build(tmp_path, mesh_folder, second, "--preset", "clip2point")
    assert again.exit_code == 0 and "resumed: 0 of 2 shards rendered" in again.output
    refused = _build(tmp_path, mesh_folder, second, "--preset", "tap")
    assert refused.exit_code != 0 and "views: existing 10, this build 12" in refused.output
    assert "shading: existing 'textured', this build 'plain'" in refused.output
    assert "preset" not in refused.output.split("resume:")[-1]  # the spelling is not a difference


def _imports(module_path: str) -> set[str]:
    """The tap3d modules that a source file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(open(module_path).read())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tap3d"):
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("tap3d")}
    return found


def test_imports_flow_sources_render_builder():
    """sources -> render -> builder, and no import cycle among the render modules (even one
    hidden inside a function)."""
    root = os.path.dirname(os.path.dirname(tap3d.builder.__file__))
    render = {name[:-3]: _imports(os.path.join(root, "render", name))
              for name in os.listdir(os.path.join(root, "render")) if name.endswith(".py")}
    sources = os.path.join(root, "sources")
    assert not {m for name in os.listdir(sources) if name.endswith(".py")
                for m in _imports(os.path.join(sources, name))
                if re.match(r"tap3d\.(render|builder)", m)}
    graph = {name: {m.split(".")[2] for m in deps
                    if m.startswith("tap3d.render.") and m.split(".")[2] in render} - {name}
             for name, deps in render.items()}
    assert not any(m.startswith("tap3d.builder") for deps in render.values() for m in deps)
    done: list[str] = []
    while len(done) < len(graph):  # peel modules whose imports are all peeled: a DAG empties
        ready = [n for n in graph if n not in done and graph[n] <= set(done)]
        assert ready, {n: graph[n] - set(done) for n in graph if n not in done}  # a cycle
        done += ready
