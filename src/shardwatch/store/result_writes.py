"""Result writes: a claimed shard's metrics, validation and alert state committed once (or its
failure recorded), exactly once even when the connection drops around the COMMIT."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shardwatch.core.alerts import AlertPlan
from shardwatch.core.metrics import ShardMetrics
from shardwatch.core.names import shown
from shardwatch.core.schema import SchemaDrift
from shardwatch.core.validation import ShardValidation
from shardwatch.store import models as t
from shardwatch.store.alert_state import record_alerts, record_dataset_alerts, record_failure
from shardwatch.store.blocklist_rows import write_blocklists
from shardwatch.store.boundary import translated
from shardwatch.store.claims import Claims
from shardwatch.store.database import is_sqlite, transaction
from shardwatch.store.failures import end_shard
from shardwatch.store.retry import retry_on_disconnect
from shardwatch.store.shard_versions import IdenticalContent
from shardwatch.store.snapshots import latest_done
from shardwatch.store.stored_totals import keep_total, kept_total, same_sums, summed
from shardwatch.store.twins import current_twin, lock_dataset

BeforeCommit = Callable[[Session], None]


class ResultWrites(Claims):
    """ResultStore's result writes (a mixin over the claims: it checks the lease it holds)."""

    @translated
    def complete(
        self,
        shard_id: int,
        owner: str,
        metrics: ShardMetrics,
        *,
        profile: str,
        lexicon: str,
        run_id: int | None = None,
        validation: ShardValidation | None = None,
        alerts: AlertPlan | None = None,
        before_commit: BeforeCommit | None = None,
        schema_drift: SchemaDrift | None = None,
    ) -> bool:
        """Write a shard's metrics, term metrics, validation checks and status in ONE
        transaction.

        With `alerts`, the plan's rules are judged on the shard and on its dataset's latest
        versions, and alert state and outbox notices are written in the same transaction.
        `schema_drift` (how the columns differ from the profile) is stored with the version
        and judged by `schema_drift` rules (None: not checked, not judged).
        Returns False (writing nothing) if the lease was lost to another worker. Raises
        IdenticalContent, having quarantined the shard and stored nothing else, when a current
        done version of another URI of the dataset holds the same content (store/twins.py).
        `before_commit` runs last inside the transaction (tests use it to die there).

        If the connection drops, the transaction runs again on a new one, unless it had
        committed after all: each attempt stamps its own `finished_at`, and a retry that finds
        the shard done with one of those stamps returns True without writing anything.
        """
        stamps: list[datetime] = []

        def attempt(retry: bool) -> bool:
            stamps.append(t.utcnow())
            written = self._write_results(
                shard_id,
                owner,
                metrics,
                profile=profile,
                lexicon=lexicon,
                run_id=run_id,
                validation=validation,
                alerts=alerts,
                before_commit=before_commit,
                schema_drift=schema_drift,
                finished_at=stamps[-1],
            )
            return written or (retry and self._finished_at(shard_id, stamps))

        stored = retry_on_disconnect(attempt)
        if stored:
            with self.sessions() as s:
                status, reason = s.execute(
                    select(t.Shard.status, t.Shard.reason).where(t.Shard.id == shard_id)
                ).one()
            if status == "quarantined":
                raise IdenticalContent(reason or "identical content")
        return stored

    def _finished_at(self, shard_id: int, stamps: list[datetime]) -> bool:
        """Whether one of this call's attempts committed (done, or quarantined as a twin)."""
        query = select(t.Shard.id).where(
            t.Shard.id == shard_id,
            t.Shard.status.in_(("done", "quarantined")),
            t.Shard.finished_at.in_(stamps),
        )
        with self.sessions() as s:
            return s.scalar(query) is not None

    def _write_results(
        self,
        shard_id: int,
        owner: str,
        metrics: ShardMetrics,
        *,
        finished_at: datetime,
        profile: str,
        lexicon: str,
        run_id: int | None,
        validation: ShardValidation | None,
        alerts: AlertPlan | None,
        before_commit: BeforeCommit | None,
        schema_drift: SchemaDrift | None,
    ) -> bool:
        twin: str | None = None
        with transaction(self.sessions) as s:
            shard = s.get(t.Shard, shard_id)
            if shard is None:
                return False
            lock_dataset(s, shard.dataset_id, sqlite=is_sqlite(self.engine))  # store/twins.py
            if not self._holds_lease(s, shard_id, owner):
                return False
            twin = current_twin(s, shard.dataset_id, shard.uri, shard.content_sha256)
            if twin is not None:  # counted once: this copy is quarantined, nothing stored
                s.execute(
                    update(t.Shard)
                    .where(t.Shard.id == shard_id)
                    .values(
                        status="quarantined",
                        reason=f"identical content to {shown(twin)}",
                        lease_owner=None,
                        lease_expires_at=None,
                        finished_at=finished_at,
                        run_id=run_id,
                    )
                )
                if alerts is not None and alerts.rules:
                    reason = f"identical content to {shown(twin)}"
                    record_failure(s, shard_id, "quarantined", reason, alerts, run_id)
                return True
            for table in (
                t.ShardDomain,
                t.TermTagCount,
                t.TermMetricsRow,
                t.SimilarityBin,
                t.ShardTagCount,
                t.ShardMetricsRow,
                t.ValidationResult,
            ):
                s.query(table).filter_by(shard_id=shard_id).delete()  # forced reprocessing
            s.add_all(_metric_rows(shard_id, metrics, profile, lexicon))
            write_blocklists(s, shard_id, metrics.blocklists)  # replaces the version's own
            if validation is not None:
                s.add_all(_validation_rows(shard_id, validation))
            s.execute(
                update(t.Shard)
                .where(t.Shard.id == shard_id)
                .values(
                    status="done",
                    reason=None,
                    lease_owner=None,
                    lease_expires_at=None,
                    finished_at=finished_at,
                    run_id=run_id,
                    docs_page=validation.docs_page if validation is not None else None,
                    schema_drift=schema_drift.to_dict() if schema_drift else None,
                )
            )
            if alerts is not None and alerts.rules:
                s.flush()
                record_alerts(
                    s, shard_id, metrics, validation, alerts, run_id, schema_drift=schema_drift
                )
            if before_commit is not None:
                s.flush()
                before_commit(s)
        return True

    @translated
    def judge_dataset(
        self, dataset: str, alerts: AlertPlan | None, *, run_id: int | None = None
    ) -> bool:
        """Judge the plan's dataset-level rules once on `dataset`'s exact total over its
        latest done versions, in one transaction under the dataset lock (store/twins.py):
        no result commit of the dataset interleaves, and the judge sees every committed
        one. A pass calls it once after its shards (`complete` judges the shard-level rules
        only, so a commit's cost does not grow with the dataset). Runs again if its
        connection drops: judging the same total twice changes nothing the second time.
        The sums it judges are kept for the report (store/stored_totals.py), with or
        without `alerts`. False when there was nothing to judge (no such dataset, no done
        shard, no plan)."""

        def attempt(_retry: bool) -> bool:
            with transaction(self.sessions) as s:
                ds = self._locked_dataset(s, dataset)
                if ds is None:
                    return False
                sums = keep_total(s.connection(), ds)  # the report reads them
                if alerts is None:
                    return False
                return record_dataset_alerts(s, ds, alerts, run_id, sums.aggregates)

        return retry_on_disconnect(attempt)

    def _locked_dataset(self, s: Session, dataset: str) -> int | None:
        """The id of the dataset named `dataset`, its lock taken in `s` (store/twins.py);
        None for a dataset not stored."""
        ds = s.scalar(select(t.Dataset.id).where(t.Dataset.name == dataset))
        if ds is not None:
            lock_dataset(s, ds, sqlite=is_sqlite(self.engine))
        return ds

    @translated
    def verify_total(self, dataset: str, *, rebuild: bool = False) -> bool:
        """Whether `dataset`'s kept sums (store/stored_totals.py) are current and equal the
        sums of its stored rows; with `rebuild`, keep freshly computed ones whatever they
        were (under the dataset lock). False for a dataset not stored."""

        def attempt(_retry: bool) -> bool:
            with transaction(self.sessions) as s:
                ds = self._locked_dataset(s, dataset)
                if ds is None:
                    return False
                conn = s.connection()
                latest = latest_done(ds)
                kept = kept_total(conn, ds, latest)
                ok = kept is not None and same_sums(kept, summed(conn, latest))
                if rebuild:
                    keep_total(conn, ds)
                return ok

        return retry_on_disconnect(attempt)

    @translated
    def fail(
        self,
        shard_id: int,
        owner: str,
        reason: str,
        *,
        quarantine: bool = False,
        max_attempts: int | None = None,
        alerts: AlertPlan | None = None,
        run_id: int | None = None,
    ) -> tuple[str, str]:
        """Record why a shard could not be processed (only by the lease holder; runs again if
        its connection drops: a second run finds the lease released and changes nothing).

        The failure joins the version's `history`. A failure once the version has been tried
        `max_attempts` times quarantines it ("retry budget spent"). With `alerts`, the
        `shard_failed` rules are judged in the same transaction. Returns the status and
        reason recorded."""
        ended: list[tuple[str, str]] = []

        def attempt(_retry: bool) -> None:
            ended.append(
                self._fail(shard_id, owner, reason, quarantine, max_attempts, alerts, run_id)
            )

        retry_on_disconnect(attempt)
        return ended[0]

    def _fail(
        self,
        shard_id: int,
        owner: str,
        reason: str,
        quarantine: bool,
        max_attempts: int | None,
        alerts: AlertPlan | None,
        run_id: int | None,
    ) -> tuple[str, str]:
        with transaction(self.sessions) as s:
            ended = end_shard(s, shard_id, owner, reason, quarantine, max_attempts)
            if ended is None:  # the lease was lost (or this is a retry of a committed fail)
                return ("quarantined" if quarantine else "failed"), reason
            if alerts is not None and alerts.rules:
                record_failure(s, shard_id, *ended, alerts, run_id)
        return ended


def _validation_rows(shard_id: int, v: ShardValidation) -> list[t.ValidationResult]:
    return [
        t.ValidationResult(
            shard_id=shard_id,
            suite=v.suite,
            position=c.position,
            expectation=c.expectation,
            column=c.column,
            condition=c.condition,
            success=None if c.status == "errored" else c.status == "passed",
            errored=c.status == "errored",
            error_message=c.reason,
            observed_value=c.observed,
            threshold=c.threshold,
        )
        for c in v.checks
    ]


def _metric_rows(shard_id: int, m: ShardMetrics, profile: str, lexicon: str) -> list[t.Base]:
    sim = m.similarity
    dom = m.domains
    rows: list[t.Base] = [
        t.ShardMetricsRow(
            shard_id=shard_id,
            profile=profile,
            lexicon=lexicon,
            rows=m.rows,
            keyword_nsfw_rows=m.keyword_nsfw_rows,
            paper_keyword_nsfw_rows=m.paper_keyword_nsfw_rows,
            has_nsfw_tag=m.nsfw_flag_counts is not None,
            has_terms=m.terms is not None,
            similarity_threshold=sim.threshold if sim else None,
            similarity_count=sim.count if sim else None,
            similarity_null=sim.null if sim else None,
            similarity_below=sim.below_threshold if sim else None,
            similarity_min=sim.min if sim else None,
            similarity_max=sim.max if sim else None,
            similarity_sum=sim.sum if sim else None,
            hist_underflow=sim.histogram.underflow if sim else None,
            hist_overflow=sim.histogram.overflow if sim else None,
            duplicate_ids=m.duplicates.get("id"),
            duplicate_urls=m.duplicates.get("url"),
            unsafe_rows=m.unsafe_rows,
            keyword_unsafe_rows=m.keyword_unsafe_rows,
            domain_k=dom.k if dom else None,
            domain_floor_rows=dom.floor_rows if dom else None,
            domain_floor_keyword=dom.floor_keyword if dom else None,
            domain_floor_tag=dom.floor_tag if dom else None,
            domain_rest_rows=dom.rest_rows if dom else None,
            domain_rest_keyword=dom.rest_keyword if dom else None,
            domain_rest_tag=dom.rest_tag if dom else None,
            nulls=dict(m.nulls),
            unavailable=m.unavailable,
            notes=list(m.notes),
        )
    ]
    by_tag, unsafe = m.keyword_nsfw_by_tag, m.unsafe_by_tag
    for label, count in (m.nsfw_flag_counts or {}).items():
        rows.append(
            t.ShardTagCount(
                shard_id=shard_id,
                label=label,
                count=count,
                keyword_nsfw=None if by_tag is None else by_tag.get(label, 0),
                unsafe=None if unsafe is None else unsafe.get(label, 0),
            )
        )
    if dom is not None:
        rows += [
            t.ShardDomain(
                shard_id=shard_id,
                domain=domain,
                rows=stat.rows,
                keyword_nsfw=stat.keyword_nsfw,
                tag_nsfw=stat.tag_nsfw,
            )
            for domain, stat in dom.top.items()
        ]
    if sim is not None:
        rows += [
            t.SimilarityBin(shard_id=shard_id, bin=i, count=c)
            for i, c in enumerate(sim.histogram.counts)
            if c
        ]
    for position, (term, stats) in enumerate((m.terms or {}).items()):
        rows.append(
            t.TermMetricsRow(
                shard_id=shard_id,
                lexicon=lexicon,
                term=term,
                position=position,
                mode=stats.mode,
                matches=stats.matches,
                keyword_nsfw=stats.keyword_nsfw,
                substring_matches=stats.substring_matches,
                paper_keyword_nsfw=stats.paper_keyword_nsfw,
            )
        )
        kw_tags, paper_tags = stats.keyword_nsfw_by_tag, stats.paper_keyword_nsfw_by_tag
        for label, count in (stats.nsfw_flag_counts or {}).items():
            rows.append(
                t.TermTagCount(
                    shard_id=shard_id,
                    lexicon=lexicon,
                    term=term,
                    label=label,
                    count=count,
                    keyword_nsfw=None if kw_tags is None else kw_tags.get(label, 0),
                    paper_keyword_nsfw=None if paper_tags is None else paper_tags.get(label, 0),
                )
            )
    return rows
