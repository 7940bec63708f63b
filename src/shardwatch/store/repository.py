"""The results store: datasets, shard versions and runs, with claims (claims.py) and result
writes (result_writes.py) mixed in. Its public methods raise the store's own errors."""

from __future__ import annotations

import os
from datetime import datetime

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError

from shardwatch.core.alerts import AlertPlan
from shardwatch.core.names import MAX_DATASET_CHARS, name_problem, shown, uri_problem
from shardwatch.store import models as t
from shardwatch.store.boundary import translated
from shardwatch.store.database import session_factory, transaction
from shardwatch.store.result_writes import ResultWrites
from shardwatch.store.retry import retry_on_disconnect
from shardwatch.store.runs import close_ended_runs, this_host
from shardwatch.store.shard_versions import (
    ShardVersion,
    StoredShard,
    unfetched_hash,
    version_of,
)
from shardwatch.store.snapshots import latest_done
from shardwatch.store.stored_totals import kept_key, shards_key
from shardwatch.store.twins import current_twin


class ResultStore(ResultWrites):
    """Typed operations on the results database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = session_factory(engine)

    # -- datasets and versions -------------------------------------------------------------
    @translated
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

    @translated
    def dataset_known(self, name: str) -> bool:
        """Whether the store holds a dataset of that name."""
        with self.sessions() as s:
            return s.scalar(select(t.Dataset.id).where(t.Dataset.name == name)) is not None

    @translated
    def judged_current(self, name: str) -> bool:
        """Whether the last dataset judgement (its kept sums, store/stored_totals.py) covers
        exactly the dataset's latest done versions: if not, a judgement is owed (e.g. a pass
        died after its shards' commits and before judging). True for an unknown dataset."""
        with self.sessions() as s:
            ds = s.scalar(select(t.Dataset.id).where(t.Dataset.name == name))
            if ds is None:
                return True
            conn = s.connection()
            return kept_key(conn, ds) == shards_key(conn, latest_done(ds))

    @translated
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
                    return version_of(row, dataset)
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
                    return version_of(row, dataset)
            except IntegrityError:
                continue  # a concurrent register won the race: read its row
        raise RuntimeError(f"could not register {uri!r}")

    @translated
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

    @translated
    def done_with_content(
        self, dataset: str, content_sha256: str, *, other_than: str
    ) -> str | None:
        """The URI of another URI of `dataset` whose current done version holds exactly this
        content (store/twins.py); a fast check before scanning. `complete` enforces it."""
        with self.sessions() as s:
            ds = s.scalar(select(t.Dataset.id).where(t.Dataset.name == dataset))
            return None if ds is None else current_twin(s, ds, other_than, content_sha256)

    @translated
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

    @translated
    def start_run(self, prefect_flow_run_id: str | None = None) -> int:
        """A new `running` row for this process; `running` rows whose process has ended are
        closed first (store/runs.py)."""
        with transaction(self.sessions) as s:
            close_ended_runs(s)
            run = t.Run(prefect_flow_run_id=prefect_flow_run_id, host=this_host(), pid=os.getpid())
            s.add(run)
            s.flush()
            return run.id

    @translated
    def fail_run(self, run_id: int, error: str) -> None:
        """Close a run that ended by an exception (`error`: what, never a secret)."""
        with transaction(self.sessions) as s:
            s.execute(
                update(t.Run)
                .where(t.Run.id == run_id, t.Run.status == "running")
                .values(finished_at=t.utcnow(), status="failed", error=error[:1000])
            )

    @translated
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

    @translated
    def shard(self, shard_id: int) -> ShardVersion:
        with self.sessions() as s:
            row = s.get(t.Shard, shard_id)
            if row is None:
                raise KeyError(shard_id)
            name = s.scalar(select(t.Dataset.name).where(t.Dataset.id == row.dataset_id))
            return version_of(row, name or "")
