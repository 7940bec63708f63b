"""Every built-in profile on a shard in its dataset's real layout: COYO-700M on the real sample
rows (CSV), LAION-5B joined and DataComp on generated parquet with their real column names,
CC3M and CC12M on header-less TSVs. Expected values are computed here, independently of the
engine (the `csv` module, plain Python counting, and tests/support/reference.py)."""

from __future__ import annotations

import csv
import json
import math
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from support.builders import real_fixture, write_shard
from support.compare import assert_same_metrics
from support.delimited import Value, write_delimited
from support.reference import reference_metrics, score_bucket
from support.store_checks import run_shardwatch

from shardwatch.core.lexicon import BIRHANE2021
from shardwatch.core.profiles import (
    BUILTIN_PROFILES,
    CC3M,
    CC12M,
    COYO700M,
    DATACOMP,
    LAION5B_JOINED,
    DatasetProfile,
)
from shardwatch.scan.engine import scan_shard
from shardwatch.settings.config import load_settings

COYO_FILE = "coyo700m_sample_rows.csv"
KEYWORDS = [p.needle for p in BIRHANE2021.keywords]


@pytest.mark.unit
def test_the_builtin_profiles() -> None:
    assert sorted(BUILTIN_PROFILES) == sorted(
        ["laion400m", "laion5b-joined", "coyo700m", "datacomp", "cc3m", "cc12m"]
    )
    assert (COYO700M.nsfw_signal, COYO700M.nsfw_threshold) == ("score", 0.5)
    assert COYO700M.nsfw_labels == ("UNLIKELY", "NSFW")
    assert CC3M.header == ("caption", "url") and CC12M.header == ("url", "caption")
    assert DATACOMP.column("nsfw_tag") is None


def _keyword_row(*haystacks: str | None) -> bool:
    return any(k in (h or "").lower() for k in KEYWORDS for h in haystacks)


# --- COYO-700M: the real sample rows --------------------------------------------------------


def _coyo_rows() -> tuple[list[dict[str, str | None]], list[str]]:
    """The real file through the `csv` module; an empty field is null, as in the reader."""
    with real_fixture(COYO_FILE).open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = [{k: (v if v != "" else None) for k, v in row.items()} for row in reader]
        return rows, list(reader.fieldnames or [])


def _coyo_expected(rows: list[dict[str, str | None]], threshold: float) -> dict[str, Any]:
    scores = [r["nsfw_score_opennsfw2"] for r in rows]
    sims = [float(s) for r in rows if (s := r["clip_similarity_vitb32"]) is not None]
    nsfw = sum(1 for s in scores if s is not None and float(s) > threshold)
    columns = {
        "id": "id",
        "url": "url",
        "text": "text",
        "nsfw_tag": "nsfw_score_opennsfw2",
        "similarity": "clip_similarity_vitb32",
        "width": "width",
        "height": "height",
        "unsafe_score": "nsfw_score_gantman",
        "watermark": "watermark_score",
    }
    return {
        "rows": len(rows),
        "nulls": {f: sum(1 for r in rows if r[c] is None) for f, c in columns.items()},
        "flags": {
            "UNLIKELY": sum(1 for s in scores if s is not None) - nsfw,
            "NSFW": nsfw,
            "other": 0,
            "null": sum(1 for s in scores if s is None),
        },
        "similarity": (len(sims), sum(1 for v in sims if v < 0.3), min(sims), max(sims)),
        "keyword_rows": sum(1 for r in rows if _keyword_row(r["text"], r["url"])),
    }


@pytest.mark.unit
def test_coyo700m_on_the_real_rows() -> None:
    rows, header = _coyo_rows()
    assert len(rows) == 7 and "nsfw_score_opennsfw2" in header
    expected = _coyo_expected(rows, threshold=0.5)

    got = scan_shard(real_fixture(COYO_FILE), COYO700M, BIRHANE2021).to_dict()

    assert got["rows"] == expected["rows"]
    assert got["nulls"] == expected["nulls"]
    assert got["nsfw_flag_counts"] == expected["flags"]
    sim = got["similarity"]
    assert (sim["count"], sim["below_threshold"], sim["min"], sim["max"]) == expected["similarity"]
    assert sim["threshold"] == 0.3
    assert got["keyword_nsfw_rows"] == expected["keyword_rows"] == 3  # 'photo' holds 'hot'
    assert got["duplicates"] == {"id": 0, "url": 0}
    assert got["unavailable"] == []
    assert_same_metrics(got, reference_metrics(rows, COYO700M, BIRHANE2021, columns=header))


@pytest.mark.unit
def test_config_profile_extends_coyo700m_with_another_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in __import__("os").environ if n.startswith("SHARDWATCH_")]:
        monkeypatch.delenv(name)
    cfg = tmp_path / "shardwatch.toml"
    cfg.write_text(
        'profile = "coyo-strict"\n'
        "[profiles.coyo-strict]\n"
        'extends = "coyo700m"\n'
        "nsfw_threshold = 0.01\n"
    )
    profile = load_settings(cfg).dataset_profile()
    assert profile.name == "coyo-strict"
    assert (profile.nsfw_signal, profile.nsfw_threshold) == ("score", 0.01)
    assert dict(profile.columns) == dict(COYO700M.columns)
    assert profile.similarity_threshold == COYO700M.similarity_threshold

    rows, header = _coyo_rows()
    expected = _coyo_expected(rows, threshold=0.01)
    got = scan_shard(real_fixture(COYO_FILE), profile, BIRHANE2021).to_dict()
    assert got["nsfw_flag_counts"] == expected["flags"]
    assert expected["flags"]["NSFW"] == 2  # 0.0130615 and 0.025009
    assert_same_metrics(got, reference_metrics(rows, profile, BIRHANE2021, columns=header))


@pytest.mark.unit
def test_coyo700m_score_edges_on_a_generated_csv(tmp_path: Path) -> None:
    scores: list[Value] = ["0.5", "0.5000001", "1", "0", "1e-9", None, "nan", "-inf", "0.75"]
    header = ("id", "url", "text", "nsfw_score_opennsfw2", "clip_similarity_vitb32")
    rows = [
        [str(i), f"http://x/{i}.jpg", "hot tea" if i % 2 else "a desi nun", s, "0.31"]
        for i, s in enumerate(scores)
    ]
    path = write_delimited(tmp_path / "coyo.csv.gz", rows, header)

    got = scan_shard(path, COYO700M, BIRHANE2021).to_dict()

    # by hand: > 0.5 is NSFW; 0.5 itself is not; empty, nan and -inf are null
    assert got["nsfw_flag_counts"] == {"UNLIKELY": 3, "NSFW": 3, "other": 0, "null": 3}
    # 'hot tea' rows (odd i): 0.5000001, 0, empty, -inf; 'desi' rows: 0.5, 1, 1e-9, nan, 0.75
    assert got["keyword_nsfw_by_tag"] == {"UNLIKELY": 1, "NSFW": 1, "other": 0, "null": 2}
    assert got["terms"]["desi"]["nsfw_flag_counts"] == {
        "UNLIKELY": 2,
        "NSFW": 2,
        "other": 0,
        "null": 1,
    }
    assert [score_bucket(s, 0.5) for s in scores] == [
        "UNLIKELY",
        "NSFW",
        "NSFW",
        "UNLIKELY",
        "UNLIKELY",
        "null",
        "null",
        "null",
        "NSFW",
    ]
    as_dicts = [dict(zip(header, r, strict=True)) for r in rows]
    assert_same_metrics(got, reference_metrics(as_dicts, COYO700M, BIRHANE2021, columns=header))


@pytest.mark.unit
def test_score_signal_needs_a_finite_threshold() -> None:
    columns: dict[Any, str | None] = {"nsfw_tag": "score"}
    with pytest.raises(ValueError, match="needs nsfw_threshold"):
        DatasetProfile(name="s", columns=columns, similarity_threshold=0.3, nsfw_signal="score")
    with pytest.raises(ValueError, match="needs nsfw_threshold"):
        DatasetProfile(
            name="s",
            columns=columns,
            similarity_threshold=0.3,
            nsfw_signal="score",
            nsfw_threshold=math.nan,
        )
    with pytest.raises(ValueError, match="nsfw_threshold needs nsfw_signal='score'"):
        DatasetProfile(name="s", columns=columns, similarity_threshold=0.3, nsfw_threshold=0.5)


# --- LAION-5B joined and DataComp: generated parquet with the real column names --------------


def _laion5b_table(n: int, seed: int) -> pa.Table:
    rng = random.Random(seed)
    tags = ("UNLIKELY", "UNSURE", "NSFW", "nsfw", "", None)
    captions = ("a hot air balloon", "desi wedding", "school girl uniform", "plain", None)
    return pa.table(
        {
            "hash": pa.array([rng.randint(0, n // 2) for _ in range(n)], pa.int64()),
            "URL": [f"https://img.example/{rng.randint(0, n)}.jpg" for _ in range(n)],
            "TEXT": [rng.choice(captions) for _ in range(n)],
            "NSFW": [rng.choice(tags) for _ in range(n)],
            # 0.28 <= v < 0.3 is below LAION-400M's cut-off but not LAION-5B's
            "similarity": [rng.choice((None, 0.279, 0.28, 0.29, 0.31, 0.5)) for _ in range(n)],
            "WIDTH": pa.array([rng.choice((None, 256, 512)) for _ in range(n)], pa.int64()),
            "HEIGHT": pa.array([rng.choice((None, 256, 512)) for _ in range(n)], pa.int64()),
            "LICENSE": [rng.choice(("?", None)) for _ in range(n)],
            "punsafe": [rng.choice((None, 0.01, 0.6, 0.99)) for _ in range(n)],
            "pwatermark": [rng.choice((None, 0.1, 0.9)) for _ in range(n)],
        }
    )


@pytest.mark.unit
def test_laion5b_joined_on_generated_parquet(tmp_path: Path) -> None:
    table = _laion5b_table(800, seed=5)
    path = write_shard(table, tmp_path, "laion2B-en-joined-part-00000.parquet")
    data = table.to_pydict()

    got = scan_shard(path, LAION5B_JOINED, BIRHANE2021).to_dict()

    tags = Counter(data["NSFW"])
    assert got["nsfw_flag_counts"] == {
        "UNLIKELY": tags["UNLIKELY"],
        "UNSURE": tags["UNSURE"],
        "NSFW": tags["NSFW"],
        "other": tags["nsfw"] + tags[""],
        "null": tags[None],
    }
    sims = [v for v in data["similarity"] if v is not None]
    assert got["similarity"]["threshold"] == 0.28
    assert got["similarity"]["below_threshold"] == sum(1 for v in sims if v < 0.28)
    assert got["similarity"]["below_threshold"] < sum(1 for v in sims if v < 0.3)
    assert got["nulls"]["unsafe_score"] == data["punsafe"].count(None)
    assert got["nulls"]["watermark"] == data["pwatermark"].count(None)
    ids = [v for v in data["hash"] if v is not None]
    assert got["duplicates"]["id"] == len(ids) - len(set(ids)) > 0
    assert got["unavailable"] == []
    assert_same_metrics(got, reference_metrics(table, LAION5B_JOINED, BIRHANE2021))


@pytest.mark.unit
def test_datacomp_on_generated_parquet(tmp_path: Path) -> None:
    rng = random.Random(9)
    n = 600
    uids = [f"{rng.getrandbits(128):032x}" for _ in range(n - 20)]
    uids += uids[:20]  # 20 duplicate uids
    table = pa.table(
        {
            "uid": uids,
            "url": [f"http://cdn.example/{i}/{rng.choice(('photo', 'x'))}.jpg" for i in range(n)],
            "text": [
                rng.choice(("an adult cat", "Asian food", "desi", "", None)) for _ in range(n)
            ],
            "original_width": pa.array([rng.choice((None, 800)) for _ in range(n)], pa.int64()),
            "original_height": pa.array([rng.choice((None, 600)) for _ in range(n)], pa.int64()),
            "clip_b32_similarity_score": [rng.uniform(0.1, 0.5) for _ in range(n)],
            "clip_l14_similarity_score": [rng.uniform(0.1, 0.5) for _ in range(n)],
            "similarity": [0.99] * n,  # a decoy: DataComp's score is clip_b32_similarity_score
            "sha256": [f"{i:064x}" for i in range(n)],
        }
    )
    path = write_shard(table, tmp_path, "datacomp-0000.parquet")
    data = table.to_pydict()

    got = scan_shard(path, DATACOMP, BIRHANE2021).to_dict()

    scores = data["clip_b32_similarity_score"]
    assert got["similarity"]["count"] == n
    assert got["similarity"]["below_threshold"] == sum(1 for v in scores if v < 0.3)
    assert got["similarity"]["max"] == max(scores) < 0.99
    assert got["duplicates"] == {"id": 20, "url": 0}
    assert got["keyword_nsfw_rows"] == sum(
        1 for t, u in zip(data["text"], data["url"], strict=True) if _keyword_row(t, u)
    )
    assert got["nulls"]["width"] == data["original_width"].count(None)
    assert got["unavailable"] == ["nsfw_flag_counts"]
    assert "nsfw_flag_counts" not in got
    assert_same_metrics(got, reference_metrics(table, DATACOMP, BIRHANE2021))


# --- CC3M and CC12M: header-less TSVs, column order per profile --------------------------------


def _cc_rows(n: int) -> list[dict[str, str]]:
    """A keyword ('xxx') only in the URL of some rows and only in the caption of others; a
    watched term ('desi') in captions and, as a decoy, in other rows' URLs; repeated URLs."""
    rows = []
    for i in range(n):
        caption = f'caption {i}: a "quoted" word'
        url = f"https://img.example.org/{i - (i % 10 == 9)}.jpg"
        if i % 5 == 0:
            url = url.replace(".jpg", "-xxx.jpg")
        if i % 5 == 1:
            caption += " with xxx"
        if i % 7 == 0:
            caption += " desi"
        if i % 7 == 3:
            url = url.replace("img.", "desi.")
        rows.append({"caption": caption, "url": url})
    return rows


@pytest.mark.unit
@pytest.mark.parametrize("profile", [CC3M, CC12M], ids=["cc3m", "cc12m"])
@pytest.mark.parametrize("suffix", [".tsv", ".tsv.gz"])
def test_cc_profiles_on_headerless_tsv(
    tmp_path: Path, profile: DatasetProfile, suffix: str
) -> None:
    assert profile.header is not None
    n = 400
    rows = _cc_rows(n)
    path = write_delimited(
        tmp_path / f"{profile.name}{suffix}", [[r[c] for c in profile.header] for r in rows]
    )

    got = scan_shard(path, profile, BIRHANE2021).to_dict()

    urls = [r["url"] for r in rows]
    assert got["rows"] == n  # the first line is a row, not a header
    assert got["keyword_nsfw_rows"] == sum(1 for i in range(n) if i % 5 in (0, 1))
    assert got["terms"]["desi"]["matches"] == sum(1 for i in range(n) if i % 7 == 0)
    assert got["duplicates"] == {"url": len(urls) - len(set(urls))}
    assert got["duplicates"]["url"] > 0
    assert got["nulls"] == {"url": 0, "text": 0}
    assert got["unavailable"] == ["duplicates.id", "nsfw_flag_counts", "similarity"]
    ref_rows = [{"caption": r["caption"], "url": r["url"]} for r in rows]
    assert_same_metrics(
        got, reference_metrics(ref_rows, profile, BIRHANE2021, columns=list(profile.header))
    )


@pytest.mark.unit
def test_cc_profiles_need_their_own_column_order(tmp_path: Path) -> None:
    """A CC12M file (url, caption) read as CC3M (caption, url) gives other term counts: the
    header is what decides which column is the caption."""
    rows = _cc_rows(100)
    path = write_delimited(tmp_path / "cc12m.tsv", [[r["url"], r["caption"]] for r in rows])
    right = scan_shard(path, CC12M, BIRHANE2021).to_dict()
    wrong = scan_shard(path, CC3M, BIRHANE2021).to_dict()
    assert right["terms"]["desi"]["matches"] == sum(1 for i in range(100) if i % 7 == 0)
    assert wrong["terms"]["desi"]["matches"] == sum(1 for i in range(100) if i % 7 == 3)


@pytest.mark.integration
def test_cli_scans_csv_and_tsv_files(tmp_path: Path) -> None:
    rows = _cc_rows(50)
    tsv = write_delimited(tmp_path / "cc12m.tsv.gz", [[r["url"], r["caption"]] for r in rows])
    proc = run_shardwatch("scan", str(tsv), "--profile", "cc12m", "--json", "--progress")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["profile"] == "cc12m"
    assert doc["total"]["rows"] == 50
    assert doc["total"]["keyword_nsfw_rows"] == sum(1 for i in range(50) if i % 5 in (0, 1))

    coyo = real_fixture(COYO_FILE)
    proc = run_shardwatch("scan", str(coyo), "--profile", "coyo700m", "--json", "--progress")
    assert proc.returncode == 0, proc.stderr
    shard = json.loads(proc.stdout)["shards"][0]
    assert shard["uri"] == str(coyo)
    assert shard["rows"] == 7 and shard["nsfw_flag_counts"]["UNLIKELY"] == 7

    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"id,text\n1,a,b\n")
    proc = run_shardwatch("scan", str(bad), str(coyo), "--profile", "coyo700m", "--no-progress")
    assert proc.returncode == 3
    assert "malformed CSV row: 3 fields where the header has 2" in proc.stderr


@pytest.mark.unit
def test_punsafe_cross_tab_by_hand(tmp_path: Path) -> None:
    """The tag x (punsafe > 0.5) cross-tab of 6 hand-made rows."""
    table = pa.table(
        {
            "hash": pa.array([1, 2, 3, 4, 5, 6], pa.int64()),
            "URL": [
                "https://a.example/porn.jpg",
                "https://a.example/1.jpg",
                "https://b.example/2.jpg",
                "https://b.example/3.jpg",
                "https://c.example/sex.jpg",
                "https://c.example/4.jpg",
            ],
            "TEXT": ["x", "y", "z", "w", "v", "u"],
            "NSFW": ["UNLIKELY", "UNLIKELY", "NSFW", "UNSURE", None, "UNLIKELY"],
            "similarity": [0.3] * 6,
            "punsafe": [0.9, 0.51, 0.5, float("nan"), 0.7, None],
        }
    )
    path = write_shard(table, tmp_path, "hand.parquet")
    got = scan_shard(path, LAION5B_JOINED, BIRHANE2021)
    # unsafe (> 0.5): rows 1, 2 and 5; 0.5 itself, NaN and null are not.
    assert got.unsafe_rows == 3
    assert got.keyword_unsafe_rows == 2  # rows 1 ("porn" in the URL) and 5 ("sex")
    assert got.unsafe_by_tag == {"UNLIKELY": 2, "UNSURE": 0, "NSFW": 0, "other": 0, "null": 1}
    assert_same_metrics(got.to_dict(), reference_metrics(table, LAION5B_JOINED, BIRHANE2021))


@pytest.mark.unit
def test_punsafe_totals_are_stored_and_summed(tmp_path: Path) -> None:
    from shardwatch.core.metrics import ShardMetrics
    from shardwatch.pipeline.ingest import IngestJob, ingest_shards
    from shardwatch.scan.engine import CompiledLexicon
    from shardwatch.store.database import make_engine, upgrade
    from shardwatch.store.report import dataset_report
    from shardwatch.store.repository import ResultStore

    paths = [
        write_shard(_laion5b_table(500, seed=s), tmp_path, f"part-{s}.parquet") for s in (1, 2)
    ]
    engine = make_engine(f"sqlite:///{tmp_path / 'store.sqlite'}")
    upgrade(engine)
    compiled = CompiledLexicon(BIRHANE2021)
    job = IngestJob(
        store=ResultStore(engine),
        dataset="l5b",
        profile=LAION5B_JOINED,
        lexicon=compiled,
        lease_seconds=60,
        max_attempts=None,
    )
    ingest_shards(job, paths)
    total = dataset_report(engine, "l5b").total
    merged = ShardMetrics.merge_all(scan_shard(p, LAION5B_JOINED, compiled) for p in paths)
    assert merged.unsafe_rows is not None and merged.unsafe_rows > 0
    assert (total.unsafe_rows, total.keyword_unsafe_rows) == (
        merged.unsafe_rows,
        merged.keyword_unsafe_rows,
    )
    assert total.unsafe_by_tag == merged.unsafe_by_tag
    engine.dispose()
