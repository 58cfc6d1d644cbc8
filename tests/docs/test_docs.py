"""The documentation matches the tree: README's code map and docs/format.md's array table.

No rendering: these read the Markdown files and the package's own tables
(:func:`tap3d.views.schema.array_specs`, :data:`tap3d.views.verify.REQUIRED_ATTRIBUTES`).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from tap3d.views import schema
from tap3d.views.verify import REQUIRED_ATTRIBUTES

#: The repository root: the nearest folder above this file that holds pyproject.toml.
ROOT = next(folder for folder in Path(__file__).resolve().parents
            if (folder / "pyproject.toml").is_file())
README = ROOT / "README.md"
FORMAT = ROOT / "docs" / "format.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
#: An entry of the code map: at the margin (a path from the repository root) or indented by two
#: to four spaces (a path inside the last folder named at the margin). Deeper indents continue a
#: description.
ENTRY = re.compile(r"^(?P<indent> {0,4})(?P<path>[\w./-]+)(?:\s|$)")
PY_NAME = re.compile(r"^[\w-]+\.py,?$")


def code_map(text: str) -> list[str]:
    """The lines of the fenced block under the README's ``## Code map`` heading.

    Raises:
        AssertionError: no such heading or no fenced block under it.
    """
    section = re.search(r"^## Code map\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, "README.md has no '## Code map' section"
    block = re.search(r"^```[^\n]*\n(.*?)^```", section.group(1), re.M | re.S)
    assert block, "README.md's code map has no fenced block"
    return block.group(1).splitlines()


def named_paths(lines: list[str]) -> list[str]:
    """Repository-relative paths the code map names, in order.

    A line at the margin names a file or a folder (trailing slash); a folder at the margin is
    where the indented entries below it live. A folder entry may name files of its own after it
    (``backbones/  base.py, dgcnn.py``), on its line and on its deeper-indented continuation
    lines.
    """
    paths, folder, listing = [], "", None
    for line in lines:
        entry = ENTRY.match(line)
        if entry is None or (entry["indent"] and not (entry["path"].endswith(".py")
                                                      or entry["path"].endswith("/"))):
            # a description's continuation: a folder entry may go on naming its files
            if listing is not None:
                paths += [listing + name.rstrip(",") for name in line.split() if PY_NAME.match(name)]
            continue
        path = entry["path"] if not entry["indent"] else folder + entry["path"]
        paths.append(path)
        listing = path if path.endswith("/") else None
        if listing is not None:
            rest = line[entry.end():].split()
            paths += [path + name.rstrip(",") for name in rest if PY_NAME.match(name)]
        if not entry["indent"]:
            folder = path if path.endswith("/") else ""
    return paths


def test_code_map_parser_reads_folders_files_and_listings():
    lines = ["tap3d/cli.py        the CLI", "tap3d/render/       folder", "  cameras.py        x",
             "                    continued with words.py in prose",
             "  backbones/        base.py (interface), dgcnn.py,", "                    pointmlp.py",
             "benchmarks/         build.py, model.py"]
    assert named_paths(lines) == [
        "tap3d/cli.py", "tap3d/render/", "tap3d/render/cameras.py", "tap3d/render/backbones/",
        "tap3d/render/backbones/base.py", "tap3d/render/backbones/dgcnn.py",
        "tap3d/render/backbones/pointmlp.py", "benchmarks/", "benchmarks/build.py",
        "benchmarks/model.py"]


def test_readme_code_map_matches_the_package():
    named = named_paths(code_map(README.read_text()))
    missing = [path for path in named if not (ROOT / path).exists()
               or path.endswith("/") != (ROOT / path).is_dir()]
    assert not missing, f"README.md's code map names paths that do not exist: {missing}"
    modules = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "tap3d").rglob("*.py")
                     if path.name != "__init__.py")
    left_out = [module for module in modules if module not in set(named)]
    assert not left_out, f"README.md's code map leaves out these modules: {left_out}"


def format_rows(text: str) -> dict[str, list[str]]:
    """Rows of docs/format.md's tables whose first cell is one backticked name."""
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        name = re.fullmatch(r"`([\w/]+)`", cells[0]) if line.startswith("|") else None
        if name:
            rows.setdefault(name.group(1), cells[1:])
    return rows


def test_format_page_documents_every_array_as_the_schema_defines_it():
    rows = format_rows(FORMAT.read_text())
    sizes = {11: "N", 13: "V", 17: "S", 19: "P"}  # none of them a literal size (3, 4) of the table
    for name, spec in schema.array_specs(*sizes).items():
        assert name in rows, f"docs/format.md has no row for the array {name!r}"
        dtype, shape, dims = rows[name][:3]
        assert dtype == ("string" if spec.dtype is str else spec.dtype), (name, dtype)
        expected = "(" + ", ".join(sizes.get(n, str(n)) for n in spec.shape) + \
            ("," if len(spec.shape) == 1 else "") + ")"
        assert shape == expected, (name, shape, expected)
        assert dims == ", ".join(spec.dims), (name, dims)


def test_format_page_documents_required_attributes_and_status_codes():
    rows = format_rows(FORMAT.read_text())
    for key in REQUIRED_ATTRIBUTES:
        assert key in rows and rows[key][0] == "R", f"docs/format.md: attribute {key!r} not R"
    for code in (schema.STATUS_PENDING, schema.STATUS_DONE, schema.STATUS_FAILED):
        assert re.search(rf"^\| {code} \|", FORMAT.read_text(), re.M), code
    title = FORMAT.read_text().splitlines()[0]
    versions = " and ".join(str(v) for v in schema.READABLE_VERSIONS)
    assert f"versions {versions}" in title, title


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a Markdown page's headings (lower case, punctuation dropped, spaces
    to hyphens)."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_point_to_files_and_headings(page):
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)  # not in code
    links = re.findall(r"\]\(([^)\s]+)\)|src=\"([^\"]+)\"", text)
    broken = []
    for target in (a or b for a, b in links):
        if re.match(r"\w+://", target):
            continue
        path, _, anchor = target.partition("#")
        file = page.parent / path if path else page
        if not file.exists() or (anchor and file.suffix == ".md" and anchor not in anchors(file)):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: links to missing files or headings {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_paths_and_names_in_the_text_exist(page):
    """Backticked repository paths (`tap3d/...`, `tests/...`, `configs/...`, ...) exist, and
    backticked dotted names (`tap3d.stream.ViewStream`) import."""
    text = page.read_text()
    paths = re.findall(r"`((?:tap3d|tests|configs|benchmarks|notebooks|docs)/[\w./-]+)`", text)
    missing = sorted({path for path in paths if not (ROOT / path).exists()})
    assert not missing, f"{page.relative_to(ROOT)} names files that do not exist: {missing}"
    unresolved = []
    for name in sorted(set(re.findall(r"`(tap3d(?:\.\w+)+)`", text))):
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                found = importlib.import_module(".".join(parts[:cut]))
                break
            except ModuleNotFoundError:
                continue
        try:
            for attribute in parts[cut:]:
                found = getattr(found, attribute)
        except AttributeError:
            unresolved.append(name)
    assert not unresolved, f"{page.relative_to(ROOT)} names what does not import: {unresolved}"


def test_no_file_cites_the_teams_private_notes():
    cited = [str(path.relative_to(ROOT)) for pattern in ("tap3d/**/*.py", "tests/**/*.py",
                                                          "benchmarks/*.py", "configs/*.yaml",
                                                          "*.md", "docs/*.md", "Makefile")
             for path in ROOT.glob(pattern)
             if path.name != "test_docs.py" and "DESIGN" + ".md" in path.read_text()]
    assert not cited, f"these files cite a file the repository does not contain: {cited}"
