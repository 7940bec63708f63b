"""An installed shardwatch, from any folder: the wheel is built once per session and
installed (not editable) into a fresh virtualenv that reuses the test environment's
dependencies; its commands then run in a temporary folder outside the repository."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from support.builders import write_shard
from support.delimited import write_delimited
from support.installed import ROOT
from support.installed import run_installed as _run

pytestmark = pytest.mark.integration


def _clean_shard(folder: Path, n: int = 400) -> Path:
    """A LAION-400M shard that passes the default suite."""
    ids = list(range(n))
    return write_shard(
        pa.table(
            {
                "SAMPLE_ID": ids,
                "URL": [f"https://img.example/{i}.jpg" for i in ids],
                "TEXT": ["a picture of a garden"] * n,
                "HEIGHT": [300] * n,
                "WIDTH": [400] * n,
                "LICENSE": ["?"] * n,
                "NSFW": ["UNLIKELY"] * n,
                "similarity": [0.35] * n,
            }
        ),
        folder,
        "part-00000.parquet",
    )


def test_the_wheel_works_from_a_folder_outside_the_repository(
    installed: Path, tmp_path: Path
) -> None:
    work = tmp_path / "somewhere"
    work.mkdir()
    where = _run(
        installed / "python",
        "-c",
        "import shardwatch, shardwatch.flows.monitor as f, shardwatch.settings.resources as r;"
        "print(shardwatch.__file__); print(f.__file__); print(r.migrations_dir());"
        "print(r.default_suites_dir())",
        cwd=work,
    )
    assert where.returncode == 0, where.stderr
    venv = installed.parent
    for line in where.stdout.splitlines():  # every resource from the installed copy
        assert Path(line).is_relative_to(venv) and not Path(line).is_relative_to(ROOT), line

    up = _run(installed / "shardwatch", "db", "upgrade", cwd=work)
    assert up.returncode == 0, up.stderr
    assert "sqlite:///.shardwatch/shardwatch.sqlite is at revision " in up.stdout
    assert (work / ".shardwatch" / "shardwatch.sqlite").is_file()

    shard = _clean_shard(tmp_path)
    got = _run(installed / "shardwatch", "ingest", shard, "--no-alerts", cwd=work)
    assert got.returncode == 0, got.stdout + got.stderr
    assert "validating with suite 'laion400m' (default: " in got.stderr
    assert f"{venv}" in got.stderr.split("validating with", 1)[1].splitlines()[0]
    assert "validation (laion400m): 32 passed, 0 failed, 0 errored" in got.stdout
    assert (work / ".shardwatch" / "docs" / "index.html").is_file()
    # Data Docs offline from the installed copy: CSS, JS and fonts vendored into the site.
    docs = work / ".shardwatch" / "docs"
    assert (docs / "static/vendor/jquery/jquery.min.js").is_file()
    assert not any("https://" in p.read_text() for p in docs.rglob("*.html"))

    tsv = write_delimited(tmp_path / "cc3m.tsv", [["a red car", "https://x.example/1.jpg"]])
    cc = _run(installed / "shardwatch", "ingest", tsv, "--profile", "cc3m", "--no-alerts",
              "--dataset", "cc", cwd=work)
    assert cc.returncode == 0, cc.stdout + cc.stderr
    assert "validating with suite 'cc3m' (default: " in cc.stderr
    assert "validation (cc3m): 25 passed, 0 failed, 0 errored" in cc.stdout

    missing = _run(installed / "shardwatch", "ingest", shard, "--no-alerts", cwd=work,
                   SHARDWATCH_VALIDATION__SUITE="nosuch")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1].startswith(
        "error: suite 'nosuch' not found: no packaged default of that name"
    )
    assert "Traceback" not in missing.stderr
