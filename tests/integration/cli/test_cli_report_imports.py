"""`shardwatch report` starts cheaply: in a fresh interpreter, through the console script's
own entry point, it reads a populated store through SQLAlchemy Core alone. Neither the ORM
(the writers' classes in store/models.py), Alembic, nor the other commands' modules load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.store_checks import subprocess_env

from shardwatch.core.lexicon import PRECISE2026
from shardwatch.core.profiles import LAION400M
from shardwatch.demo import synth
from shardwatch.pipeline.ingest import IngestJob, ingest_shards
from shardwatch.scan.engine import CompiledLexicon
from shardwatch.store.repository import ResultStore

pytestmark = pytest.mark.integration

# Loaded only by the writers (the ORM), by migrating (Alembic), or by other commands.
NOT_ON_THE_REPORT_PATH = (
    "sqlalchemy.orm",
    "shardwatch.store.models",
    "shardwatch.store.repository",
    "alembic",
    "shardwatch.cli.scan",
    "shardwatch.cli.monitor",
    "shardwatch.cli.ingest",
    "shardwatch.cli.export",
    "shardwatch.cli.alerts",
)

# `python -c PROBE OUT ARGS...`: `shardwatch ARGS` as the console script runs it, then the
# names of the modules it loaded written to OUT.
PROBE = """
import json, sys
from shardwatch.cli.root import main
out, sys.argv = sys.argv[1], ["shardwatch", *sys.argv[2:]]
try:
    main()
finally:
    with open(out, "w") as f:
        json.dump(sorted(sys.modules), f)
"""


VIEWS = {"total": (), "drift": ("--drift",), "domains": ("--domains",)}


@pytest.mark.parametrize("view", VIEWS.values(), ids=VIEWS.keys())
def test_report_reads_through_core_alone(
    store: ResultStore, database_url: str, tmp_path: Path, view: tuple[str, ...]
) -> None:
    paths = [synth.write_shard(tmp_path / f"part-{s}.parquet", 500, seed=s) for s in (1, 2)]
    job = IngestJob(
        store=store,
        dataset="lazy",
        profile=LAION400M,
        lexicon=CompiledLexicon(PRECISE2026),
        lease_seconds=60,
        max_attempts=None,
    )
    assert [r.outcome for r in ingest_shards(job, paths)] == ["done", "done"]
    out = tmp_path / "modules.json"
    args = ["report", "--dataset", "lazy", "--json", *view]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=subprocess_env(SHARDWATCH_DATABASE_URL=database_url),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)  # the report itself was printed
    loaded = set(json.loads(out.read_text()))
    assert "sqlalchemy" in loaded and "shardwatch.store.report" in loaded
    unwanted = {m for m in loaded if m.split(".")[0] == "alembic" or m in NOT_ON_THE_REPORT_PATH}
    assert sorted(unwanted) == []
