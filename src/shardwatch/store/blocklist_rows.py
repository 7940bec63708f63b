"""Blocklist rows: what one shard version holds of each blocklist checked against it (kind,
list version, entries, matching rows, and the ids of the entries matched), written in the
transaction that stores the shard's other metrics (store/result_writes.py).

Only the fixed-size entry ids are stored (core/blocklist.py), never a URL, id or domain.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from shardwatch.core.blocklist import BLOCKLIST_NAME, ENTRY_ID_BYTES, BlocklistStats
from shardwatch.store import models as t

CHUNK = 10_000  # match rows per INSERT


def write_blocklists(
    s: Session, shard_id: int, blocklists: Mapping[str, BlocklistStats] | None
) -> None:
    """Replace the shard version's per-list results (a forced reprocessing writes them
    again: the old rows and matches go first, so nothing is counted twice).

    A shard is checked against one version of each list: `versions` holds exactly one
    (the report counts the shards from the stored rows). Raises ValueError for anything
    else, a name that is not a slug, or an entry id that is not ENTRY_ID_BYTES long."""
    for table in (t.ShardBlocklistMatch, t.ShardBlocklist):
        s.execute(delete(table).where(table.shard_id == shard_id))
    for name, stats in sorted((blocklists or {}).items()):
        if not BLOCKLIST_NAME.fullmatch(name):
            raise ValueError(f"a blocklist name must match {BLOCKLIST_NAME.pattern}")
        if len(stats.versions) != 1:
            raise ValueError(f"blocklist {name!r}: a shard is checked against one version")
        (version,) = stats.versions
        s.execute(
            insert(t.ShardBlocklist).values(
                shard_id=shard_id,
                name=name,
                kind=stats.kind,
                version=version,
                entries=stats.entries,
                rows=stats.rows,
            )
        )
        entries = sorted(stats.matched)
        if any(len(e) != ENTRY_ID_BYTES for e in entries):
            raise ValueError(f"blocklist {name!r}: entry ids are {ENTRY_ID_BYTES} bytes")
        for start in range(0, len(entries), CHUNK):
            chunk = entries[start : start + CHUNK]
            s.execute(
                insert(t.ShardBlocklistMatch),
                [{"shard_id": shard_id, "name": name, "entry": e} for e in chunk],
            )
