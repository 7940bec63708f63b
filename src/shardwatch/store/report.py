"""Report: a dataset's total, summed in SQL over the latest done version of each shard URI."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from sqlalchemy import Engine, select

from shardwatch.core.profiles import BUILTIN_PROFILES
from shardwatch.store import tables as t
from shardwatch.store.boundary import translated
from shardwatch.store.errors import UnknownDataset
from shardwatch.store.report_blocklists import blocklist_report
from shardwatch.store.report_domains import sketch_of
from shardwatch.store.report_model import DatasetReport, ProfileResolver
from shardwatch.store.snapshots import latest_done, read_snapshot
from shardwatch.store.stored_totals import kept_total, summed
from shardwatch.store.totals import build_report

if TYPE_CHECKING:  # the writers (and the alert rules they judge) are not needed to read
    from shardwatch.store.repository import ResultStore


@translated
def dataset_report(
    source: ResultStore | Engine,
    dataset: str,
    *,
    profiles: ProfileResolver | None = None,
) -> DatasetReport:
    """Sum the latest done version of every shard URI of `dataset`, in SQL.

    `report.total.to_dict()` equals `shardwatch scan --json`'s total over the same files
    (float sums up to rounding), blocklists included; each counted shard says which version
    of each list it was checked against. `profiles` resolves the stored profile names, to
    put the NSFW tag labels in their declared order (default: the built-in profiles; unknown
    labels are sorted). Raises UnknownDataset, or ReportError when the shards cannot be
    added up (different similarity thresholds or term lists, as `ShardMetrics.merge` would
    refuse).
    """
    engine = source if isinstance(source, Engine) else source.engine
    resolve = profiles or BUILTIN_PROFILES.get
    with read_snapshot(engine) as conn:
        dataset_id = conn.scalar(select(t.datasets.c.id).where(t.datasets.c.name == dataset))
        if dataset_id is None:
            known = conn.scalars(select(t.datasets.c.name).order_by(t.datasets.c.name)).all()
            raise UnknownDataset(dataset, known)
        latest = latest_done(dataset_id)
        # The sums the last pass kept, if they still cover exactly these versions (same
        # snapshot); else the stored rows are summed here (store/stored_totals.py).
        sums = kept_total(conn, dataset_id, latest) or summed(conn, latest)
        built = build_report(conn, dataset, dataset_id, latest, resolve, sums.aggregates)
        # The blocklists are read from their small tables every time (never kept).
        blocks = blocklist_report(conn, latest, built.total.shards)
        total = replace(built.total, domains=sketch_of(sums.domains), blocklists=blocks.totals)
        shards = tuple(
            replace(e, blocklists=blocks.checked.get((e.uri, e.version), {})) for e in built.shards
        )
        return replace(built, total=total, shards=shards, blocklists=blocks.lists)
