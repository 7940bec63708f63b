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


def test_needles_must_be_lower_case_and_non_empty() -> None:
    with pytest.raises(ValueError):
        ColumnMatcher([])
    with pytest.raises(ValueError):
        ColumnMatcher(["Desi"])
