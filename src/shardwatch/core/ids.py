"""Ids: the claim owner that names this process in leases (ingest claims, relay leases)."""

from __future__ import annotations

import os
import socket
import uuid


def worker_id() -> str:
    """A unique claim owner for this process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
