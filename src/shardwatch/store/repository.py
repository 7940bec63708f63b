"""Repository: shard versions, lease-based claims and all-or-nothing result writes."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import Engine, func, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from shardwatch.core.alerts import AlertPlan
from shardwatch.core.metrics import ShardMetrics
from shardwatch.core.names import MAX_DATASET_CHARS, name_problem, shown, uri_problem
from shardwatch.core.schema import SchemaDrift
from shardwatch.core.validation import ShardValidation
from shardwatch.store import models as t
from shardwatch.store.database import db_now, is_sqlite, session_factory, transaction
from shardwatch.store.failures import end_shard
from shardwatch.store.outbox import record_alerts, record_failure
from shardwatch.store.runs import close_ended_runs, this_host
from shardwatch.store.twins import current_twin, lock_dataset

BeforeCommit = Callable[[Session], None]
T = TypeVar("T")
log = logging.getLogger(__name__)

# A store operation whose connection dropped (the server restarted, the backend was
# terminated), or that could not connect because the server is down or still starting,
# runs again on a new connection (pool_pre_ping) for up to DISCONNECT_PATIENCE seconds, after
# DISCONNECT_PAUSE seconds, doubled each time up to DISCONNECT_PAUSE_MAX. A server down for
# longer fails the operation (and only the shard it was for: ingest goes on to the next).
DISCONNECT_PATIENCE = 30.0
DISCONNECT_PAUSE = 0.2
DISCONNECT_PAUSE_MAX = 2.0
# SQLSTATEs of a server that is going away or not yet accepting connections.
_UNAVAILABLE = frozenset({"57P01", "57P02", "57P03"})


def server_unavailable(exc: DBAPIError) -> bool:
    """The connection dropped, or none could be made (refused, server starting or shutting
    down): worth trying again on a new connection. Other errors are not (a constraint, a
    deadlock, SQLite's own locking)."""
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError) or not hasattr(exc.orig, "pgcode"):
        return False  # SQLite, or not an operational error: the server answered
    code = getattr(exc.orig, "pgcode", None)  # None: psycopg2 could not reach the server
    return code is None or code in _UNAVAILABLE


def retry_on_disconnect(op: Callable[[bool], T]) -> T:
    """`op(False)`; while it fails because the server is unavailable, `op(True)` again.

    A dropped connection leaves the last COMMIT in doubt: the server may have committed and
    then lost the connection before replying. `op(True)` must therefore recognise its own
    committed work and not do it twice. Any other error is raised at once.
    """
    deadline = time.monotonic() + DISCONNECT_PATIENCE
    pause, retry = DISCONNECT_PAUSE, False
    while True:
        try:
            return op(retry)
        except DBAPIError as exc:
            if not server_unavailable(exc) or time.monotonic() + pause > deadline:
                raise
            log.warning(
                "database connection lost or refused (%s); retrying on a new connection",
                type(exc.orig).__name__,
            )
        retry = True
        time.sleep(pause)
        pause = min(pause * 2, DISCONNECT_PAUSE_MAX)


@dataclass(frozen=True)
class ShardVersion:
    """One stored version of a shard (ORM rows never leave the store)."""

    id: int
    dataset: str
    uri: str
    content_sha256: str
    version: int
    status: str
    attempts: int


@dataclass(frozen=True)
class StoredShard:
    """The current (most recently seen) version of a URI, as discovery compares it."""

    uri: str
    version: int
    status: str
    content_sha256: str
    size_bytes: int | None
    etag: str | None
    mtime: datetime | None
    reason: str | None

    @property
    def fetched(self) -> bool:
        """False for a version recorded before its content could be fetched."""
        return not self.content_sha256.startswith(UNFETCHED)


# The content hash of a version whose bytes never arrived (a failed download): derived from
# what the source listed, so the next attempt finds the same row; always 64 characters.
UNFETCHED = "unfetched-"


def unfetched_hash(uri: str, size: int | None, etag: str | None) -> str:
    import hashlib

    digest = hashlib.sha256(f"{uri}|{size}|{etag}".encode()).hexdigest()
    return UNFETCHED + digest[: 64 - len(UNFETCHED)]


def _version(row: t.Shard, dataset: str) -> ShardVersion:
    return ShardVersion(
        row.id, dataset, row.uri, row.content_sha256, row.version, row.status, row.attempts
    )


class IdenticalContent(Exception):
    """The shard's content is already counted under another URI; `reason` names it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ResultStore:
    """Typed operations on the results database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = session_factory(engine)

    # -- datasets and versions -------------------------------------------------------------
    def dataset_id(self, name: str) -> int:
        """Get or create a dataset (safe under concurrent creators). A name the store could
        not keep verbatim (names.py) raises ValueError, on any database."""
        problem = name_problem(name, max_chars=MAX_DATASET_CHARS, one_line=True)
        if problem:
            raise ValueError(f"dataset name '{shown(name)}' {problem}")
        for _ in range(3):
            with transaction(self.sessions) as s:
                found = s.scalar(select(t.Dataset.id).where(t.Dataset.name == name))
                if found is not None:
                    return found
            try:
                with transaction(self.sessions) as s:
                    row = t.Dataset(name=name)
                    s.add(row)
                    s.flush()
                    return row.id
            except IntegrityError:
                continue  # another process created it first
        raise RuntimeError(f"could not create dataset {name!r}")

    def register(
        self,
        dataset: str,
        uri: str,
        content_sha256: str,
        size_bytes: int | None = None,
        etag: str | None = None,
        mtime: datetime | None = None,
    ) -> ShardVersion:
        """The version for (dataset, uri, content); new content under a URI gets version+1.
        Idempotent (the natural key), so it simply runs again if its connection drops.
        A URI the store could not keep verbatim (names.py) raises ValueError, on any database."""
        problem = uri_problem(uri)
        if problem:
            raise ValueError(f"shard URI '{shown(uri)}' {problem}")
        return retry_on_disconnect(
            lambda _retry: self._register(dataset, uri, content_sha256, size_bytes, etag, mtime)
        )

    def _register(
        self,
        dataset: str,
        uri: str,
        content_sha256: str,
        size_bytes: int | None,
        etag: str | None,
        mtime: datetime | None,
    ) -> ShardVersion:
        ds = self.dataset_id(dataset)
        for _ in range(5):
            with transaction(self.sessions) as s:
                row = s.scalar(
                    select(t.Shard).where(
                        t.Shard.dataset_id == ds,
                        t.Shard.uri == uri,
                        t.Shard.content_sha256 == content_sha256,
                    )
                )
                if row is not None:
                    row.last_seen_at = t.utcnow()  # seen again: this content is current
                    if etag is not None and row.etag != etag:
                        row.etag = etag  # the server's validator for it now (changes.py)
                    return _version(row, dataset)
            try:
                with transaction(self.sessions) as s:
                    latest = s.scalar(
                        select(func.max(t.Shard.version)).where(
                            t.Shard.dataset_id == ds, t.Shard.uri == uri
                        )
                    )
                    row = t.Shard(
                        dataset_id=ds,
                        uri=uri,
                        content_sha256=content_sha256,
                        version=(latest or 0) + 1,
                        size_bytes=size_bytes,
                        etag=etag,
                        mtime=mtime,
                        status="discovered",
                    )
                    s.add(row)
                    s.flush()
                    return _version(row, dataset)
            except IntegrityError:
                continue  # a concurrent register won the race: read its row
        raise RuntimeError(f"could not register {uri!r}")

    def current(self, dataset: str) -> dict[str, StoredShard]:
        """The current version of every URI of `dataset` (empty for an unknown dataset)."""
        with self.sessions() as s:
            ds = s.scalar(select(t.Dataset.id).where(t.Dataset.name == dataset))
            if ds is None:
                return {}
            rows = s.scalars(
                select(t.Shard)
                .where(t.Shard.dataset_id == ds)
                .order_by(t.Shard.uri, t.Shard.last_seen_at.desc(), t.Shard.version.desc())
            ).all()
        out: dict[str, StoredShard] = {}
        for r in rows:
            if r.uri not in out:
                out[r.uri] = StoredShard(
                    r.uri,
                    r.version,
                    r.status,
                    r.content_sha256,
                    r.size_bytes,
                    r.etag,
                    r.mtime,
                    r.reason,
                )
        return out

    def done_with_content(
        self, dataset: str, content_sha256: str, *, other_than: str
    ) -> str | None:
        """The URI of another URI of `dataset` whose current done version holds exactly this
        content (store/twins.py); a fast check before scanning. `complete` enforces it."""
        with self.sessions() as s:
            ds = s.scalar(select(t.Dataset.id).where(t.Dataset.name == dataset))
            return None if ds is None else current_twin(s, ds, other_than, content_sha256)

    def reject(
        self,
        dataset: str,
        uri: str,
        reason: str,
        *,
        owner: str,
        content_sha256: str | None = None,
        size_bytes: int | None = None,
        etag: str | None = None,
        mtime: datetime | None = None,
        quarantine: bool,
        max_attempts: int | None = None,
        alerts: AlertPlan | None = None,
    ) -> tuple[ShardVersion, str]:
        """Record a shard that will not be scanned: `failed` (worth retrying: e.g. the
        download failed; quarantined once `max_attempts` are spent) or `quarantined` (its
        content is refused: corrupt, a decompression bomb, a duplicate). Without a content
        hash the version is keyed by the listing. Returns the version and the reason kept."""
        sha = content_sha256 or unfetched_hash(uri, size_bytes, etag)
        sv = self.register(dataset, uri, sha, size_bytes, etag, mtime)
        if self.claim(sv.id, owner, 60.0, force=True):
            _, reason = self.fail(
                sv.id,
                owner,
                reason,
                quarantine=quarantine,
                max_attempts=max_attempts,
                alerts=alerts,
            )
        return self.shard(sv.id), reason

    # -- claims ----------------------------------------------------------------------------
    def claim(self, shard_id: int, owner: str, lease_seconds: float, force: bool = False) -> bool:
        """Take the shard for processing if nobody holds a live lease on it.

        Claimable: discovered or failed shards, processing shards whose lease expired, and
        (with `force`) done shards. On PostgreSQL the row is locked with FOR UPDATE SKIP
        LOCKED, so concurrent claimers never wait on each other; SQLite serialises writers.
        If the connection drops, a retry that finds the lease already ours (the COMMIT landed)
        returns True.
        """
        return retry_on_disconnect(
            lambda retry: (
                self._claim(shard_id, owner, lease_seconds, force)
                or (retry and self._leased_to(shard_id, owner))
            )
        )

    def _claim(self, shard_id: int, owner: str, lease_seconds: float, force: bool) -> bool:
        with transaction(self.sessions) as s:
            now = db_now(s)  # one clock for every worker, whatever its host's
            statuses = ["discovered", "failed", *(["done", "quarantined"] if force else [])]
            claimable = or_(
                t.Shard.status.in_(statuses),
                (t.Shard.status == "processing") & (t.Shard.lease_expires_at < now),
            )
            query = select(t.Shard.id).where(t.Shard.id == shard_id, claimable)
            if not is_sqlite(self.engine):
                query = query.with_for_update(skip_locked=True)
            if s.scalar(query) is None:
                return False
            result = s.execute(
                update(t.Shard)
                .where(t.Shard.id == shard_id, claimable)
                .values(
                    status="processing",
                    lease_owner=owner,
                    lease_expires_at=now + timedelta(seconds=lease_seconds),
                    attempts=t.Shard.attempts + 1,
                    started_at=now,
                    reason=None,
                )
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def _leased_to(self, shard_id: int, owner: str) -> bool:
        with self.sessions() as s:
            return self._holds_lease(s, shard_id, owner)

    def _holds_lease(self, s: Session, shard_id: int, owner: str) -> bool:
        query = select(t.Shard.id).where(
            t.Shard.id == shard_id, t.Shard.status == "processing", t.Shard.lease_owner == owner
        )
        if not is_sqlite(self.engine):
            query = query.with_for_update()
        return s.scalar(query) is not None

    # -- results ---------------------------------------------------------------------------
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

    # -- runs ------------------------------------------------------------------------------
    def start_run(self, prefect_flow_run_id: str | None = None) -> int:
        """A new `running` row for this process; `running` rows whose process has ended are
        closed first (store/runs.py)."""
        with transaction(self.sessions) as s:
            close_ended_runs(s)
            run = t.Run(prefect_flow_run_id=prefect_flow_run_id, host=this_host(), pid=os.getpid())
            s.add(run)
            s.flush()
            return run.id

    def fail_run(self, run_id: int, error: str) -> None:
        """Close a run that ended by an exception (`error`: what, never a secret)."""
        with transaction(self.sessions) as s:
            s.execute(
                update(t.Run)
                .where(t.Run.id == run_id, t.Run.status == "running")
                .values(finished_at=t.utcnow(), status="failed", error=error[:1000])
            )

    def finish_run(self, run_id: int, *, seen: int, done: int, skipped: int, failed: int) -> None:
        with transaction(self.sessions) as s:
            s.execute(
                update(t.Run)
                .where(t.Run.id == run_id)
                .values(
                    finished_at=t.utcnow(),
                    status="completed",
                    shards_seen=seen,
                    shards_done=done,
                    shards_skipped=skipped,
                    shards_failed=failed,
                )
            )

    def shard(self, shard_id: int) -> ShardVersion:
        with self.sessions() as s:
            row = s.get(t.Shard, shard_id)
            if row is None:
                raise KeyError(shard_id)
            name = s.scalar(select(t.Dataset.name).where(t.Dataset.id == row.dataset_id))
            return _version(row, name or "")


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
