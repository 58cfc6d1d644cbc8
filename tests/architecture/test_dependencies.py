"""The dependencies are declared once: environment.yml's pip section lists every requirement of
pyproject.toml's ``[project].dependencies`` with the same specifiers and markers, and nothing that
pyproject.toml does not declare (its extras count, at their specifiers)."""

from __future__ import annotations

import os
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from helpers import ROOT

#: Lines of the pip section that are pip options, not requirements: the package itself,
#: editable (its dependencies are pyproject.toml's).
PIP_OPTIONS = {"-e ."}
#: Requirements the environment may list that pyproject.toml does not declare, with why. Empty:
#: robosuite, which the Makefile installs apart (``--no-deps``, for its meshes only), is not in
#: environment.yml, as conda's pip section cannot install one package without its dependencies.
EXTRA_ALLOWED: dict[str, str] = {}


def _key(requirement: Requirement) -> str:
    return canonicalize_name(requirement.name)


def _same(a: Requirement, b: Requirement) -> bool:
    """The same specifiers (as sets), extras, URL and environment marker."""
    return (a.specifier == b.specifier and a.extras == b.extras and a.url == b.url
            and str(a.marker or "") == str(b.marker or ""))


def differences(pyproject: str, environment: str) -> list[str]:
    """What environment.yml misses of, or states differently from, pyproject.toml, one line
    each; empty when they agree."""
    with open(pyproject, "rb") as f:
        project = tomllib.load(f)["project"]
    with open(environment) as f:
        env = yaml.safe_load(f)
    required = {_key(r): r for r in map(Requirement, project["dependencies"])}
    assert len(required) == len(project["dependencies"]), "a name twice in pyproject.toml"
    extras = {_key(r): r for group in project.get("optional-dependencies", {}).values()
              for r in map(Requirement, group)}
    sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    problems = [] if len(sections) == 1 else [f"{len(sections)} pip sections, not one"]
    listed = {}
    for line in (sections[0] if sections else []):
        if line in PIP_OPTIONS:
            continue
        requirement = Requirement(line)
        if _key(requirement) in listed:
            problems.append(f"listed twice: {line}")
        listed[_key(requirement)] = requirement
    pairs = [(listed.get(key), wanted, f"missing from environment.yml: {wanted}",
              "pyproject.toml") for key, wanted in required.items()]
    pairs += [(have, extras.get(key), f"not in pyproject.toml: {have}", "pyproject.toml's extra")
              for key, have in listed.items() if key not in required and key not in EXTRA_ALLOWED]
    for have, declared, absent, where in pairs:
        if have is None or declared is None:
            problems.append(absent)
        elif not _same(have, declared):
            problems.append(f"different: environment.yml {have}, {where} {declared}")
    pythons = [d.split("=", 1)[1] for d in env["dependencies"]
               if isinstance(d, str) and d.split("=")[0].strip() == "python" and "=" in d]
    for version in pythons:
        if Version(version) not in SpecifierSet(project["requires-python"]):
            problems.append(f"python={version} outside requires-python "
                            f"{project['requires-python']}")
    return problems


def test_environment_lists_the_project_dependencies():
    problems = differences(os.path.join(ROOT, "pyproject.toml"),
                           os.path.join(ROOT, "environment.yml"))
    assert not problems, "environment.yml against pyproject.toml:\n" + "\n".join(problems)


def test_the_check_names_each_difference(tmp_path):
    """A copy of environment.yml without numpy, with another torch, with a package pyproject.toml
    lacks and with pytest at another specifier: each is one line of the failure."""
    text = open(os.path.join(ROOT, "environment.yml")).read()
    for old, new in (("      - numpy>=1.26\n", ""), ("torch==2.12.*", "torch==2.11.*"),
                     ("      - pytest>=8\n", "      - pytest>=7\n      - requests>=2\n")):
        assert old in text
        text = text.replace(old, new)
    (tmp_path / "environment.yml").write_text(text)
    problems = differences(os.path.join(ROOT, "pyproject.toml"),
                           str(tmp_path / "environment.yml"))
    assert sorted(problems) == sorted([
        "missing from environment.yml: numpy>=1.26",
        "different: environment.yml torch==2.11.*, pyproject.toml torch==2.12.*",
        "not in pyproject.toml: requests>=2",
        "different: environment.yml pytest>=7, pyproject.toml's extra pytest>=8"]), problems
