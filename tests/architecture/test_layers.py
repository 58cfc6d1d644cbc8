"""The package's layers (docs/architecture.md), checked by import-linter's contracts in
pyproject.toml: each layer imports only the layers below it, the modules of one layer do not
import each other, and the trainer's side never imports pytorch3d or the build pipeline."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

from helpers import ROOT

LINT = os.path.join(os.path.dirname(sys.executable), "lint-imports")


def _lint(root: str, package_parent: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": package_parent}
    return subprocess.run([LINT, "--config", os.path.join(root, "pyproject.toml"),
                           "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_package_keeps_its_layers():
    done = _lint(ROOT, ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    """A copy of the package where the format (``tap3d.views``) imports the trainer: the
    layers contract fails and names the import."""
    shutil.copytree(os.path.join(ROOT, "tap3d"), tmp_path / "tap3d",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), tmp_path)
    schema = tmp_path / "tap3d" / "views" / "schema.py"
    schema.write_text(schema.read_text() + "\n\nfrom tap3d.train import checkpoint  # upward\n")
    done = _lint(str(tmp_path), str(tmp_path))
    assert done.returncode == 1, done.stdout[-3000:]
    assert "BROKEN" in done.stdout and "tap3d.views.schema -> tap3d.train.checkpoint" in \
        done.stdout, done.stdout[-3000:]


def test_test_folders_mirror_the_package():
    """tests/<name>/ holds the tests of tap3d's package or module <name> (architecture/, docs/
    and data/ aside)."""
    root = pathlib.Path(__file__).resolve().parents[2]
    names = {p.stem for p in (root / "tap3d").iterdir() if p.suffix == ".py" or
             (p / "__init__.py").is_file()}
    folders = {p.name for p in (root / "tests").iterdir() if p.is_dir()
               and p.name not in ("architecture", "docs", "data", "__pycache__")}
    assert folders and not folders - names, sorted(folders - names)
