"""Helpers for the results-store tests: small shards, ingest defaults, row counts, shard state.

Counting and reading go through a fresh connection, so they see only committed rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text

from shardwatch.core.lexicon import BIRHANE2021
from shardwatch.core.profiles import LAION400M
from shardwatch.pipeline.ingest import IngestJob, IngestResult, ingest_shards
from shardwatch.scan.engine import CompiledLexicon
from shardwatch.store.models import Base, Shard
from shardwatch.store.repository import ResultStore
from support.builders import adversarial_table, write_shard

TESTS = Path(__file__).resolve().parents[1]
SRC = TESTS.parent / "src"
WORKER = TESTS / "support" / "ingest_worker.py"
SUITES = TESTS.parent / "expectations"

DATASET = "laion-test"
LEXICON = CompiledLexicon(BIRHANE2021)

# Every table that holds one shard version's results (all keyed by shard_id).
SHARD_RESULT_TABLES = (
    "shard_metrics",
    "shard_tag_counts",
    "similarity_bins",
    "term_metrics",
    "term_tag_counts",
    "validation_results",
    "shard_blocklists",
    "shard_blocklist_matches",
)
ALL_TABLES = tuple(table.name for table in Base.metadata.sorted_tables)


def write_shards(directory: Path, n: int, *, rows: int = 80, seed: int = 0) -> list[Path]:
    """`n` small, distinct LAION-style shards (terms, tags and similarities all present)."""
    directory.mkdir(parents=True, exist_ok=True)
    return [
        write_shard(adversarial_table(rows, seed + i), directory, f"part-{i:05d}.parquet")
        for i in range(n)
    ]


def ingest(paths: Iterable[Path], store: ResultStore, **kwargs: Any) -> list[IngestResult]:
    """`ingest_shards` with the test defaults (LAION-400M profile, Birhane 2021 lexicon)."""
    options: dict[str, Any] = {
        "dataset": DATASET,
        "profile": LAION400M,
        "lexicon": LEXICON,
        "lease_seconds": 30.0,
        "workers": 1,
        "max_attempts": None,
    }
    options.update(kwargs)
    on_result = options.pop("on_result", None)
    return ingest_shards(IngestJob(store=store, **options), list(paths), on_result=on_result)


def table_counts(engine: Engine) -> dict[str, int]:
    """Rows in every table of the schema."""
    with engine.connect() as conn:
        return {
            name: int(conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one())
            for name in ALL_TABLES
        }


def shard_result_counts(engine: Engine, shard_id: int) -> dict[str, int]:
    """Rows one shard version has in each result table."""
    with engine.connect() as conn:
        return {
            name: int(
                conn.execute(
                    text(f"SELECT count(*) FROM {name} WHERE shard_id = :id"), {"id": shard_id}
                ).scalar_one()
            )
            for name in SHARD_RESULT_TABLES
        }


def shard_state(engine: Engine, shard_id: int) -> dict[str, Any]:
    """The bookkeeping columns of one shard version (typed: timestamps are datetimes)."""
    (state,) = [row for row in shards(engine) if row["id"] == shard_id]
    return state


def shards(engine: Engine) -> list[dict[str, Any]]:
    """The bookkeeping columns of every shard version, in id order."""
    columns = ("id", "uri", "version", "status", "reason", "attempts", "lease_owner", "docs_page")
    table = Shard.__table__
    query = select(*(table.c[name] for name in columns), table.c.lease_expires_at)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(table.c.id)).all()
    return [dict(row._mapping) for row in rows]


def as_utc(value: datetime) -> datetime:
    """SQLite hands timestamps back naive; the store writes them in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def subprocess_env(**extra: str) -> dict[str, str]:
    """A child process's environment: shardwatch importable, the repo's suites, no other
    SHARDWATCH_* leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARDWATCH_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(SRC), str(TESTS), os.environ.get("PYTHONPATH", "")) if p
    )
    env["SHARDWATCH_VALIDATION__SUITES_DIR"] = str(SUITES)  # children run in tmp folders
    env.update(extra)
    return env


def run_shardwatch(
    *args: str, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`shardwatch ARGS` with `subprocess_env(**env)`, in this process through the console
    script's own code path (tests/support/cli_inprocess.py). `run_shardwatch_child` runs a real
    `python -m shardwatch` child process instead (for exit codes and stdout purity as a user
    sees them, and for commands that start Prefect)."""
    from support.cli_inprocess import invoke

    return invoke(*args, cwd=cwd, **env)


def run_shardwatch_child(
    *args: str, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`python -m shardwatch ARGS` in a real child process."""
    return subprocess.run(
        [sys.executable, "-m", "shardwatch", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=subprocess_env(**env),
        timeout=300,
        check=False,
    )


def start_worker(url: str, paths: Iterable[Path], *options: str) -> subprocess.Popen[str]:
    """Run tests/support/ingest_worker.py on `paths` in a new process (see its docstring)."""
    return subprocess.Popen(
        [sys.executable, str(WORKER), "--url", url, *options, *(str(p) for p in paths)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
