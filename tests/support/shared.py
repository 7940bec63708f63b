"""Work done once per test run, not once per pytest-xdist worker: the workers of one run
share the parent of their base temporary folders, and a file lock there makes the first
worker that asks do the work while the others wait for it and then reuse the result."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def shared_root(factory: pytest.TempPathFactory) -> Path:
    """A folder that every worker of this run sees (the run's base temp without xdist)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file `lock` (created if absent) across processes."""
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
