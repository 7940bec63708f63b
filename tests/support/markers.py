"""The marker rule, checked at collection (loaded by conftest.py through `pytest_plugins`).

Every test carries exactly one of `unit` and `integration` (tests/README.md), so that
`-m unit` and `-m integration` split the suite: a file holding both kinds marks each test,
not its module. `unit` runs in
the pytest process and reaches no server, process or PostgreSQL; `integration` runs the CLI,
other processes, loopback servers, PostgreSQL, Prefect or Chromium. A `unit` test that asks
for a fixture which starts a server or reaches PostgreSQL is refused too. Collection fails
with a usage error naming every test that breaks the rule.

`make unit` runs the suite on every core with pytest-xdist, then the tests marked
`exclusive` (they stop or restart the shared PostgreSQL or change its cluster-wide
settings) alone (tests/README.md).
"""

from __future__ import annotations

import pytest

KINDS = ("unit", "integration")
SERVER_FIXTURES = frozenset(
    {
        "postgres_server",
        "postgres_url",
        "fresh_postgres_database",
        "fresh_postgres_url",
        "slack",
        "smtp",
        "prefect_server",
        "installed",
    }
)


# `make unit` runs the `exclusive` tests from this folder only (it collects nothing else).
EXCLUSIVE_HOME = "tests/reliability"


def marker_problem(item: pytest.Item) -> str | None:
    """Why `item` breaks the marker rule, or None."""
    if any(item.iter_markers("exclusive")) and not item.nodeid.startswith(EXCLUSIVE_HOME + "/"):
        return f"marked exclusive outside {EXCLUSIVE_HOME}/ (where `make unit` runs them)"
    kinds = [kind for kind in KINDS if any(item.iter_markers(kind))]
    if len(kinds) != 1:
        return "marked " + (" and ".join(kinds) if kinds else "neither unit nor integration")
    if kinds == ["unit"]:
        used = sorted(SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())))
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("database_url", "sqlite") != "sqlite":
            used.append("database_url[postgresql]")
        if used:
            return "marked unit but uses " + ", ".join(used)
    return None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    bad = [f"{item.nodeid}: {why}" for item in items if (why := marker_problem(item))]
    if bad:
        raise pytest.UsageError(
            "every test must carry exactly one of the markers unit, integration "
            f"(tests/README.md); {len(bad)} do not:\n  " + "\n  ".join(bad)
        )
