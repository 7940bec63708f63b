"""profile_hint.py: a CSV/TSV file that does not fit the default profile is named a fit."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from support.builders import real_fixture

from shardwatch.scan.profile_hint import header_row, looks_headerless, profile_problem
from shardwatch.scan.reader import TextFormat
from shardwatch.settings.config import load_settings

pytestmark = pytest.mark.unit

HEADERLESS_HINT = "header-less: pass --profile cc3m|cc12m"


def _tsv(path: Path, rows: list[list[str]]) -> Path:
    data = "".join("\t".join(r) + "\n" for r in rows).encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def test_coyo_csv_without_a_profile_names_coyo700m() -> None:
    coyo = real_fixture("coyo700m_sample_rows.csv")
    problem = profile_problem([coyo], load_settings(None))
    assert problem is not None
    assert "pass --profile coyo700m" in problem and "fit profile coyo700m" in problem


@pytest.mark.parametrize("name", ["cc3m.tsv", "cc3m.tsv.gz"])
def test_headerless_tsv_says_headerless(tmp_path: Path, name: str) -> None:
    path = _tsv(tmp_path / name, [["a dog on a beach", "http://example.com/1.jpg"]] * 3)
    problem = profile_problem([path], load_settings(None))
    assert problem is not None and HEADERLESS_HINT in problem
    assert "a dog" not in problem and "example.com" not in problem  # data is never echoed


def test_headerless_tsv_with_a_malformed_row_still_gets_the_hint(tmp_path: Path) -> None:
    path = _tsv(tmp_path / "m.tsv", [["cap", "https://x/1"], ["a", "b", "c"]])
    problem = profile_problem([path], load_settings(None))
    assert problem is not None and HEADERLESS_HINT in problem


def test_a_chosen_profile_is_never_second_guessed(tmp_path: Path) -> None:
    path = _tsv(tmp_path / "cc.tsv", [["caption", "http://x/1"]])
    coyo = real_fixture("coyo700m_sample_rows.csv")
    assert profile_problem([path, coyo], load_settings(None, profile="cc3m")) is None
    assert profile_problem([coyo], load_settings(None, profile="laion400m")) is None


def test_fitting_csv_and_parquet_pass(tmp_path: Path) -> None:
    fits = tmp_path / "laion.csv"
    fits.write_text(
        "SAMPLE_ID,URL,TEXT,HEIGHT,WIDTH,LICENSE,NSFW,similarity\n1,http://x,cap,1,1,?,NSFW,0.3\n"
    )
    parquet = real_fixture("laion400m_url_text_10000.parquet")
    assert profile_problem([fits, parquet], load_settings(None)) is None


def test_csv_fitting_no_profile_lists_them_all(tmp_path: Path) -> None:
    odd = tmp_path / "odd.csv"
    odd.write_text("foo,bar\n1,2\n")
    problem = profile_problem([odd], load_settings(None))
    assert problem is not None and "matches no profile" in problem
    for name in ("laion400m", "coyo700m", "datacomp", "cc3m", "cc12m"):
        assert name in problem


def test_header_row_and_headerless_detection(tmp_path: Path) -> None:
    csv = tmp_path / "q.csv"
    csv.write_text('"a,b",c\n1,2\n')
    assert header_row(csv, TextFormat("csv", False)) == ["a,b", "c"]
    assert header_row(tmp_path / "missing.csv", TextFormat("csv", False)) is None
    assert looks_headerless(["caption", "https://example.com/x.jpg"])
    assert not looks_headerless(["url", "text"])
