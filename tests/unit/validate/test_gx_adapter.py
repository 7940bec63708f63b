"""The GX adapter: the default suite's verdicts, GX's numbers against the engine's, errors
versus failures, get-or-add reruns, pruning and strict suite checking."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from support.builders import adversarial_table, laion_schema, rows_to_table, write_shard
from support.gx_rows import clean_rows, table

from shardwatch.core.lexicon import BIRHANE2021
from shardwatch.core.metrics import ShardMetrics
from shardwatch.core.profiles import BUILTIN_PROFILES
from shardwatch.core.validation import Check, ShardValidation
from shardwatch.scan.engine import scan_shard
from shardwatch.scan.features import term_columns
from shardwatch.validate.gx_adapter import (
    GxPaths,
    GxValidator,
    SuiteError,
    check_suites,
    load_suite,
    run_name,
    suite_path,
)

pytestmark = pytest.mark.unit

SUITES = Path(__file__).resolve().parents[3] / "expectations"
SUITE = "laion400m"
TERM_COLUMNS = dict(
    zip((p.term for p in BIRHANE2021.terms), term_columns(BIRHANE2021), strict=True)
)


@pytest.fixture(scope="module")
def validator(tmp_path_factory: pytest.TempPathFactory) -> GxValidator:
    base = tmp_path_factory.mktemp("gx")
    return GxValidator(GxPaths(base / "gx", base / "docs"), SUITES, SUITE)


def features_and_metrics(table: pa.Table, directory: Path) -> tuple[pa.Table, ShardMetrics]:
    batches: list[pa.RecordBatch] = []
    from shardwatch.core.profiles import LAION400M

    path = write_shard(table, directory)
    metrics = scan_shard(path, LAION400M, BIRHANE2021, batch_size=700, on_features=batches.append)
    return pa.Table.from_batches(batches), metrics


def validate(validator: GxValidator, table: pa.Table, directory: Path) -> ShardValidation:
    features, _ = features_and_metrics(table, directory)
    return validator.validate(features, "tests", 1, 1)


def find(v: ShardValidation, expectation: str, column: str | None, condition: str | None = None,
         value_set: list[Any] | None = None) -> Check:
    found = [
        c for c in v.checks
        if c.expectation == expectation and c.column == column and c.condition == condition
        and (value_set is None or (c.threshold or {}).get("value_set") == value_set)
    ]
    assert len(found) == 1, (expectation, column, condition, [c.describe() for c in v.checks])
    return found[0]


# --- a clean LAION-like shard, and shards built to break one expectation each --------------

def _set(field: str, value: Any, rows_idx: range) -> Callable[[list[dict[str, Any]]], None]:
    def mutate(rows: list[dict[str, Any]]) -> None:
        for i in rows_idx:
            rows[i][field] = value
    return mutate


def _add_keyword_to_term(term: str, share: float) -> Callable[[list[dict[str, Any]]], None]:
    def mutate(rows: list[dict[str, Any]]) -> None:
        hits = [r for r in rows if f" {term} " in f" {r['TEXT']} "]
        for r in hits[: int(len(hits) * share)]:
            r["TEXT"] += " xxx"
    return mutate


def _duplicate_ids(rows: list[dict[str, Any]]) -> None:
    for i in range(1, 5):
        rows[i]["SAMPLE_ID"] = 0


# expectation, column, condition, value_set (to tell two set checks apart), mutation,
# and how to count the unexpected rows (or the observed mean) straight from the rows.
BREAKERS: dict[str, tuple[str, str | None, str | None, Any, Callable[..., object],
                          Callable[[list[dict[str, Any]]], Any]]] = {
    "id not null": (
        "expect_column_values_to_not_be_null", "id", None, None,
        _set("SAMPLE_ID", None, range(10, 13)),
        lambda rows: sum(r["SAMPLE_ID"] is None for r in rows),
    ),
    "id unique": (
        "expect_column_values_to_be_unique", "id", None, None, _duplicate_ids,
        lambda rows: sum(
            n for n in Counter(r["SAMPLE_ID"] for r in rows).values() if n > 1
        ),
    ),
    "url not null": (
        "expect_column_values_to_not_be_null", "url_scheme", None, None,
        _set("URL", None, range(20, 22)),
        lambda rows: sum(r["URL"] is None for r in rows),
    ),
    "url http": (
        "expect_column_values_to_be_in_set", "url_scheme", None, ["http(s)"],
        _set("URL", "ftp://files.example/x", range(30, 33)),
        lambda rows: sum(not str(r["URL"]).startswith(("http://", "https://")) for r in rows),
    ),
    "tag in label set": (
        "expect_column_values_to_be_in_set", "nsfw_tag", None, ["UNLIKELY", "UNSURE", "NSFW"],
        _set("NSFW", "maybe", range(40, 44)),
        lambda rows: sum(r["NSFW"] not in ("UNLIKELY", "UNSURE", "NSFW") for r in rows),
    ),
    "nsfw tag rate": (
        "expect_column_values_to_not_be_in_set", "nsfw_tag", None, ["NSFW"],
        _set("NSFW", "NSFW", range(100, 160)),
        lambda rows: sum(r["NSFW"] == "NSFW" for r in rows),
    ),
    "keyword rate": (
        "expect_column_mean_to_be_between", "keyword_nsfw", None, None,
        lambda rows: [r.update(TEXT=r["TEXT"] + " porn") for r in rows[::3]],
        lambda rows: sum(
            any(k in r["TEXT"].lower() or k in r["URL"].lower()
                for k in ("porn", "hot", "adult", "xxx", "sex", "fuck", "rape"))
            for r in rows
        ) / len(rows),
    ),
    "similarity >= 0.3": (
        "expect_column_values_to_be_between", "similarity", None, None,
        _set("similarity", 0.29999, range(50, 57)),
        lambda rows: sum(not 0.3 <= r["similarity"] <= 1.0 for r in rows),
    ),
    "similarity <= 1": (
        "expect_column_values_to_be_between", "similarity", None, None,
        _set("similarity", 1.0000001, range(60, 62)),
        lambda rows: sum(not 0.3 <= r["similarity"] <= 1.0 for r in rows),
    ),
    "width > 0": (
        "expect_column_values_to_be_between", "width", None, None,
        _set("WIDTH", 0.0, range(70, 73)),
        lambda rows: sum(r["WIDTH"] <= 0 for r in rows),
    ),
    "height > 0": (
        "expect_column_values_to_be_between", "height", None, None,
        _set("HEIGHT", -1.0, range(80, 81)),
        lambda rows: sum(r["HEIGHT"] <= 0 for r in rows),
    ),
    "term desi keyword rate": (
        "expect_column_values_to_not_be_in_set", "keyword_nsfw", "term_desi == True", None,
        _add_keyword_to_term("desi", 0.5),
        lambda rows: sum(" desi " in f" {r['TEXT']} " and "xxx" in r["TEXT"] for r in rows),
    ),
}


def test_clean_shard_passes_every_default_expectation(
    validator: GxValidator, tmp_path: Path
) -> None:
    v = validate(validator, table(clean_rows()), tmp_path)
    assert [c.describe() for c in v.checks if c.status != "passed"] == []
    suite = load_suite(SUITES / f"{SUITE}.json")
    assert len(v.checks) == len(suite["expectations"]) >= 11 + len(BIRHANE2021.terms)
    for term, column in TERM_COLUMNS.items():  # each term is judged on real matches
        check = find(v, "expect_column_values_to_not_be_in_set", "keyword_nsfw",
                     f"{column} == True")
        assert check.observed is not None and check.observed["element_count"] > 0, term


@pytest.mark.parametrize("name", list(BREAKERS))
def test_each_default_expectation_fails_on_a_shard_built_to_break_it(
    validator: GxValidator, tmp_path: Path, name: str
) -> None:
    expectation, column, condition, value_set, mutate, expected = BREAKERS[name]
    rows = clean_rows()
    mutate(rows)
    v = validate(validator, table(rows), tmp_path)
    check = find(v, expectation, column, condition, value_set)
    assert check.status == "failed", check.describe()
    assert check.observed is not None
    want = expected(rows)
    if "observed_value" in check.observed:
        assert check.observed["observed_value"] == pytest.approx(want, abs=0, rel=1e-15)
    else:
        assert check.observed["unexpected_count"] == want
    others = [c for c in v.checks if c.status != "passed" and c is not check]
    if name == "keyword rate":  # 'porn' on every third row also lifts the term rates
        assert {(c.column, c.status) for c in others} == {("keyword_nsfw", "failed")}
    else:  # each breaker breaks its own check and nothing else
        assert [c.describe() for c in others] == []


def test_a_missing_column_is_an_errored_check_not_a_data_failure(
    validator: GxValidator, tmp_path: Path
) -> None:
    v = validate(validator, table(clean_rows()).drop_columns(["similarity"]), tmp_path)
    similarity = find(v, "expect_column_values_to_be_between", "similarity")
    assert similarity.status == "errored"
    assert similarity.reason is not None and "similarity" in similarity.reason
    assert similarity.describe().endswith(f"check errored: {similarity.reason}")
    schema = find(v, "expect_table_columns_to_match_set", None)
    assert schema.status == "failed"  # the schema check itself is a data verdict
    assert schema.observed is not None
    seen = schema.observed["observed_value"]
    assert "similarity" not in seen and {"id", "width", "keyword_nsfw", "term_desi"} <= set(seen)
    assert [c.status for c in v.checks].count("errored") == 1


@pytest.mark.parametrize("seed", [3, 4])
def test_gx_rates_equal_the_engine_rates(validator: GxValidator, tmp_path: Path, seed: int) -> None:
    source = adversarial_table(3000, seed, int_ids=True)
    features, metrics = features_and_metrics(source, tmp_path)
    v = validator.validate(features, "tests", seed, 1)
    tags = metrics.nsfw_flag_counts
    assert tags is not None and metrics.terms is not None and metrics.similarity is not None
    nsfw = find(v, "expect_column_values_to_not_be_in_set", "nsfw_tag", value_set=["NSFW"])
    assert nsfw.observed is not None
    assert nsfw.observed["unexpected_count"] == tags["NSFW"]
    assert nsfw.observed["element_count"] == metrics.rows
    labels = find(v, "expect_column_values_to_be_in_set", "nsfw_tag")
    assert labels.observed is not None
    assert labels.observed["unexpected_count"] == tags["other"] + tags["null"]
    keyword = find(v, "expect_column_mean_to_be_between", "keyword_nsfw")
    assert keyword.observed is not None and metrics.keyword_nsfw_rows is not None
    assert keyword.observed["observed_value"] == metrics.keyword_nsfw_rows / metrics.rows
    judged = 0
    for term, stats in metrics.terms.items():
        check = find(v, "expect_column_values_to_not_be_in_set", "keyword_nsfw",
                     f"{TERM_COLUMNS[term]} == True")
        assert check.observed is not None
        assert check.observed["element_count"] == stats.matches, term
        assert check.observed["unexpected_count"] == stats.keyword_nsfw, term
        judged += stats.matches > 0
    assert judged >= 5  # the comparison covered real matches, not only empty conditions
    sim = metrics.similarity
    between = find(v, "expect_column_values_to_be_between", "similarity")
    assert between.observed is not None
    assert between.observed["unexpected_count"] == sim.below_threshold + sim.histogram.overflow
    assert between.observed["missing_count"] == sim.null


def test_text_ids_are_codes_and_uniqueness_stays_exact(
    validator: GxValidator, tmp_path: Path
) -> None:
    rows = clean_rows(300)
    for i, r in enumerate(rows):
        r["SAMPLE_ID"] = f"<script>id{i % 290}</script>"  # 10 ids used twice: 20 rows
    source = rows_to_table(rows, laion_schema(int_ids=True).set(
        0, pa.field("SAMPLE_ID", pa.string())))
    v = validate(validator, source, tmp_path)
    unique = find(v, "expect_column_values_to_be_unique", "id")
    assert unique.observed is not None and unique.observed["unexpected_count"] == 20
    page = Path(v.docs_page or "")
    validator.publish(v)
    assert page.is_file() and "<script>id" not in page.read_text()


def test_reruns_get_or_add_every_gx_object_and_pick_up_suite_edits(tmp_path: Path) -> None:
    suites = tmp_path / "suites"
    suites.mkdir()
    shutil.copy(SUITES / f"{SUITE}.json", suites / f"{SUITE}.json")
    paths = GxPaths(tmp_path / "gx", tmp_path / "docs")
    source = table(clean_rows(400))
    first = GxValidator(paths, suites, SUITE).validate(
        features_and_metrics(source, tmp_path)[0], "d", 1, 1)
    assert first.success
    suite = json.loads((suites / f"{SUITE}.json").read_text())
    suite["expectations"] = [e for e in suite["expectations"]
                             if e["kwargs"].get("column") != "width"]
    (suites / f"{SUITE}.json").write_text(json.dumps(suite))
    before = (suites / f"{SUITE}.json").read_bytes()
    again = GxValidator(paths, suites, SUITE)  # a new process would do the same
    second = again.validate(features_and_metrics(source, tmp_path)[0], "d", 1, 2)
    assert len(second.checks) == len(first.checks) - 1
    assert not any(c.column == "width" for c in second.checks)
    assert (suites / f"{SUITE}.json").read_bytes() == before  # GX never rewrites our file
    again.publish(second)
    assert Path(second.docs_page or "").is_file()


def test_prune_keeps_the_newest_results_and_their_pages(tmp_path: Path) -> None:
    paths = GxPaths(tmp_path / "gx", tmp_path / "docs")
    v = GxValidator(paths, SUITES, SUITE, keep_results=2)
    source = table(clean_rows(200))
    done = []
    for version in range(1, 5):
        result = v.validate(features_and_metrics(source, tmp_path)[0], "d", 7, version)
        v.publish(result)
        done.append(result)
    assert all(Path(r.docs_page or "").is_file() for r in done)
    assert v.prune() == 2
    kept = [Path(r.docs_page or "").is_file() for r in done]
    assert kept == [False, False, True, True]
    index = v.rebuild_index().read_text()  # the index alone, not every page
    assert run_name("d", 7, 4) in index and run_name("d", 7, 3) in index
    assert run_name("d", 7, 1) not in index and run_name("d", 7, 2) not in index
    assert v.build_docs(clean=True).read_text().count("shard-7.v") == index.count("shard-7.v")
    assert v.prune() == 0


def test_discard_forgets_an_unstored_result(tmp_path: Path) -> None:
    v = GxValidator(GxPaths(tmp_path / "gx", tmp_path / "docs"), SUITES, SUITE)
    result = v.validate(features_and_metrics(table(clean_rows(100)), tmp_path)[0], "d", 1, 1)
    v.discard(result)
    assert v.prune() == 0
    assert "shard-1" not in v.build_docs(clean=True).read_text()


def test_run_names_are_safe_slugs() -> None:
    assert run_name("<img src=x onerror=alert(1)>", 3, 2) == "img_src_x_onerror_alert_1.shard-3.v2"
    assert run_name("", 1, 1) == "dataset.shard-1.v1"


# --- strict suite files -------------------------------------------------------------------

GOOD = {"type": "expect_column_values_to_be_between",
        "kwargs": {"column": "similarity", "min_value": 0.3}}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON (line 1"),
        (json.dumps([GOOD]), "a suite is a JSON object"),
        (json.dumps({"name": "other", "expectations": [GOOD]}), "'name' must be 'bad'"),
        (json.dumps({"name": "bad", "expectations": []}), "non-empty list"),
        (json.dumps({"name": "bad", "expectations": [
            GOOD, {"type": "expect_column_values_to_be_betwen", "kwargs": {"column": "x"}}]}),
         "expectation 2: unknown expectation type 'expect_column_values_to_be_betwen'"),
        (json.dumps({"name": "bad", "expectations": [
            {"type": "expect_column_values_to_be_between",
             "kwargs": {"column": "x", "mostly": 3}}]}),
         "expectation 1 (expect_column_values_to_be_between): invalid kwargs"),
        (json.dumps({"name": "bad", "expectations": [
            {**GOOD, "meta": {"notes": "<img src=x onerror=alert(1)>"}}]}),
         "looks like HTML markup"),
    ],
)
def test_a_bad_suite_file_is_named_with_its_problem(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert str(info.value).startswith(f"{path}: ")
    assert problem in str(info.value)
    (tmp_path / "good.json").write_text(json.dumps({"name": "good", "expectations": [GOOD]}))
    files, problems = check_suites(tmp_path)
    assert [f.name for f in files] == ["bad.json", "good.json"]
    assert problems == [str(info.value)]


def test_the_shipped_suites_are_valid() -> None:
    files, problems = check_suites(SUITES)
    assert problems == [] and [f.stem for f in files] == sorted(BUILTIN_PROFILES)
    notes = "<= 1%"  # a '<' that cannot open a tag is fine in notes
    assert any(notes in (e.get("meta") or {}).get("notes", "")
               for e in load_suite(SUITES / f"{SUITE}.json")["expectations"])


@pytest.mark.parametrize("name", ["../x", "a/b", "<b>", ""])
def test_a_suite_name_must_be_a_plain_slug(name: str) -> None:
    with pytest.raises(SuiteError, match="use only letters, digits"):
        suite_path(SUITES, name)


# --- large shards: validated in parts, merged exactly -------------------------------------


@pytest.mark.parametrize("seed", [3, 6])
def test_parts_merge_to_exactly_the_single_run_checks(tmp_path: Path, seed: int) -> None:
    source = adversarial_table(3000, seed, int_ids=True)
    ids = source.column("SAMPLE_ID").to_pylist()
    for i in (0, 97, 194, 291):  # duplicated ids spread over the first parts
        ids[i] = i // 2
    source = source.set_column(
        source.schema.get_field_index("SAMPLE_ID"), "SAMPLE_ID", pa.array(ids, pa.int64())
    )
    counts = Counter(v for v in ids if v is not None)
    duplicated_rows = sum(n for n in counts.values() if n > 1)  # every row of a repeated id
    paths = GxPaths(tmp_path / "gx", tmp_path / "docs")
    whole = GxValidator(paths, SUITES, SUITE).validate(
        features_and_metrics(source, tmp_path)[0], "d", 1, 1)
    parted = GxValidator(paths, SUITES, SUITE, max_rows=700).validate(
        features_and_metrics(source, tmp_path)[0], "d", 1, 2)
    assert len(parted.pages) == 5 and len(whole.pages) == 1
    assert [c.status for c in parted.checks] == [c.status for c in whole.checks]
    for a, b in zip(whole.checks, parted.checks, strict=True):
        assert (a.expectation, a.column, a.condition) == (b.expectation, b.column, b.condition)
        assert a.observed is not None and b.observed is not None
        if "unexpected_count" in a.observed:
            for key in ("element_count", "unexpected_count", "missing_count"):
                assert a.observed.get(key) == b.observed.get(key), (a.describe(), key)
        else:
            assert a.observed["observed_value"] == b.observed["observed_value"], a.describe()
    unique = find(parted, "expect_column_values_to_be_unique", "id")
    assert unique.observed is not None and duplicated_rows > 0
    assert unique.observed["unexpected_count"] == duplicated_rows
    assert unique.observed["element_count"] == 3000
    assert unique.observed["missing_count"] == 3000 - sum(counts.values())


def test_parts_without_an_id_column_split_by_position(tmp_path: Path) -> None:
    source = table(clean_rows(900)).drop_columns(["SAMPLE_ID"])
    v = GxValidator(GxPaths(tmp_path / "gx", tmp_path / "docs"), SUITES, SUITE, max_rows=400)
    result = v.validate(features_and_metrics(source, tmp_path)[0], "d", 1, 1)
    assert len(result.pages) == 3
    assert [c.column for c in result.checks if c.status == "errored"] == ["id", "id"]
    keyword = find(result, "expect_column_mean_to_be_between", "keyword_nsfw")
    rows = clean_rows(900)
    assert keyword.observed == {"observed_value": sum("adult" in r["TEXT"] for r in rows) / 900}
    v.publish(result)
    assert all(Path(p).is_file() for p in result.pages)
