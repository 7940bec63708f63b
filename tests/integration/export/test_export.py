"""`shardwatch export-flagged`: every rule's rows equal the stored report's figure and an
independent row-by-row computation (tests/support/reference.py's matching helpers); captions only on
request; hostile values verbatim; changed, deleted and http(s) shards."""

from __future__ import annotations

import json
import math
import random
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.builders import (
    adversarial_table,
    laion_schema,
    rows_to_table,
    table_with_columns,
    tagged_table,
    write_shard,
)
from support.reference import (
    flag_bucket,
    is_null,
    lower,
    pattern_matches,
    reference_metrics,
    resolve_column,
    tag_string,
)
from support.store_checks import run_shardwatch

from shardwatch.core.metrics import ShardMetrics
from shardwatch.core.profiles import LOGICAL_FIELDS, DatasetProfile
from shardwatch.demo.run import serve_folder, write_manifest
from shardwatch.export.flagged import ExportRequest, ExportSummary
from shardwatch.pipeline.export import export_flagged
from shardwatch.pipeline.ingest import IngestJob, ingest_shards
from shardwatch.pipeline.monitor import discover, process
from shardwatch.pipeline.resources import Resources
from shardwatch.scan.engine import CompiledLexicon
from shardwatch.settings.config import Settings, load_settings
from shardwatch.store.database import make_engine, upgrade
from shardwatch.store.report import dataset_report
from shardwatch.store.repository import ResultStore

pytestmark = pytest.mark.integration

DATASET = "export-test"
PROFILE = "laion-punsafe"  # laion400m plus LAION-5B's punsafe as the second score
FIXED_RULES = (
    "keyword-nsfw",
    "tag-nsfw",
    "keyword-nsfw-tagged-unlikely",
    "below-similarity-cutoff",
    "unsafe-score",
    "any-nsfw",
)
# The report's figure each rule's row count must equal.
REPORT_FIGURE: dict[str, Callable[[ShardMetrics], int | None]] = {
    "keyword-nsfw": lambda t: t.keyword_nsfw_rows,
    "tag-nsfw": lambda t: (t.nsfw_flag_counts or {})["NSFW"],
    "keyword-nsfw-tagged-unlikely": lambda t: (t.keyword_nsfw_by_tag or {})["UNLIKELY"],
    "below-similarity-cutoff": lambda t: t.similarity.below_threshold if t.similarity else None,
    "unsafe-score": lambda t: t.unsafe_rows,
}
CANARY = "CAPTION-CANARY-5e1f0b"  # a caption no other byte sequence in the file spells


# --- shards -------------------------------------------------------------------------------


def with_punsafe(table: pa.Table, seed: int) -> pa.Table:
    """`table` plus a punsafe column: uniform scores and edge values around the 0.5 cut-off."""
    rng = random.Random(seed)
    edges = (None, float("nan"), float("inf"), 0.5, math.nextafter(0.5, 1), 0.0, 1.0)
    values = [
        rng.choice(edges) if rng.random() < 0.3 else rng.random() for _ in range(table.num_rows)
    ]
    return table.append_column("punsafe", pa.array(values, type=pa.float64()))


def row(
    text: Any,
    url: Any,
    tag: str | None = "UNLIKELY",
    sim: float = 0.35,
    punsafe: float | None = 0.1,
    sample_id: float = 1.0,
) -> dict[str, Any]:
    """One LAION row with a punsafe score (sizes and license are filler)."""
    filler = {"HEIGHT": 1.0, "WIDTH": 1.0, "LICENSE": "?"}
    return {
        "SAMPLE_ID": sample_id,
        "URL": url,
        "TEXT": text,
        "NSFW": tag,
        "similarity": sim,
        "punsafe": punsafe,
        **filler,
    }


# Flagged by keyword-nsfw, keyword-nsfw-tagged-unlikely, below-similarity-cutoff, unsafe-score,
# any-nsfw, term:desi and term:nun at once (and not by tag-nsfw).
MANY_RULES = row("hot desi nun", "http://example.org/a.jpg", "UNLIKELY", 0.1, 0.9, 4242424.0)
MANY_REASONS = [
    "keyword-nsfw",
    "keyword-nsfw-tagged-unlikely",
    "below-similarity-cutoff",
    "unsafe-score",
    "any-nsfw",
    "term:desi",
    "term:nun",
]


def hostile_rows(binary: bool) -> list[dict[str, Any]]:
    """Captions and URLs a reviewer's tools must treat as data; every row is keyword-NSFW.
    Binary columns also carry invalid UTF-8."""
    values: list[tuple[Any, Any]] = [
        ("<script>alert(1)</script> hot", "https://x.example/<script>alert(1)</script>.jpg"),
        ("nul\x00byte xxx", "http://e.example/a\x00b.jpg"),
        ('"quoted",\ttab\nnewline sex \u202eevil', "javascript:alert(1)//porn"),
        ("[bold red]markup[/] adult", "http://e.example/[blink]x[/blink]/adult.jpg"),
    ]
    if binary:
        values = [(t.encode(), u.encode()) for t, u in values]
        values += [
            (b"\xff\xfe invalid porn \xc3", b"http://e.example/\xff\xfeporn.jpg"),
            (b"ok caption xxx", b"http://e.example/\xc3\x28/rape.jpg"),
        ]
    return [row(t, u, sample_id=float(900 + i)) for i, (t, u) in enumerate(values)]


def shard_tables() -> dict[str, pa.Table]:
    """Three shards: float ids with string columns (plus hostile strings, the many-rules row
    and a caption canary), integer ids, and binary URL/TEXT columns with invalid UTF-8."""
    schema = laion_schema().append(pa.field("punsafe", pa.float64()))
    extra = [*hostile_rows(False), MANY_RULES, row(f"{CANARY} porn", "http://e.example/c.jpg")]
    a = pa.concat_tables(
        [with_punsafe(adversarial_table(700, 31, shuffle=False), 31), rows_to_table(extra, schema)]
    )
    b = with_punsafe(adversarial_table(500, 32, int_ids=True), 32)
    binary = laion_schema(url_type=pa.binary(), text_type=pa.binary())
    c_base = adversarial_table(300, 33, shuffle=False, url_type=pa.binary(), text_type=pa.binary())
    c_hostile = rows_to_table(hostile_rows(True), binary.append(pa.field("punsafe", pa.float64())))
    c = pa.concat_tables([with_punsafe(c_base, 33), c_hostile])
    return {"a.parquet": a, "b.parquet": b, "c.parquet": c}


# --- the independent per-row computation --------------------------------------------------


def as_str(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def text_and_raw(value: Any) -> tuple[str | None, bytes | None]:
    """What the export writes for a URL or caption: the text, and the bytes if not UTF-8."""
    if not isinstance(value, bytes):
        return value, None
    try:
        return value.decode("utf-8"), None
    except UnicodeDecodeError:
        return value.decode("utf-8", "replace"), value


def id_string(value: Any) -> str | None:
    if is_null(value):
        return None
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**63 else repr(value)
    return str(value)


def oracle(table: pa.Table, profile: DatasetProfile, lexicon: Any) -> list[dict[str, Any]]:
    """Per row: its reasons (fixed rules in their documented order, then terms in lexicon
    order), id, URL and caption, by a plain Python loop over the rows."""
    names = table.column_names
    col: dict[str, str | None] = {
        f: resolve_column(names, profile.column(f)) for f in LOGICAL_FIELDS
    }
    out = []
    for values in table.to_pylist():

        def get(field: str, values: dict[str, Any] = values) -> Any:
            name = col[field]
            return None if name is None else values[name]

        text, url = lower(as_str(get("text"))), lower(as_str(get("url")))
        hay = [h for h, f in ((text, "text"), (url, "url")) if col[f] is not None]
        keyword = any(pattern_matches(k, h) for k in lexicon.keywords for h in hay)
        bucket = flag_bucket(tag_string(get("nsfw_tag")), profile.nsfw_labels)
        sim, score = get("similarity"), get("unsafe_score")
        flags = {
            "keyword-nsfw": keyword,
            "tag-nsfw": col["nsfw_tag"] is not None and bucket == "NSFW",
            "keyword-nsfw-tagged-unlikely": keyword and bucket == "UNLIKELY",
            "below-similarity-cutoff": not is_null(sim) and sim < profile.similarity_threshold,
            "unsafe-score": not is_null(score) and score > profile.unsafe_threshold,
        }
        flags["any-nsfw"] = flags["keyword-nsfw"] or flags["tag-nsfw"] or flags["unsafe-score"]
        reasons = [name for name in FIXED_RULES if flags[name]]
        if col["text"] is not None:
            reasons += [f"term:{p.term}" for p in lexicon.terms if pattern_matches(p, text)]
        url_text, url_raw = text_and_raw(get("url"))
        caption, caption_raw = text_and_raw(get("text"))
        out.append(
            {
                "reasons": reasons,
                "id": id_string(get("id")),
                "url": url_text,
                "url_raw": url_raw,
                "text": caption,
                "text_raw": caption_raw,
            }
        )
    return out


def expected_export(
    shards: dict[str, pa.Table], rule: str, profile: DatasetProfile, lexicon: Any
) -> dict[tuple[str, int], dict[str, Any]]:
    """(shard URI, row) -> the row's expected export, for the rows `rule` flags."""
    found = {}
    for uri, table in shards.items():
        for i, expected in enumerate(oracle(table, profile, lexicon)):
            if rule in expected["reasons"]:
                found[(uri, i)] = expected
    return found


def exported(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    rows = pq.read_table(path).to_pylist()
    keyed = {(r.pop("shard"), r.pop("row")): r for r in rows}
    assert len(keyed) == len(rows)  # (shard, row) is a key
    return keyed


# --- set-up -------------------------------------------------------------------------------


def write_config(tmp_path: Path, database_url: str, body: str = "") -> Path:
    cfg = tmp_path / "shardwatch.toml"
    cfg.write_text(f"""
dataset = "{DATASET}"
profile = "{PROFILE}"
database_url = "{database_url}"
{body}
[profiles.{PROFILE}]
extends = "laion400m"
columns = {{ unsafe_score = "punsafe" }}
# the hostile rows carry the paper's substring keywords ('hot' after a tag, 'adult' ...)
lexicon = "birhane2021"
[validation]
enabled = false
[alerts]
enabled = false
[download]
cache_dir = "{tmp_path / "cache"}"
""")
    return cfg


def ingest_tables(
    store: ResultStore, folder: Path, tables: dict[str, pa.Table], settings: Settings
) -> dict[str, pa.Table]:
    """Write and ingest `tables`; the same tables keyed by their stored URI."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [write_shard(table, folder, name) for name, table in tables.items()]
    job = IngestJob(
        store=store,
        dataset=DATASET,
        profile=settings.dataset_profile(),
        lexicon=CompiledLexicon(settings.active_lexicon()),
        lease_seconds=60,
        workers=1,
        max_attempts=None,
    )
    results = ingest_shards(job, paths)
    assert [r.outcome for r in results] == ["done"] * len(paths)
    return {str(p.resolve()): tables[p.name] for p in paths}


def export(
    store: ResultStore, settings: Settings, rule: str, out: Path, **kw: Any
) -> ExportSummary:
    request = ExportRequest(DATASET, rule, out, batch_size=kw.pop("batch_size", 97), **kw)
    return export_flagged(store.engine, settings, request)


@pytest.fixture
def ingested(
    store: ResultStore, database_url: str, tmp_path: Path
) -> tuple[Settings, dict[str, pa.Table]]:
    settings = load_settings(write_config(tmp_path, database_url))
    return settings, ingest_tables(store, tmp_path / "shards", shard_tables(), settings)


# --- tests --------------------------------------------------------------------------------


def test_every_rule_equals_the_report_and_the_reference(
    store: ResultStore, ingested: tuple[Settings, dict[str, pa.Table]], tmp_path: Path
) -> None:
    """On SQLite and PostgreSQL; batches of 97 rows, so row numbers cross batch edges."""
    settings, shards = ingested
    profile, lexicon = settings.dataset_profile(), settings.active_lexicon()
    total = dataset_report(store, DATASET).total
    # the oracle agrees with the project's reference implementation on every shared count
    for table in shards.values():
        ref = reference_metrics(table, profile, lexicon)
        rows = oracle(table, profile, lexicon)
        count = {name: sum(name in r["reasons"] for r in rows) for name in FIXED_RULES}
        assert count["keyword-nsfw"] == ref["keyword_nsfw_rows"]
        assert count["tag-nsfw"] == ref["nsfw_flag_counts"]["NSFW"]
        assert count["keyword-nsfw-tagged-unlikely"] == ref["keyword_nsfw_by_tag"]["UNLIKELY"]
        assert count["below-similarity-cutoff"] == ref["similarity"]["below_threshold"]
        for term, stats in ref["terms"].items():
            assert sum(f"term:{term}" in r["reasons"] for r in rows) == stats["matches"]

    terms = [f"term:{p.term}" for p in lexicon.terms]
    for rule in [*FIXED_RULES, *terms]:
        out = tmp_path / f"{rule.replace(':', '_')}.parquet"
        summary = export(store, settings, rule, out)
        expected = expected_export(shards, rule, profile, lexicon)
        got = exported(out)
        assert got.keys() == expected.keys(), rule
        for key, want in expected.items():
            assert got[key] == {k: want[k] for k in ("id", "url", "url_raw", "reasons")}, key
        assert summary.rows == len(expected) and not summary.skipped and not summary.unavailable
        if rule.startswith("term:"):
            assert len(got) == (total.terms or {})[rule[5:]].matches, rule
        elif rule in REPORT_FIGURE:
            assert len(got) == REPORT_FIGURE[rule](total), rule
        if rule in FIXED_RULES:
            assert len(got) > 10, rule  # every fixed rule has rows to get right
    assert sum(1 for t in terms if (total.terms or {})[t[5:]].matches) >= 10


def test_a_row_flagged_by_several_rules_lists_them_all(
    store: ResultStore, ingested: tuple[Settings, dict[str, pa.Table]], tmp_path: Path
) -> None:
    settings, _ = ingested
    export(store, settings, "term:nun", tmp_path / "nun.parquet")
    rows = pq.read_table(tmp_path / "nun.parquet").to_pylist()
    (many,) = [r for r in rows if r["id"] == "4242424"]
    assert many["reasons"] == MANY_REASONS
    assert all("term:nun" in r["reasons"] for r in rows)


def test_captions_only_with_text_and_hostile_values_verbatim(
    store: ResultStore, ingested: tuple[Settings, dict[str, pa.Table]], tmp_path: Path
) -> None:
    settings, shards = ingested
    profile, lexicon = settings.dataset_profile(), settings.active_lexicon()
    plain, with_text = tmp_path / "plain.parquet", tmp_path / "text.parquet"
    export(store, settings, "keyword-nsfw", plain)
    export(store, settings, "keyword-nsfw", with_text, with_text=True)

    assert pq.read_schema(plain).names == ["shard", "row", "id", "url", "url_raw", "reasons"]
    assert pq.read_schema(with_text).names[-2:] == ["text", "text_raw"]
    assert CANARY.encode() in with_text.read_bytes()  # the grep below can find a caption ...
    assert CANARY.encode() not in plain.read_bytes()  # ... and none is written without asking

    expected = expected_export(shards, "keyword-nsfw", profile, lexicon)
    got = exported(with_text)
    assert got.keys() == expected.keys()
    for key, want in expected.items():
        assert got[key] == {k: want[k] for k in got[key]}, key
    raws = [r["url_raw"] for r in got.values() if r["url_raw"] is not None]
    assert b"http://e.example/\xff\xfeporn.jpg" in raws  # invalid UTF-8, byte for byte
    texts = {r["text"] for r in got.values()}
    assert {"<script>alert(1)</script> hot", "nul\x00byte xxx"} <= texts
    assert any(r["text_raw"] == b"\xff\xfe invalid porn \xc3" for r in got.values())
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp


def test_an_export_that_flags_nothing_still_has_the_columns(
    store: ResultStore, database_url: str, tmp_path: Path
) -> None:
    settings = load_settings(write_config(tmp_path, database_url))
    ingest_tables(store, tmp_path / "shards", {"clean.parquet": tagged_table(50, 0)}, settings)
    out = tmp_path / "none.parquet"
    summary = export(store, settings, "tag-nsfw", out, with_text=True)
    assert summary.rows == 0
    table = pq.read_table(out)
    assert table.num_rows == 0
    columns = ["shard", "row", "id", "url", "url_raw", "reasons", "text", "text_raw"]
    assert table.schema.names == columns
    assert table.schema.field("reasons").type == pa.list_(pa.string())


def cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_shardwatch("export-flagged", "--config", str(cfg), *args, cwd=cfg.parent)


def test_changed_and_deleted_shards_are_skipped_and_the_rest_written(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, f"sqlite:///{tmp_path / 'store.sqlite'}")
    settings = load_settings(cfg)
    engine = make_engine(settings.database_url.get_secret_value())
    upgrade(engine)
    shards = ingest_tables(ResultStore(engine), tmp_path / "shards", shard_tables(), settings)
    a, b, c = shards
    write_shard(adversarial_table(50, 99), Path(b).parent, Path(b).name)  # changed content
    Path(c).unlink()  # deleted
    out = tmp_path / "kw.parquet"

    proc = cli(cfg, "--rule", "keyword-nsfw", "--out", str(out))
    assert proc.returncode == 3, proc.stderr
    assert f"error: skipped {b}: content changed since it was ingested" in proc.stderr
    assert "the export would not match the report" in proc.stderr
    assert f"error: skipped {c}: no such file" in proc.stderr
    assert "shards: 1 read, 2 skipped" in proc.stdout
    profile, lexicon = settings.dataset_profile(), settings.active_lexicon()
    expected = expected_export({a: shards[a]}, "keyword-nsfw", profile, lexicon)
    assert exported(out).keys() == expected.keys() and expected
    result = json.loads(pq.read_metadata(out).metadata[b"shardwatch.export.result"])
    assert result["complete"] is False and len(result["skipped"]) == 2
    for hostile in ("<script>", CANARY, "javascript:", "e.example"):  # no row value printed
        assert hostile not in proc.stdout + proc.stderr


def test_usage_errors_write_nothing(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, f"sqlite:///{tmp_path / 'store.sqlite'}")
    settings = load_settings(cfg)
    engine = make_engine(settings.database_url.get_secret_value())
    upgrade(engine)
    poor = {"url-text.parquet": table_with_columns(("URL", "TEXT"), 300)}
    ingest_tables(ResultStore(engine), tmp_path / "shards", poor, settings)
    out = tmp_path / "out.parquet"
    unavailable = "rule tag-nsfw cannot be evaluated on any shard read: the shard has"
    cases: list[tuple[Sequence[str], str]] = [
        (["--rule", "nsfw"], "unknown rule 'nsfw'; the rules are: keyword-nsfw, tag-nsfw,"),
        (["--rule", "term:nope"], "no watched term 'nope' in the shards' lexicons; terms: desi"),
        (["--rule", "tag-nsfw"], f"{unavailable} no nsfw_tag column 'NSFW'"),
        (["--rule", "any-nsfw", "--dataset", "nope"], "no dataset 'nope' in the results store"),
    ]
    for args, message in cases:
        proc = cli(cfg, *args, "--out", str(out))
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr
        assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name[0] == "."] == []


def test_a_rule_some_shards_cannot_evaluate_is_noted(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, f"sqlite:///{tmp_path / 'store.sqlite'}")
    settings = load_settings(cfg)
    engine = make_engine(settings.database_url.get_secret_value())
    upgrade(engine)
    tables = {
        "full.parquet": with_punsafe(adversarial_table(400, 51), 51),
        "poor.parquet": table_with_columns(("URL", "TEXT"), 300),
    }
    shards = ingest_tables(ResultStore(engine), tmp_path / "shards", tables, settings)
    out = tmp_path / "low.parquet"
    proc = cli(cfg, "--rule", "below-similarity-cutoff", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    poor = str((tmp_path / "shards" / "poor.parquet").resolve())
    assert (
        f"note: rule below-similarity-cutoff unavailable in {poor}: the shard has no "
        "similarity column 'similarity'"
    ) in proc.stderr
    total = dataset_report(engine, DATASET).total
    assert total.similarity is not None
    assert len(exported(out)) == total.similarity.below_threshold > 0
    profile, lexicon = settings.dataset_profile(), settings.active_lexicon()
    rule = "below-similarity-cutoff"
    assert exported(out).keys() == expected_export(shards, rule, profile, lexicon).keys()


def test_an_http_shard_is_downloaded_verified_and_deleted(tmp_path: Path) -> None:
    web = tmp_path / "web"
    web.mkdir()
    table = with_punsafe(adversarial_table(400, 61), 61)
    write_manifest(web, [write_shard(table, web, "part-0.parquet")])
    db = f"sqlite:///{tmp_path / 'store.sqlite'}"
    with serve_folder(web, port=0) as base:
        source = f'[sources.web]\ntype = "http"\nmanifest = "{base}manifest.json"\n'
        settings = load_settings(write_config(tmp_path, db, source))
        res = Resources(settings)
        found = discover(res)
        assert [process(res, s, None).outcome for s in found.new] == ["done"]
        res.close()
        engine = make_engine(db)
        store = ResultStore(engine)
        out = tmp_path / "kw.parquet"
        summary = export(store, settings, "keyword-nsfw", out)
        uri = base + "part-0.parquet"
        profile, lexicon = settings.dataset_profile(), settings.active_lexicon()
        expected = expected_export({uri: table}, "keyword-nsfw", profile, lexicon)
        assert exported(out).keys() == expected.keys() and expected
        assert summary.rows == dataset_report(engine, DATASET).total.keyword_nsfw_rows
        assert list((tmp_path / "cache").iterdir()) == []  # the download was deleted

        # a host off the allow-list (no configured source names it) is never contacted
        (tmp_path / "bare").mkdir()
        bare = load_settings(write_config(tmp_path / "bare", db))
        refused = export(store, bare, "keyword-nsfw", out)
        origin = base.split("/")[2]  # 127.0.0.1:<port>
        reason = f"download failed: URL with host {origin} is not allowed"
        assert refused.skipped[0].reason == reason

        # the server now serves other bytes: verified, refused, nothing written for it
        write_shard(adversarial_table(30, 62), web, "part-0.parquet")
        changed = export(store, settings, "keyword-nsfw", out)
    assert changed.rows == 0 and changed.shards_read == 0
    assert changed.skipped[0].reason.startswith("content changed since it was ingested")
    assert list((tmp_path / "cache").iterdir()) == []


def test_help_and_readme_document_every_rule() -> None:
    proc = run_shardwatch("export-flagged", "--help")
    assert proc.returncode == 0
    root = Path(__file__).resolve().parents[3]
    readme = (root / "README.md").read_text() + (root / "docs" / "store-and-report.md").read_text()
    assert "shardwatch export-flagged" in readme
    for rule in (*FIXED_RULES, "term:"):
        assert rule in proc.stdout and f"`{rule}" in readme, rule
