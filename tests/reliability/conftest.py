"""Fixtures of the reliability and hostile-input suite (issue 8; docs/reliability.md).

Every scenario runs on loopback only: the real PostgreSQL, local shard servers, the
Slack-like receiver and aiosmtpd (tests/loopback.py). Three things are shared:

- `canaries` / `leaks` (leaks.py): the secrets scenario. Scenarios run with canary secrets
  and hand their outputs to `leaks`; test_secrets.py runs last and checks the whole session.
- `figure(scenario, what, value)`: the figures docs/reliability.md quotes. They are printed
  in pytest's summary and appended to build/reliability-figures.jsonl.
- the `slow` marker: opt-in tests (the 500-shard soak), run with SHARDWATCH_SLOW=1.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from leaks import CANARIES, FIGURES, HERE, SESSION, SESSION_LOG, Canaries, LeakWatch


def pytest_configure(config: pytest.Config) -> None:
    FIGURES.parent.mkdir(exist_ok=True)
    FIGURES.write_text("")
    SESSION_LOG.write_text("")
    handler = logging.FileHandler(SESSION_LOG, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # DEBUG everywhere: a secret must not leak even there...
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)  # ...but not every statement


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """test_secrets.py goes last (it checks what the others left); slow tests are opt-in;
    every test here is an integration test (real servers, processes and faults)."""
    for item in items:
        if item.path.parent == HERE:
            item.add_marker(pytest.mark.integration)
    SESSION.ran.update(i.path.stem.removeprefix("test_") for i in items if i.path.parent == HERE)
    last = [i for i in items if i.path.name == "test_secrets.py"]
    items[:] = [i for i in items if i.path.name != "test_secrets.py"] + last
    if os.environ.get("SHARDWATCH_SLOW") != "1":
        skip = pytest.mark.skip(reason="opt-in: set SHARDWATCH_SLOW=1 to run the slow tests")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not SESSION.figures:
        return
    terminalreporter.section("reliability figures (docs/reliability.md)")
    for scenario, what, value in SESSION.figures:
        terminalreporter.write_line(f"{scenario:<12} {what}: {value}")


@pytest.fixture
def figure() -> Callable[[str, str, object], None]:
    """Record one figure of a scenario, e.g. figure("4 network", "seconds to give up", 2.1)."""

    def record(scenario: str, what: str, value: object) -> None:
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        SESSION.figures.append((scenario, what, shown))
        with FIGURES.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"scenario": scenario, "what": what, "value": shown}) + "\n")
        print(f"FIGURE {scenario}: {what}: {shown}")

    return record


@pytest.fixture(scope="session")
def canaries() -> Canaries:
    return CANARIES


@pytest.fixture
def leaks(request: pytest.FixtureRequest) -> Iterator[LeakWatch]:
    """The session's leak watch, attributed to the requesting test's scenario (its file)."""
    watch = SESSION.watch
    watch.scenario = request.path.stem.removeprefix("test_")
    yield watch
    watch.scenario = "?"
