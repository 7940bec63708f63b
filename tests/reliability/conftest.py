"""Fixtures of the reliability and hostile-input suite (issue 8; docs/reliability.md).

Every scenario runs on loopback only: the real PostgreSQL, local shard servers, the
Slack-like receiver and aiosmtpd (tests/support/loopback.py). Three things are shared:

- `canaries` / `leaks` (tests/support/reliability/leaks.py): the secrets scenario. Scenarios
  run with canary secrets and hand their outputs to `leaks`. A test that takes `leaks` runs
  with the root logger at DEBUG into its own file (`debug_log`), searched for the canaries
  when the test ends; a scenario module whose tests passed must have searched some of their
  outputs.
- `figure(scenario, what, value)`: the figures docs/reliability.md quotes. They are printed
  in pytest's summary and appended to build/reliability-figures.jsonl.
- the `slow` marker: opt-in tests (the 500-shard soak), run with SHARDWATCH_SLOW=1.

Every test here also carries the `reliability` marker (`-m reliability` selects the suite);
each module marks its tests `unit` or `integration` itself (tests/support/markers.py).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.reliability.leaks import (
    CANARIES,
    FIGURES,
    SESSION,
    SUITE,
    Canaries,
    LeakWatch,
    debug_logging,
)

CALL_PASSED = pytest.StashKey[bool]()
PASSED_WITH_LEAKS: Counter[str] = Counter()  # scenario -> its passed tests that took `leaks`


def pytest_configure(config: pytest.Config) -> None:
    """A new figures file per run: by the controlling process only (pytest-xdist's workers
    append to it), and kept when SHARDWATCH_FIGURES_APPEND=1 (the second, `exclusive` part
    of `make unit`)."""
    FIGURES.parent.mkdir(exist_ok=True)
    worker = hasattr(config, "workerinput")
    if not worker and os.environ.get("SHARDWATCH_FIGURES_APPEND") != "1":
        FIGURES.write_text("")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test here carries the `reliability` marker; slow tests are opt-in."""
    for item in items:
        if item.path.parent == SUITE:
            item.add_marker(pytest.mark.reliability)
    if os.environ.get("SHARDWATCH_SLOW") != "1":
        skip = pytest.mark.skip(reason="opt-in: set SHARDWATCH_SLOW=1 to run the slow tests")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The figures of this run, read back from the file every worker appended to."""
    lines = FIGURES.read_text(encoding="utf-8").splitlines() if FIGURES.exists() else []
    if not lines:
        return
    terminalreporter.section("reliability figures (docs/reliability.md)")
    for line in lines:
        row = json.loads(line)
        terminalreporter.write_line(f"{row['scenario']:<12} {row['what']}: {row['value']}")


@pytest.fixture
def figure() -> Callable[[str, str, object], None]:
    """Record one figure of a scenario, e.g. figure("4 network", "seconds to give up", 2.1)."""

    def record(scenario: str, what: str, value: object) -> None:
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        with FIGURES.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"scenario": scenario, "what": what, "value": shown}) + "\n")
        print(f"FIGURE {scenario}: {what}: {shown}")

    return record


@pytest.fixture(scope="session")
def canaries() -> Canaries:
    return CANARIES


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[CALL_PASSED] = report.passed
    return report


@pytest.fixture
def debug_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """This test's log: the root logger at DEBUG into a file, restored when the test ends.
    The file is in a folder of its own, not in the test's `tmp_path` (whose files some
    scenarios count)."""
    with debug_logging(tmp_path_factory.mktemp("debug-log") / "debug.log") as path:
        yield path


@pytest.fixture
def leaks(request: pytest.FixtureRequest, debug_log: Path) -> Iterator[LeakWatch]:
    """The session's leak watch, attributed to the requesting test's scenario (its file).
    When the test ends, its DEBUG log is searched too."""
    watch = SESSION.watch
    watch.scenario = request.path.stem.removeprefix("test_")
    yield watch
    watch.debug_log(debug_log)
    if request.node.stash.get(CALL_PASSED, False):
        PASSED_WITH_LEAKS[watch.scenario] += 1
    watch.scenario = "?"


@pytest.fixture(scope="module", autouse=True)
def scenario_searched_its_outputs(request: pytest.FixtureRequest) -> Iterator[None]:
    """When a scenario module ends: if its tests that took `leaks` passed, they searched
    some of their outputs (logs, tables, files, messages), not only their DEBUG logs."""
    yield
    scenario = request.path.stem.removeprefix("test_")
    if PASSED_WITH_LEAKS[scenario]:
        assert SESSION.watch.checked[scenario] > 0, (
            f"scenario {scenario}: its tests searched none of their outputs for the canaries"
        )
