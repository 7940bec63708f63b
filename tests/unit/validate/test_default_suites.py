"""The packaged default suites: one per built-in profile; each passes a clean shard of its
profile (in the dataset's real layout and column names) and fails shards built to break it,
on the checks that were broken."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from support.builders import write_shard
from support.delimited import write_delimited

from shardwatch.core.lexicon import BIRHANE2021
from shardwatch.core.profiles import BUILTIN_PROFILES, DatasetProfile, LogicalField
from shardwatch.core.validation import ShardValidation
from shardwatch.scan.engine import scan_shard
from shardwatch.settings.resources import default_suites_dir
from shardwatch.validate.gx_adapter import GxPaths, GxValidator, load_suite

pytestmark = pytest.mark.unit

N = 1000
Rows = dict[LogicalField, list[Any]]  # logical field -> values
TERMS = [p.term for p in BIRHANE2021.terms]


def clean(profile: DatasetProfile, n: int = N, seed: int = 3) -> Rows:
    """What a good shard of `profile` holds, by logical field: unique ids, http(s) URLs,
    a low NSFW rate (0.4%), 5% keyword rows never on a watched term, similarities above
    the cut-off, positive sizes; every watched term in some captions."""
    rng = random.Random(seed)
    low = profile.similarity_threshold if profile.name.startswith("laion") else 0.1
    text = []
    for i in range(n):
        words = ["a", "picture", "of", "a", "garden"]
        if i % 4 == 0:
            words.insert(3, TERMS[i % len(TERMS)])
        elif i % 20 == 1:
            words.append("adult")
        text.append(" ".join(words))
    nsfw_row = [i % 250 == 3 for i in range(n)]
    rows: Rows = {
        "id": [f"{i:032x}" if profile.name == "datacomp" else 10_000 + i for i in range(n)],
        "url": [f"https://img.example/{i}.jpg" for i in range(n)],
        "text": text,
        "similarity": [rng.uniform(low, 0.9) for _ in range(n)],
        "width": [rng.randint(1, 1000) for _ in range(n)],
        "height": [rng.randint(1, 1000) for _ in range(n)],
        "license": ["?"] * n,
        "unsafe_score": [rng.uniform(0, 0.4) for _ in range(n)],
        "watermark": [rng.uniform(0, 0.4) for _ in range(n)],
    }
    if profile.nsfw_signal == "score":
        rows["nsfw_tag"] = [0.9 if bad else rng.uniform(0, 0.4) for bad in nsfw_row]
    else:
        labels = ("UNLIKELY", "UNSURE")
        rows["nsfw_tag"] = ["NSFW" if bad else rng.choice(labels) for bad in nsfw_row]
    return rows


def write(profile: DatasetProfile, rows: Rows, directory: Path) -> Path:
    """The shard as its dataset ships it: parquet with the profile's column names, or a
    header-less TSV in the profile's column order."""
    if profile.header is not None:
        by_column = {profile.column(f): values for f, values in rows.items() if profile.column(f)}
        lines = list(zip(*(by_column[c] for c in profile.header), strict=True))
        return write_delimited(directory / f"{profile.name}.tsv", lines)
    columns = {c: rows[f] for f, c in profile.columns.items() if c is not None}
    return write_shard(pa.table(columns), directory, f"{profile.name}.parquet")


def validate(validator: GxValidator, profile: DatasetProfile, path: Path) -> ShardValidation:
    batches: list[pa.RecordBatch] = []
    scan_shard(path, profile, BIRHANE2021, on_features=batches.append)
    return validator.validate(pa.Table.from_batches(batches), "suites", 1, 1)


def every(step: int, value: Any, field: LogicalField) -> Callable[[Rows], None]:
    def mutate(rows: Rows) -> None:
        rows[field] = [value if i % step == 0 else v for i, v in enumerate(rows[field])]

    return mutate


def duplicate_ids(rows: Rows) -> None:
    rows["id"] = [v if i % 10 else rows["id"][0] for i, v in enumerate(rows["id"])]


def keyword_rows(rows: Rows) -> None:  # 60% of captions hold a keyword
    rows["text"] = [t + (" porn" if i % 5 < 3 else "") for i, t in enumerate(rows["text"])]


def nsfw(value: Any) -> Callable[[Rows], None]:
    return every(10, value, "nsfw_tag")  # 10% NSFW: above every suite's limit


NOT_IN = "expect_column_values_to_not_be_in_set"
IN_SET = "expect_column_values_to_be_in_set"
BETWEEN = "expect_column_values_to_be_between"
MEAN = "expect_column_mean_to_be_between"
UNIQUE = "expect_column_values_to_be_unique"
NOT_NULL = "expect_column_values_to_not_be_null"
# profile -> [(how the shard is broken, the (expectation, column) checks that must fail)]
BREAKS: dict[str, list[tuple[Callable[[Rows], None], set[tuple[str, str]]]]] = {
    "laion400m": [
        (nsfw("NSFW"), {(NOT_IN, "nsfw_tag")}),
        (every(7, 0.2, "similarity"), {(BETWEEN, "similarity")}),
    ],
    "laion5b-joined": [
        (duplicate_ids, {(UNIQUE, "id")}),
        (every(7, 0.25, "similarity"), {(BETWEEN, "similarity")}),  # below LAION-5B's 0.28
        (nsfw("NSFW"), {(NOT_IN, "nsfw_tag")}),
    ],
    "coyo700m": [
        (nsfw(0.9), {(NOT_IN, "nsfw_tag")}),
        (every(9, None, "nsfw_tag"), {(IN_SET, "nsfw_tag")}),  # rows without a score
        (every(11, 0, "width"), {(BETWEEN, "width")}),
    ],
    "datacomp": [
        (duplicate_ids, {(UNIQUE, "id")}),
        (every(13, None, "id"), {(NOT_NULL, "id")}),
        (keyword_rows, {(MEAN, "keyword_nsfw")}),
    ],
    "cc3m": [
        (every(8, "ftp://img.example/x.jpg", "url"), {(IN_SET, "url_scheme")}),
        (keyword_rows, {(MEAN, "keyword_nsfw")}),
    ],
    "cc12m": [
        (every(8, "img.example/no-scheme.jpg", "url"), {(IN_SET, "url_scheme")}),
        (keyword_rows, {(MEAN, "keyword_nsfw")}),
    ],
}


def test_every_builtin_profile_has_a_packaged_default_suite() -> None:
    folder = default_suites_dir()
    assert sorted(p.stem for p in folder.glob("*.json")) == sorted(BUILTIN_PROFILES)
    assert sorted(BREAKS) == sorted(BUILTIN_PROFILES)
    for name in BUILTIN_PROFILES:
        suite = load_suite(folder / f"{name}.json")
        assert suite["meta"]["profile"] == name
        notes = [e.get("meta", {}).get("notes") for e in suite["expectations"]]
        assert all(notes), f"{name}: every threshold is explained in its notes"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("suites")


@pytest.mark.parametrize("name", sorted(BUILTIN_PROFILES))
def test_the_default_suite_passes_a_clean_shard_and_fails_broken_ones(
    name: str, base: Path, tmp_path: Path
) -> None:
    profile = BUILTIN_PROFILES[name]
    # no suites_dir: the packaged default is used, whatever the working directory
    validator = GxValidator(GxPaths(base / "gx", base / "docs"), None, name)
    suite = load_suite(default_suites_dir() / f"{name}.json")

    ok = validate(validator, profile, write(profile, clean(profile), tmp_path))
    assert ok.success, [c.describe() for c in ok.checks if c.status != "passed"]
    assert len(ok.checks) == len(suite["expectations"])
    covered = {c.column for c in ok.checks if c.column}
    column_set = set(suite["expectations"][0]["kwargs"]["column_set"])
    assert column_set <= covered  # each of the profile's feature columns is checked

    for i, (mutate, expected) in enumerate(BREAKS[name]):
        rows = clean(profile)
        mutate(rows)
        folder = tmp_path / f"broken-{i}"
        folder.mkdir()
        v = validate(validator, profile, write(profile, rows, folder))
        failed = {(c.expectation, c.column) for c in v.checks if c.status == "failed"}
        assert not v.success and expected <= failed, (i, sorted(failed))
        assert not [c.describe() for c in v.checks if c.status == "errored"]
