"""The order modules run in, so that `make unit`'s workers finish together (loaded by
conftest.py through `pytest_plugins`).

With `--dist loadfile --no-loadscope-reorder`, pytest-xdist hands out whole modules in
collection order, each to the next free worker. Left to itself it would hand out the modules
with the most tests first, which puts the slowest ones (a journey, a deployment, a flow on a
Prefect server: one or two tests of 20-40 s each) at the end, where one worker runs them
while the others wait. So: modules with integration tests first, fewest tests first (those
are the long end-to-end ones), then the in-process modules, most tests first; ties by path.
The order is a pure function of the collection, the same in every worker.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def _weight(path: Path, items: list[pytest.Item]) -> tuple[int, int, str]:
    integration = any(item.get_closest_marker("integration") for item in items)
    return (0, len(items), str(path)) if integration else (1, -len(items), str(path))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    modules: dict[Path, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.path, []).append(item)
    order = sorted(modules, key=lambda path: _weight(path, modules[path]))
    items[:] = [item for path in order for item in modules[path]]
