"""Every repository file that a docstring, a doc, the README or a config names exists."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]

#: A path inside this repository: a top-level folder of it, then a file with one of its
#: extensions (paths with placeholders such as ``<name>``, ``*`` or ``{a,b}`` are not files).
REFERENCE = re.compile(r"(?<![\w/.-])((?:tap3d|docs|configs|benchmarks|tests|notebooks)/"
                       r"[\w./-]*\.(?:py|md|yaml|ipynb|png|sh|json))(?![\w*<{])")


#: A module named from inside the package (``train/weights/model.py``, as docs/architecture.md
#: does): the path under ``tap3d/``.
MODULE = re.compile(r"(?<![\w/.-])((?:cli|clouds|builder|evaluate|geometry|models|render|train|"
                    r"views)/[\w/]*\.py)(?![\w*<{])")


def references(text: str) -> list[str]:
    """The repository paths that ``text`` names (modules named from inside the package as
    ``tap3d/...``)."""
    return [m.group(1) for m in REFERENCE.finditer(text)] + \
        ["tap3d/" + m.group(1) for m in MODULE.finditer(text)]


def dangling(root: pathlib.Path) -> list[str]:
    """``file: path`` for each path named by a file under ``root`` that does not exist there."""
    sources = [*root.glob("tap3d/**/*.py"), *root.glob("docs/*.md"), root / "README.md",
               *root.glob("configs/*.yaml"), *root.glob("benchmarks/*.py")]
    return [f"{source.relative_to(root)}: {path}" for source in sources if source.is_file()
            for path in references(source.read_text()) if not (root / path).exists()]


def test_named_files_exist():
    missing = dangling(ROOT)
    assert not missing, "files named but not in the repository:\n" + "\n".join(missing)


def test_a_dangling_reference_is_found(tmp_path):
    (tmp_path / "tap3d").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "format.md").write_text("the format")
    (tmp_path / "tap3d" / "x.py").write_text('"""See docs/format.md and docs/format-partseg.md, '
                                             'and the authors\' cfgs/default.yaml."""\n')
    assert dangling(tmp_path) == ["tap3d/x.py: docs/format-partseg.md"]
    assert references("ROOT/tap3d/<name>.py, `docs/a.md`") == ["docs/a.md"]
    assert references("(`train/weights.py`; openpoints/models/x.py)") == ["tap3d/train/weights.py"]
