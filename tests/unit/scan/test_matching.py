"""Matching: the fast path's building blocks agree with Python's own definitions."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

from shardwatch.scan.matching import (
    ColumnMatcher,
    ascii_mode_problem_chars,
    is_word_char,
    lowered_mode_problem_chars,
    pattern_chunks,
    python_matches,
)

pytestmark = pytest.mark.unit

WORD = re.compile(r"\w")


def test_word_char_is_exactly_re_word_for_every_code_point() -> None:
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        assert is_word_char(ch) == bool(WORD.match(ch)), hex(cp)


def test_problem_characters_cover_the_known_cases() -> None:
    ascii_problem = set(ascii_mode_problem_chars())
    assert {"\u0130", "\u212a"} <= ascii_problem  # İ lower-cases to 'i̇'; KELVIN SIGN to 'k'
    assert all(not ch.isascii() for ch in ascii_problem)
    assert "\u03a3" in lowered_mode_problem_chars()  # capital sigma: context-dependent


def hits(matcher: ColumnMatcher, values: list[str | None]) -> set[tuple[int, str, bool]]:
    occ = matcher.find(pa.array(values, type=pa.large_string()))
    return {
        (int(r), matcher.needles[int(n)], bool(b))
        for r, n, b in zip(occ.rows, occ.needles, occ.bounded, strict=True)
    }


def test_find_reports_positions_and_bounds_like_python() -> None:
    matcher = ColumnMatcher(["desi", "school girl", "hot"])
    values = ["#Desi design", None, "SCHOOL GIRL schoolgirl", "photo hot", "über-desi desiñ"]
    found = hits(matcher, values)
    assert (0, "desi", True) in found and (0, "desi", False) in found
    assert (2, "school girl", True) in found
    assert {(3, "hot", False), (3, "hot", True)} <= found
    assert (4, "desi", True) in found and (4, "desi", False) in found
    assert not any(row == 1 for row, _, _ in found)
    # Every bounded hit is a Python word match, and every row with no bounded hit is not.
    for row, value in enumerate(values):
        low = (value or "").lower()
        for needle in matcher.needles:
            bounded = (row, needle, True) in found
            assert bounded == python_matches(needle, "word", low), (value, needle)


def test_problem_rows_are_left_to_python() -> None:
    matcher = ColumnMatcher(["desi", "fuck"])
    occ = matcher.find(pa.array(["aİdesi", "FUC\u212a", "desi"], type=pa.large_string()))
    assert occ.problem_rows.tolist() == [0, 1]
    assert occ.rows.tolist() == [2]


def test_non_ascii_needles_use_lowered_text() -> None:
    matcher = ColumnMatcher(["niña"])
    assert not matcher.ascii_mode
    occ = matcher.find(pa.array(["NIÑA", "niñas", "ΣNIÑA"], type=pa.large_string()))
    assert occ.problem_rows.tolist() == [2]
    pairs = zip(occ.rows.tolist(), occ.bounded.tolist(), strict=True)
    assert sorted(pairs) == [(0, True), (1, False)]


def test_rows_with_any_flags_substrings_and_problem_rows() -> None:
    matcher = ColumnMatcher(["sex", "porn"])
    rows, problem = matcher.rows_with_any(
        pa.array(["Sussex", "clean", None, "PORN\u212a", "x"], type=pa.large_string())
    )
    assert rows.tolist() == [0]
    assert problem.tolist() == [3]


def test_pattern_chunks_keep_each_search_at_most_100_patterns_up_to_4_chunks() -> None:
    def sizes(n: int) -> list[int]:
        chunks = pattern_chunks([f"p{i}" for i in range(n)])
        assert [p for chunk in chunks for p in chunk] == [f"p{i}" for i in range(n)]
        return [len(chunk) for chunk in chunks]

    assert sizes(100) == [100]
    assert sizes(109) == [55, 54]
    assert sizes(400) == [100] * 4
    assert sizes(401) == [401]  # beyond 4 chunks one (NFA) pass is cheaper


def test_chunked_matcher_finds_every_chunks_hits_like_python() -> None:
    # 150 needles (+2 problem characters) are searched in 2 chunks; hits from both count.
    needles = [f"w{i:03d}" for i in range(148)] + ["desi", "hot", "photo", "school girl"]
    matcher = ColumnMatcher(needles)
    assert len(matcher._chunks) == 2
    values = [
        "W000 photo w147x",
        "School Girl desi",
        None,
        "w100-w101 aİ w002",
        "nothing here",
        "xw050 HOT",
        "w149 w120",
    ]
    found = hits(matcher, values)
    assert {(0, "w000", True), (0, "photo", True), (0, "hot", False)} <= found
    assert (0, "w147", False) in found
    assert {(1, "school girl", True), (1, "desi", True)} <= found
    assert {(5, "w050", False), (5, "hot", True)} <= found
    assert (6, "w120", True) in found and not any(n == "w149" for _, n, _ in found)
    for row, value in enumerate(values):
        if row == 3:  # U+0130: left to Python
            continue
        low = (value or "").lower()
        for needle in needles:
            assert ((row, needle, True) in found) == python_matches(needle, "word", low)
            assert any(r == row and n == needle for r, n, _ in found) == (needle in low)
    occ = matcher.find(pa.array(values, type=pa.large_string()))
    assert occ.problem_rows.tolist() == [3]
    rows, problem = matcher.rows_with_any(pa.array(values, type=pa.large_string()))
    assert rows.tolist() == [0, 1, 5, 6]
    assert problem.tolist() == [3]


def test_needles_must_be_lower_case_and_non_empty() -> None:
    with pytest.raises(ValueError):
        ColumnMatcher([])
    with pytest.raises(ValueError):
        ColumnMatcher(["Desi"])
