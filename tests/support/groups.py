"""Tests that share a slow session fixture run on one pytest-xdist worker (loaded by
conftest.py through `pytest_plugins`).

`make unit` runs the suite with `-n auto --dist loadgroup`: tests of one `xdist_group` go to
the same worker. Each test that uses a fixture of SHARED_BY_GROUP gets that fixture's group,
so the session's Prefect server (about 10 s to start) starts once, not once per worker.
Without xdist the marker is inert.
"""

from __future__ import annotations

import pytest

SHARED_BY_GROUP = {"prefect_server": "prefect-server"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's loadgroup reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, group in SHARED_BY_GROUP.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(group))
