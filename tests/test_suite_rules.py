"""The test suite keeps what the README says of it: no test asserts a duration (speed is in bench/)."""

from __future__ import annotations

import ast
from pathlib import Path

from support import ROOT

CLOCKS = {"perf_counter", "perf_counter_ns", "monotonic", "monotonic_ns", "time", "time_ns", "process_time"}


def _is_clock_call(node: ast.AST) -> bool:
    """``time.perf_counter()``, ``monotonic()`` and the like."""
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
    return name in CLOCKS and not (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
                                   and f.value.id == "datetime")


def timed_assertions(source: str) -> list[int]:
    """Line numbers of asserts that compare an elapsed time: a clock reading minus another, or a name that
    holds a clock reading in a subtraction (``assert time.monotonic() - started < 2``). A deadline that bounds
    a wait for a server to start (``time.monotonic() < deadline``) is a guard against hanging, not a speed
    check, and is not counted."""
    tree = ast.parse(source)
    clock_names = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign) and _is_clock_call(node.value)
                   for t in node.targets if isinstance(t, ast.Name)}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assert):
            continue
        for sub in ast.walk(node.test):
            if isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.Sub):
                sides = (sub.left, sub.right)
                if any(_is_clock_call(s) or (isinstance(s, ast.Name) and s.id in clock_names) for s in sides):
                    found.append(node.lineno)
                    break
    return found


def test_the_rule_catches_the_forms_of_a_timed_assertion() -> None:
    assert timed_assertions("import time\ns = time.perf_counter()\nf()\nassert time.perf_counter() - s < 0.05\n") == [4]
    assert timed_assertions("from time import monotonic\nt0 = monotonic()\nassert (monotonic() - t0) / 5 < 1\n") == [3]
    assert timed_assertions("import time\nd = time.monotonic() + 30\nassert time.monotonic() < d\n") == []
    assert timed_assertions("a = 3\nb = 1\nassert a - b == 2\n") == []


def test_no_test_asserts_a_duration() -> None:
    offenders = [f"{path.relative_to(ROOT)}:{line}" for path in sorted((ROOT / "tests").rglob("*.py"))
                 for line in timed_assertions(path.read_text(encoding="utf-8"))]
    assert offenders == [], ("these assertions check a duration; assert the behaviour instead and print the "
                             f"time from a script in bench/: {offenders}")
