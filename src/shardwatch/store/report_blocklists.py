"""The dataset's blocklist results rebuilt from the stored shards: per list the same
BlocklistStats that merging the shards' results gives (scan's total), so `report --json`'s
`total.blocklists` equals scan's key for key, and which version of each list every counted
shard was checked against.

Rows are summed, `entries` is the largest, the versions are counted per shard, and the
matched entries are the DISTINCT entry ids over the latest done versions: an entry two
shards match is counted once. Always read from these small tables (never kept in
store/stored_totals.py); memory grows with the entries matched, as in scan's merge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, select
from sqlalchemy.sql.selectable import CTE

from shardwatch.core.blocklist import BlocklistKind, BlocklistStats
from shardwatch.store import tables as t
from shardwatch.store.errors import ReportError
from shardwatch.store.report_model import ListChecks


@dataclass(frozen=True)
class BlocklistReport:
    """`totals`: per list, the merged result (None: no counted shard was checked against a
    list). `checked`: per counted shard (URI, version), the version of each list it was
    checked against. `lists`: per list, its newest version and the shards behind it."""

    totals: dict[str, BlocklistStats] | None
    checked: dict[tuple[str, int], dict[str, str]]
    lists: dict[str, ListChecks]


def blocklist_report(conn: Connection, latest: CTE, shards: int) -> BlocklistReport:
    """The blocklist results of the versions `latest` lists (`shards` of them). Raises
    ReportError when one list name was checked as two kinds (as the merge would refuse)."""
    sb, sbm, shards_t = t.shard_blocklists.c, t.shard_blocklist_matches.c, t.shards
    per_shard = conn.execute(
        select(latest.c.uri, latest.c.version.label("shard_version"), sb.name, sb.kind)
        .add_columns(sb.version, sb.entries, sb.rows, shards_t.c.finished_at)
        .select_from(t.shard_blocklists)
        .join(latest, latest.c.id == sb.shard_id)
        .join(shards_t, shards_t.c.id == sb.shard_id)
        .order_by(sb.name, latest.c.uri)
    ).all()
    if not per_shard:
        return BlocklistReport(None, {}, {})
    matched: dict[str, set[bytes]] = {}
    for name, entry in conn.execute(
        select(sbm.name, sbm.entry)
        .distinct()
        .select_from(t.shard_blocklist_matches)
        .join(latest, latest.c.id == sbm.shard_id)
    ):
        matched.setdefault(name, set()).add(bytes(entry))

    checked: dict[tuple[str, int], dict[str, str]] = {}
    by_list: dict[str, list[Any]] = {}
    for row in per_shard:
        checked.setdefault((row.uri, row.shard_version), {})[row.name] = row.version
        by_list.setdefault(row.name, []).append(row)
    totals: dict[str, BlocklistStats] = {}
    lists: dict[str, ListChecks] = {}
    for name, rows in sorted(by_list.items()):
        kinds = sorted({r.kind for r in rows})
        if len(kinds) > 1:
            raise ReportError(
                f"blocklist {name!r} was checked as kinds {' and '.join(kinds)}; re-ingest "
                "the shards with one (shardwatch ingest --force)"
            )
        versions: dict[str, int] = {}
        for r in rows:
            versions[r.version] = versions.get(r.version, 0) + 1
        totals[name] = BlocklistStats(
            kind=cast(BlocklistKind, kinds[0]),
            entries=max(int(r.entries) for r in rows),
            rows=sum(int(r.rows) for r in rows),
            matched=frozenset(matched.get(name, ())),
            versions=dict(sorted(versions.items())),
        )
        lists[name] = _checks(rows, shards)
    return BlocklistReport(totals, checked, lists)


def _checks(rows: list[Any], shards: int) -> ListChecks:
    """The newest version (the one the most recently stored shard was checked against) and,
    per other version, the shards checked against it."""
    newest = max(rows, key=lambda r: (r.finished_at is not None, r.finished_at, r.version))
    older: dict[str, list[str]] = {}
    for r in rows:
        if r.version != newest.version:
            older.setdefault(r.version, []).append(r.uri)
    return ListChecks(
        newest=newest.version,
        older={v: tuple(uris) for v, uris in sorted(older.items())},
        unchecked=shards - len(rows),
    )
