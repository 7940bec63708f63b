"""Child process of scenario 1 (test_malicious_parquet.py); run with subprocess_env().

check PATH [MAX_UNCOMPRESSED_BYTES]   footer check only; prints one JSON line with the
                                      verdict and the process's peak RSS before/after
ingest DB_URL AS_BYTES                the real ingest path (footer check, scan, store) on
                                      each path read from stdin, under RLIMIT_AS; one
                                      JSON line per path; an exception that escapes
                                      ingest_file is reported as outcome "escaped"
wide PATH COLUMNS                     write a one-row file with COLUMNS columns
unpickle PATH FIELD                   pickle.loads the extension payload FIELD declares
capped DB_URL CAP PATH                the real ingest path with `max_uncompressed_bytes` =
                                      CAP; one JSON line: outcome, reason, peak RSS
"""

from __future__ import annotations

import json
import pickle
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

RESULT_TABLES = (  # a shard version's rows in these exist only once it is done
    "shard_metrics",
    "shard_tag_counts",
    "similarity_bins",
    "term_metrics",
    "term_tag_counts",
    "validation_results",
)


def peak_mb(key: str = "VmHWM") -> float:
    """This process's peak RSS: VmHWM (ru_maxrss would include the forked parent's pages);
    `key="VmSize"`: its address space now."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def check(path: Path, max_uncompressed: int | None) -> None:
    from shardwatch.acquire.footer import FooterLimits, ShardRejected, check_footer

    limits = FooterLimits() if max_uncompressed is None else FooterLimits(max_uncompressed)
    before = peak_mb()
    started = time.perf_counter()
    try:
        check_footer(path, limits)
        reason = None
    except ShardRejected as exc:
        reason = exc.reason
    print(
        json.dumps(
            {
                "rejected": reason is not None,
                "reason": reason,
                "seconds": time.perf_counter() - started,
                "rss_before_mb": before,
                "peak_mb": peak_mb(),
            }
        ),
        flush=True,
    )


def stored(engine: Any, shard_id: int | None) -> dict[str, Any]:
    """What the store holds for one shard version: its rows in each result table, and the
    metrics row's counts (None when it has none)."""
    from sqlalchemy import text

    if shard_id is None:
        return {"rows": {}, "metrics": None}
    with engine.connect() as conn:
        rows = {
            name: conn.execute(
                text(f"SELECT count(*) FROM {name} WHERE shard_id = :id"), {"id": shard_id}
            ).scalar_one()
            for name in RESULT_TABLES
        }
        metrics = conn.execute(
            text("SELECT rows, keyword_nsfw_rows FROM shard_metrics WHERE shard_id = :id"),
            {"id": shard_id},
        ).first()
    return {"rows": rows, "metrics": None if metrics is None else list(metrics)}


def reference(path: Path) -> list[Any]:
    """The same counts from tests/support/reference.py over a plain read of the whole file."""
    import pyarrow.parquet as pq

    from shardwatch.core.lexicon import BIRHANE2021
    from shardwatch.core.profiles import LAION400M
    from support.reference import reference_metrics

    ref = reference_metrics(pq.read_table(path), LAION400M, BIRHANE2021)
    return [ref["rows"], ref.get("keyword_nsfw_rows")]


def ingest(url: str, as_bytes: int) -> None:
    from shardwatch.core.lexicon import BIRHANE2021
    from shardwatch.core.profiles import LAION400M
    from shardwatch.pipeline.ingest import IngestJob, ingest_file
    from shardwatch.scan.engine import CompiledLexicon
    from shardwatch.store.database import make_engine, upgrade
    from shardwatch.store.repository import ResultStore

    engine = make_engine(url)
    upgrade(engine)
    job = IngestJob(
        store=ResultStore(engine),
        dataset="fuzz",
        profile=LAION400M,
        lexicon=CompiledLexicon(BIRHANE2021),
        lease_seconds=60.0,
        owner="fuzz-worker",
    )
    resource.setrlimit(resource.RLIMIT_AS, (as_bytes, as_bytes))
    ready = {"ready": True, "peak_mb": peak_mb(), "vm_mb": peak_mb("VmSize")}
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        started = time.perf_counter()
        path = Path(line.strip())
        try:
            result = ingest_file(job, path)
            out: dict[str, Any] = {"outcome": result.outcome, "reason": result.reason}
            out["stored"] = stored(engine, result.shard_id)
            if result.outcome == "done":
                out["reference"] = reference(path)
        except BaseException as exc:  # anything escaping would stop a real run
            out = {"outcome": "escaped", "reason": "".join(traceback.format_exception(exc))}
        out["seconds"] = time.perf_counter() - started
        out["peak_mb"] = peak_mb()
        print(json.dumps(out), flush=True)


def capped(url: str, cap: int, path: Path) -> None:
    from shardwatch.acquire.footer import FooterLimits
    from shardwatch.core.lexicon import BIRHANE2021
    from shardwatch.core.profiles import LAION400M
    from shardwatch.pipeline.ingest import IngestJob, ingest_file
    from shardwatch.scan.engine import CompiledLexicon
    from shardwatch.store.database import make_engine, upgrade
    from shardwatch.store.repository import ResultStore

    engine = make_engine(url)
    upgrade(engine)
    lexicon = CompiledLexicon(BIRHANE2021)
    job = IngestJob(
        store=ResultStore(engine),
        dataset="bombs",
        profile=LAION400M,
        lexicon=lexicon,
        lease_seconds=60.0,
        owner="bomb-worker",
        footer=FooterLimits(max_uncompressed_bytes=cap),
    )
    before = peak_mb()
    started = time.perf_counter()
    result = ingest_file(job, path)
    out = {
        "outcome": result.outcome,
        "reason": result.reason,
        "seconds": time.perf_counter() - started,
        "rss_before_mb": before,
        "peak_mb": peak_mb(),
    }
    print(json.dumps(out), flush=True)


def main(argv: list[str]) -> None:
    command, *args = argv
    if command == "check":
        check(Path(args[0]), int(args[1]) if len(args) > 1 else None)
    elif command == "ingest":
        ingest(args[0], int(args[1]))
    elif command == "capped":
        capped(args[0], int(args[1]), Path(args[2]))
    elif command == "wide":
        from support.reliability.malparquet_shards import wide_shard

        wide_shard(Path(args[0]), int(args[1]))
    elif command == "unpickle":
        from support.reliability.malparquet_shards import declared_extensions

        _, pickled = declared_extensions(Path(args[0]))[args[1]]
        pickle.loads(pickled)  # the point: prove the stored payload is live
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
