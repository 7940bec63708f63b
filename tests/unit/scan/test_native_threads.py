"""No Arrow query plan of shardwatch runs on Arrow's thread pool.

A threaded Acero plan (`Table.group_by`, `Table.join`, an expression `filter`) can release its
last batches on a pool thread after the call has returned. When those batches hold buffers
that numpy owns, the release needs the GIL, and during interpreter exit a thread that asks for
it is ended with a forced unwind through a C++ destructor: the process aborts with
"terminate called without an active exception" after printing a complete result (the core
dump is in docs/exit-134.md, second cause). Plans run on the calling thread never do that.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SRC = Path(__file__).resolve().parents[3] / "src" / "shardwatch"
PLANS = {"group_by", "join", "join_asof"}  # Table methods that build an Acero plan


def _threaded_plans(tree: ast.AST) -> list[int]:
    """Lines of `x.group_by(...)` / `x.join(...)` calls without `use_threads=False`."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in PLANS or isinstance(node.func.value, ast.Constant):
            continue  # "sep".join(...) is a string join
        off = any(
            k.arg == "use_threads" and isinstance(k.value, ast.Constant) and k.value.value is False
            for k in node.keywords
        )
        if not off:
            found.append(node.lineno)
    return found


def test_the_checker_sees_a_threaded_plan() -> None:
    code = "t.group_by('d').aggregate([])\nt.group_by('d', use_threads=False)\n', '.join(x)\n"
    assert _threaded_plans(ast.parse(code)) == [1]


def test_every_arrow_plan_runs_on_the_calling_thread() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.parent.name == "store":  # SQLAlchemy's select().join/group_by, no Arrow
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        offenders += [f"{path.relative_to(SRC)}:{line}" for line in _threaded_plans(tree)]
    assert offenders == []
