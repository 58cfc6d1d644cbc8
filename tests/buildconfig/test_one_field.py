"""Adding a build setting is one field: a copy of the package whose ``BuildConfig`` gains one
toy field, and nothing else, has it as a ``build-dataset`` option, a row of the docs table, an
attribute of a build and of ``import-tap``, and a setting a resumed build compares (with the
value of stores written before it existed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from helpers import ROOT, write_tap_tree

TOY = '    toy_level: int = setting(0, "A toy setting, for the test alone.", before=0)\n\n'

#: Run in the copy: the help, the docs table, a build, a refused and an accepted resume, and
#: an import; prints what it saw as JSON.
SCRIPT = textwrap.dedent('''
    import json, sys
    import zarr
    from click.testing import CliRunner
    import tap3d
    from tap3d.buildconfig import BuildConfig
    from tap3d.cli import main
    from tap3d.importers import import_tap
    from tap3d.settings import settings_table

    meshes, out, tree = sys.argv[1:4]
    seen = {"package": tap3d.__file__}
    run = lambda *a: CliRunner().invoke(main, list(a))
    seen["help"] = run("build-dataset", "--help").output
    seen["table"] = settings_table(BuildConfig)
    small = ["-o", out, "--image-size", "16", "--points", "32", "--views", "2", "--workers",
             "0", "--quiet", "--synsets", "textured"]
    built = run("build-dataset", meshes, *small, "--toy-level", "3")
    seen["build"] = [built.exit_code, built.output]
    if built.exit_code:
        sys.exit(f"the build failed: {built.output} {built.exception!r}")
    seen["attribute"] = zarr.open_group(out, mode="r").attrs.get("toy_level")
    other = run("build-dataset", meshes, *small, "--toy-level", "4")
    seen["other"] = [other.exit_code, other.output]
    group = zarr.open_group(out, mode="r+")  # a store written before the setting existed
    del group.attrs["toy_level"]
    older = run("build-dataset", meshes, *small, "--toy-level", "3")
    seen["older_other"] = [older.exit_code, older.output]
    older = run("build-dataset", meshes, *small)
    seen["older_same"] = [older.exit_code, older.output]
    import_tap(tree, out + ".tap", points=1024, progress=False)
    seen["import"] = zarr.open_group(out + ".tap", mode="r").attrs.get("toy_level", "absent")
    print(json.dumps(seen))
''')


@pytest.fixture(scope="module")
def seen(tmp_path_factory, mesh_folder, pybullet_root):
    copy = tmp_path_factory.mktemp("one-field")
    shutil.copytree(os.path.join(ROOT, "tap3d"), copy / "tap3d",
                    ignore=shutil.ignore_patterns("__pycache__"))
    module = copy / "tap3d" / "buildconfig.py"
    text = module.read_text()
    anchor = "    def validate(self)"
    assert text.count(anchor) == 1
    module.write_text(text.replace(anchor, TOY + anchor))
    tree = tmp_path_factory.mktemp("tap-tree")
    write_tap_tree(tree, pybullet_root, {"duck": "train"})
    done = subprocess.run([sys.executable, "-c", SCRIPT, mesh_folder, str(copy / "out.zarr"),
                           str(tree)], env={**os.environ, "PYTHONPATH": str(copy)}, cwd=copy,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["package"].startswith(str(copy))  # the copy, not the installed package
    return found


def test_the_field_is_an_option_and_a_docs_row(seen):
    assert "--toy-level" in seen["help"] and "A toy setting" in seen["help"]
    assert "| `--toy-level` | 0 | A toy setting, for the test alone. |" in seen["table"]


def test_a_build_records_it_and_a_resume_compares_it(seen):
    assert seen["build"][0] == 0, seen["build"][1]
    assert seen["attribute"] == 3
    assert seen["other"][0] != 0
    assert "toy_level: existing 3, this build 4" in seen["other"][1]


def test_a_store_without_it_was_built_with_its_before_value(seen):
    assert seen["older_other"][0] != 0
    assert "toy_level: existing 0, this build 3" in seen["older_other"][1]
    assert seen["older_same"][0] == 0, seen["older_same"][1]


def test_import_tap_records_it(seen):
    assert seen["import"] == 0
