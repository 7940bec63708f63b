"""Scenario 9: the canary secrets that ran through every other scenario of this session
appear in none of their outputs, and in no log record (DEBUG) of the whole session.

This module runs last (conftest.py). Each scenario searched its own logs, database tables,
GX files, Data Docs pages, artifacts and CLI output with `leaks` as it went; here the counts
are checked: every scenario module that ran searched something, and nothing was hit."""

from __future__ import annotations

import logging
from typing import Any

from leaks import SESSION, SESSION_LOG


def test_every_scenario_searched_its_outputs_and_found_no_canary(figure: Any) -> None:
    watch = SESSION.watch
    scenarios = SESSION.ran - {"secrets"}
    unchecked = sorted(s for s in scenarios if watch.checked[s] == 0)
    assert not unchecked, f"scenarios that never searched their outputs: {unchecked}"
    assert watch.hits == []
    for scenario in sorted(scenarios):
        figure("9 secrets", f"items searched after {scenario}", watch.checked[scenario])
    figure("9 secrets", "canary hits", len(watch.hits))


def test_the_session_debug_log_holds_no_canary(figure: Any, canaries: Any) -> None:
    logging.getLogger("shardwatch.reliability").debug("session log probe")  # it is written
    log = SESSION_LOG.read_bytes()
    assert b"session log probe" in log
    leaked = [c for c in canaries.values if c.encode() in log]
    figure("9 secrets", "session DEBUG log (bytes)", len(log))
    assert leaked == [], "a canary secret reached the session's DEBUG log"
