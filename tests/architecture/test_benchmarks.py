"""The benchmark scripts (benchmarks/*.py): a child process runs a named function of its script,
never a program held in a string (no ``eval``/``exec``/``compile``, no ``python -c``), and every
clock read goes through the one timer, ``benchmarks/timing.py`` (docs/benchmarks.md)."""

from __future__ import annotations

import ast
import importlib.util
import pathlib
import sys

import pytest

from helpers import ROOT

BENCHMARKS = pathlib.Path(ROOT) / "benchmarks"
TIMER = "timing.py"
#: The ``time`` functions that read a clock (``time.sleep`` does not).
CLOCKS = {"perf_counter", "perf_counter_ns", "time", "time_ns", "monotonic", "monotonic_ns",
          "process_time", "process_time_ns", "thread_time", "thread_time_ns"}
#: Clock reads allowed outside the timer, (file, function): gpu_check.py keeps the GPU check's
#: steps within ``--budget`` by a monotonic deadline (and records each step's wall time beside
#: it); it times no code itself, the benchmarks it runs time theirs through timing.py.
ALLOWED_CLOCKS = {("gpu_check.py", "monotonic")}


def _scripts() -> list[pathlib.Path]:
    scripts = sorted(BENCHMARKS.glob("*.py"))
    assert len(scripts) > 5 and (BENCHMARKS / TIMER) in scripts
    return scripts


def string_programs(source: str) -> list[str]:
    """``eval``/``exec``/``compile`` calls and ``"-c"`` arguments (a Python program in a string
    for a child process) in ``source``, as ``line: what``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else \
                func.attr if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                and func.value.id == "builtins" else None
            if name in ("eval", "exec", "compile"):
                found.append(f"{node.lineno}: {name}(...)")
        elif isinstance(node, ast.Constant) and node.value == "-c":
            found.append(f'{node.lineno}: "-c" (a program in a string)')
    return found


def clock_reads(source: str) -> list[tuple[int, str]]:
    """Clock reads in ``source``: ``time.<clock>`` (under any name ``time`` is imported as),
    ``from time import <clock>``, and any use of ``timeit`` or ``torch.utils.benchmark``;
    ``(line, clock)`` each."""
    tree = ast.parse(source)
    aliases = {"time"}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "time":
                    aliases.add(alias.asname or "time")
                if alias.name == "timeit" or alias.name.startswith("torch.utils.benchmark"):
                    found.append((node.lineno, alias.name))
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = {alias.name for alias in node.names}
            if module == "time":
                found += [(node.lineno, name) for name in sorted(names & CLOCKS)]
            if module == "timeit" or module.startswith("torch.utils.benchmark") or \
                    (module == "torch.utils" and "benchmark" in names):
                found.append((node.lineno, module))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                node.value.id in aliases and node.attr in CLOCKS:
            found.append((node.lineno, node.attr))
        elif isinstance(node, ast.Attribute) and node.attr == "benchmark" and \
                isinstance(node.value, ast.Attribute) and node.value.attr == "utils":
            found.append((node.lineno, "torch.utils.benchmark"))
    return sorted(set(found))


def test_no_benchmark_runs_a_program_from_a_string():
    found = {path.name: string_programs(path.read_text()) for path in _scripts()}
    found = {name: hits for name, hits in found.items() if hits}
    assert not found, f"run a named function in the child instead: {found}"


def test_only_the_timer_reads_a_clock():
    found = {}
    for path in _scripts():
        if path.name == TIMER:
            continue
        hits = [f"{line}: {clock}" for line, clock in clock_reads(path.read_text())
                if (path.name, clock) not in ALLOWED_CLOCKS]
        if hits:
            found[path.name] = hits
    assert not found, f"time through benchmarks/{TIMER}'s timed(): {found}"
    assert clock_reads((BENCHMARKS / TIMER).read_text()) != []  # the checks see the timer's


@pytest.mark.parametrize("source, expected", [
    ("x = eval(sys.argv[2])", ["1: eval(...)"]),
    ("import builtins\nbuiltins.exec('print(1)')", ["2: exec(...)"]),
    ("subprocess.run([sys.executable, '-c', CHILD])", ['1: "-c" (a program in a string)']),
    ("model.eval()\nmodel.train()", []),  # torch's eval mode is not eval
])
def test_the_string_program_check_finds_them(source, expected):
    assert string_programs(source) == expected


@pytest.mark.parametrize("source, expected", [
    ("import time\nt = time.perf_counter()", [(2, "perf_counter")]),
    ("import time as clock\nt = clock.time()", [(2, "time")]),
    ("from time import monotonic, sleep", [(1, "monotonic")]),
    ("import timeit", [(1, "timeit")]),
    ("from torch.utils import benchmark", [(1, "torch.utils")]),
    ("import torch\nt = torch.utils.benchmark.Timer('f()')", [(2, "torch.utils.benchmark")]),
    ("import time\ntime.sleep(0.1)", []),
])
def test_the_clock_check_finds_them(source, expected):
    assert clock_reads(source) == expected


def test_the_timer(monkeypatch):
    """``timed``: warm-up calls untimed, ``repeats`` samples of ``number`` calls each, seconds
    per call, the last call's result."""
    spec = importlib.util.spec_from_file_location("benchmark_timing", BENCHMARKS / TIMER)
    timing = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, timing)  # for its dataclass
    spec.loader.exec_module(timing)
    calls = []
    result = timing.timed(lambda: calls.append(1) or len(calls), repeats=3, number=4, warmup=2)
    assert len(calls) == 2 + 3 * 4 and result.result == 14
    assert (result.repeats, result.number) == (3, 4)
    assert 0 <= result.min <= result.median <= result.max
    synced = []
    one = timing.timed(lambda: "done", sync=lambda: synced.append(1))
    assert one.result == "done" and one.min == one.max and len(synced) == 2
    with pytest.raises(ValueError):
        timing.timed(lambda: None, repeats=0)
