"""Matching: find every needle in a string column exactly as `str.lower` and `re` would.

The fast path runs one Aho-Corasick pass (Polars) per column, or one per chunk of at most
100 patterns for up to 400 (pattern_chunks: more than 100 would leave the fast DFA), then
checks word boundaries on the raw UTF-8 bytes. Exactness against Python's
semantics is kept by construction:

* ASCII needles are found ASCII-case-insensitively in the *raw* text. That equals searching
  `text.lower()` except for rows holding a character whose lower-case form contains ASCII,
  has another length or another word-ness (U+0130 'İ' and U+212A KELVIN SIGN on Python
  3.11). Such *problem rows* are flagged and matched in plain Python instead.
* Non-ASCII needles are searched in Arrow's `utf8_lower` text; rows holding a character that
  Arrow lower-cases differently from Python (or a capital sigma, whose Python lower-case
  depends on context) are problem rows.
* A word character is whatever `str.isalnum()` accepts, or `_`: exactly `re`'s `\\w`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from shardwatch.core.lexicon import MatchMode

_MAX_CODE_POINT = 0x110000
# Polars' multi-pattern search (the aho-corasick crate) compiles at most 100 patterns into a
# DFA and more into an NFA about 4.7x slower: on 1M captions one pass took 0.08 s with 100
# patterns and 0.37 s with 101 (polars 2.1.0). So a long pattern list is searched in up to
# _MAX_CHUNKS passes of at most _DFA_PATTERNS patterns each; a longer one stays one pass.
_DFA_PATTERNS = 100
_MAX_CHUNKS = 4
_ASCII_WORD = np.array([chr(b).isalnum() or b == ord("_") for b in range(128)], dtype=bool)


def is_word_char(ch: str) -> bool:
    """True for exactly the characters Python's `re` matches with `\\w` on `str` patterns."""
    return ch.isalnum() or ch == "_"


def _all_chars() -> list[str]:
    return [chr(cp) for cp in range(_MAX_CODE_POINT) if not 0xD800 <= cp <= 0xDFFF]


@functools.cache
def ascii_mode_problem_chars() -> tuple[str, ...]:
    """Non-ASCII characters for which an ASCII-case-insensitive search of raw text differs
    from a search of `str.lower(text)`."""
    cased = [
        ch
        for block in (range(0x80, 0xD800), range(0xE000, _MAX_CODE_POINT))
        for ch in map(chr, block)
        if ch.lower() != ch
    ]
    return tuple(
        ch
        for ch in cased
        if len(low := ch.lower()) != 1 or low.isascii() or is_word_char(low) != is_word_char(ch)
    )


@functools.cache
def lowered_mode_problem_chars() -> tuple[str, ...]:
    """Characters that Arrow's `utf8_lower` maps differently from Python's `str.lower`,
    plus capital sigma (Python lower-cases it by context)."""
    chars = _all_chars()
    arrow_lower = pc.utf8_lower(pa.array(chars, type=pa.large_string())).to_pylist()
    out = {ch for ch, low in zip(chars, arrow_lower, strict=True) if ch.lower() != low}
    out.add("\u03a3")
    return tuple(sorted(out))


def python_matches(needle: str, mode: MatchMode, lowered: str) -> bool:
    """The reference semantics for one needle in one already lower-cased value."""
    if mode == "substring":
        return needle in lowered
    return re.search(r"(?<!\w)" + re.escape(needle) + r"(?!\w)", lowered) is not None


def pattern_chunks(patterns: Sequence[str]) -> list[list[str]]:
    """`patterns` in as few even chunks of at most _DFA_PATTERNS as possible, or in one
    chunk when that would take more than _MAX_CHUNKS."""
    count = -(-len(patterns) // _DFA_PATTERNS)
    if count <= 1 or count > _MAX_CHUNKS:
        return [list(patterns)]
    size = -(-len(patterns) // count)
    return [list(patterns[i : i + size]) for i in range(0, len(patterns), size)]


@dataclass(frozen=True)
class Occurrences:
    """Needle hits in one column of one batch.

    `rows[i]` holds needle `needles[i]`; `bounded[i]` says that hit has no word character on
    either side. Rows in `problem_rows` are excluded here and must be matched in Python.
    """

    rows: npt.NDArray[np.int64]
    needles: npt.NDArray[np.int64]
    bounded: npt.NDArray[np.bool_]
    problem_rows: npt.NDArray[np.int64]


def _offsets_and_data(
    arr: pa.Array,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    """The value offsets (len + 1) and the data buffer of a large_string array."""
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[
        arr.offset : arr.offset + len(arr) + 1
    ]
    data_buf = arr.buffers()[2]
    data = (
        np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    )
    return offsets, data


def _char_before(data: npt.NDArray[np.uint8], end: int) -> str:
    start = end - 1
    while start > 0 and (int(data[start]) & 0xC0) == 0x80:
        start -= 1
    return bytes(data[start:end]).decode("utf-8")


def _char_at(data: npt.NDArray[np.uint8], start: int) -> str:
    lead = int(data[start])
    width = 1 if lead < 0x80 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    return bytes(data[start : start + width]).decode("utf-8")


def _side_is_word(
    data: npt.NDArray[np.uint8],
    at: npt.NDArray[np.int64],
    has_side: npt.NDArray[np.bool_],
    before: bool,
) -> npt.NDArray[np.bool_]:
    """Whether the character just before (or at) byte position `at` is a word character."""
    result = np.zeros(len(at), dtype=bool)
    idx = np.flatnonzero(has_side)
    if len(idx) == 0:
        return result
    pos = at[idx] - 1 if before else at[idx]
    byte = data[pos]
    ascii_side = byte < 0x80
    result[idx[ascii_side]] = _ASCII_WORD[byte[ascii_side]]
    for i in idx[~ascii_side]:  # rare: a non-ASCII neighbour, decoded in Python
        ch = _char_before(data, int(at[i])) if before else _char_at(data, int(at[i]))
        result[i] = is_word_char(ch)
    return result


class ColumnMatcher:
    """Finds a fixed set of lower-cased needles in string columns with one multi-pattern pass."""

    def __init__(self, needles: Sequence[str]) -> None:
        if not needles:
            raise ValueError("ColumnMatcher needs at least one needle")
        if any(n != n.lower() for n in needles):
            raise ValueError("needles must be lower-cased")
        self.needles = tuple(needles)
        self.ascii_mode = all(n.isascii() for n in needles)
        # In ASCII mode the problem characters ride along in the same automaton over the raw
        # text, and a hit flags the row. Lower-cased text no longer shows them, so lowered
        # mode looks for them in a separate pass over the raw text.
        self._raw_problem = () if self.ascii_mode else lowered_mode_problem_chars()
        problem = ascii_mode_problem_chars() if self.ascii_mode else ()
        self._patterns = [*self.needles, *problem]
        self._ids = {p: i for i, p in enumerate(self._patterns)}
        self._chunks = pattern_chunks(self._patterns)
        self._byte_len = np.array([len(p.encode()) for p in self._patterns], dtype=np.int64)

    def _prepare(self, column: pa.Array) -> tuple[pa.Array, pl.Series, npt.NDArray[np.int64]]:
        """The searched text, its Series and (lowered mode) the rows holding a character
        Arrow lower-cases differently from Python."""
        if column.type != pa.large_string():
            column = column.cast(pa.large_string())
        hay = column if self.ascii_mode else pc.utf8_lower(column)
        raw_problem_rows = np.zeros(0, np.int64)
        if self._raw_problem:
            raw = pl.Series(values=column).str.contains_any(list(self._raw_problem))
            raw_problem_rows = np.flatnonzero(raw.fill_null(False).to_numpy())
        return hay, pl.Series(values=hay), raw_problem_rows

    def _holding(self, series: pl.Series, patterns: list[str]) -> npt.NDArray[np.bool_]:
        """Per row: whether it holds any of `patterns` (null: no)."""
        found = series.str.contains_any(patterns, ascii_case_insensitive=self.ascii_mode)
        mask: npt.NDArray[np.bool_] = found.fill_null(False).to_numpy()
        return mask

    def rows_with_any(
        self, column: pa.Array
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Rows containing any needle as a substring, and the problem rows (excluded from
        the first array) that must be matched in Python. One pass per pattern chunk, no
        positions."""
        _, series, problem_rows = self._prepare(column)
        holding = [self._holding(series, chunk) for chunk in self._chunks]
        cand_idx = np.flatnonzero(np.logical_or.reduce(holding))
        if len(self._patterns) > len(self.needles) and len(cand_idx):
            problem = list(self._patterns[len(self.needles) :])
            flagged = series.gather(cand_idx).str.contains_any(problem).to_numpy()
            problem_rows = np.union1d(problem_rows, cand_idx[flagged])
        return np.setdiff1d(cand_idx, problem_rows, assume_unique=True), problem_rows

    def _hits(self, series: pl.Series, patterns: list[str]) -> pl.DataFrame:
        """One row per occurrence of one of `patterns`: its row, the text hit, its byte
        position."""
        cand_idx = np.flatnonzero(self._holding(series, patterns))
        ci = self.ascii_mode
        sub = series.gather(cand_idx)
        return (
            pl.DataFrame(
                {
                    "row": cand_idx,
                    "hit": sub.str.extract_many(
                        patterns, overlapping=True, ascii_case_insensitive=ci
                    ),
                    "pos": sub.str.find_many(patterns, overlapping=True, ascii_case_insensitive=ci),
                },
                schema={"row": pl.Int64, "hit": pl.List(pl.String), "pos": pl.List(pl.UInt32)},
            )
            .explode(["hit", "pos"])
            .drop_nulls()
        )

    def find(self, column: pa.Array) -> Occurrences:
        """All needle hits in `column` (null values are empty strings)."""
        hay, series, raw_problem_rows = self._prepare(column)
        frame = pl.concat([self._hits(series, chunk) for chunk in self._chunks])
        ci = self.ascii_mode
        hits = frame["hit"]
        if ci:  # needles are ASCII here and problem characters are not: lower ASCII hits only
            non_ascii = (hits.str.len_bytes() != hits.str.len_chars()).to_numpy()
            hits = hits.str.to_lowercase()
        pid = hits.replace_strict(self._ids, default=-1, return_dtype=pl.Int64).to_numpy().copy()
        if ci:
            pid[non_ascii] = -1
        rows = frame["row"].to_numpy().astype(np.int64)
        pos = frame["pos"].to_numpy().astype(np.int64)

        is_problem = (pid < 0) | (pid >= len(self.needles))
        problem_rows = np.union1d(np.unique(rows[is_problem]), raw_problem_rows)
        keep = ~np.isin(rows, problem_rows)
        rows, pid, pos = rows[keep], pid[keep], pos[keep]

        offsets, data = _offsets_and_data(hay)
        start = offsets[rows] + pos
        end = start + self._byte_len[pid]
        before_word = _side_is_word(data, start, start > offsets[rows], before=True)
        after_word = _side_is_word(data, end, end < offsets[rows + 1], before=False)
        return Occurrences(rows, pid, ~(before_word | after_word), problem_rows)
