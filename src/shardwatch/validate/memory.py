"""Memory handed back to the system between GX runs, so that one group's (or part's) freed
frames do not stay resident under the next one's peak."""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

import pyarrow as pa


def release_memory() -> None:
    """Hand freed memory back to the system: Arrow's pool, and glibc's heap (pandas and
    GX free large arrays there, and glibc keeps them after its mmap threshold has grown)."""
    pa.default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc
        return None


_LIBC = _libc()
