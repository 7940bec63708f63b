"""Lexicon matching per row: which rows are keyword-NSFW (under the lexicon's rule and under
the paper's), which terms each row matches (with their forms) and which hold the term itself
as a substring. One multi-pattern pass per column (matching.py); the rare rows it cannot
decide are matched in plain Python with the same semantics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from shardwatch.core.lexicon import PAPER_KEYWORDS, Lexicon
from shardwatch.scan.matching import ColumnMatcher, python_matches

_SUBSTRING, _WORD = 1, 2  # keyword kinds per needle; 0: not a keyword
_MODE_CODE = {"substring": _SUBSTRING, "word": _WORD}
_EMPTY = np.zeros(0, np.int64)


class CompiledLexicon:
    """A lexicon turned into needle tables and one column matcher per searched column."""

    def __init__(self, lexicon: Lexicon) -> None:
        self.lexicon = lexicon
        self.term_names = [p.term for p in lexicon.terms]
        self.term_modes = [p.mode for p in lexicon.terms]
        patterns = lexicon.terms + lexicon.keywords
        text_needles = list(dict.fromkeys(n for p in patterns for n in p.needles))
        index = {n: i for i, n in enumerate(text_needles)}
        self.text_term = np.full(len(text_needles), -1, dtype=np.int64)
        self.text_term_word = np.zeros(len(text_needles), dtype=bool)
        # The needle is the term itself (not a form): its hits are the substring count.
        self.text_term_own = np.zeros(len(text_needles), dtype=bool)
        self.text_kw = np.zeros(len(text_needles), dtype=np.int8)
        for t, p in enumerate(lexicon.terms):
            for needle in p.needles:
                self.text_term[index[needle]] = t
                self.text_term_word[index[needle]] = p.mode == "word"
            self.text_term_own[index[p.needle]] = True
        for p in lexicon.keywords:
            for needle in p.needles:
                self.text_kw[index[needle]] = _MODE_CODE[p.mode]
        url_needles = list(dict.fromkeys(n for p in lexicon.keywords for n in p.needles))
        url_index = {n: i for i, n in enumerate(url_needles)}
        self.url_kw = np.zeros(len(url_needles), dtype=np.int8)
        for p in lexicon.keywords:
            for needle in p.needles:
                self.url_kw[url_index[needle]] = _MODE_CODE[p.mode]
        self.text_matcher = ColumnMatcher(text_needles) if text_needles else None
        self.url_matcher = ColumnMatcher(url_needles) if url_needles else None
        self.url_substring_only = all(p.mode == "substring" for p in lexicon.keywords)
        # The paper's rule needs its own (positions-free) pass unless it is the lexicon's.
        self.paper_is_keyword = lexicon.has_paper_keywords
        self.paper_matcher = None if self.paper_is_keyword else ColumnMatcher(PAPER_KEYWORDS)


@dataclass(frozen=True)
class RowMatches:
    """Per-row results for one batch: the keyword flags and (row, term) hit pairs.

    `match_rows`/`match_terms`: the term matches (its mode, any of its forms);
    `substring_rows`/`substring_terms`: the term itself as a plain substring (the paper's
    N_match); `paper`: the paper's keyword rule."""

    keyword: npt.NDArray[np.bool_]
    match_rows: npt.NDArray[np.int64]
    match_terms: npt.NDArray[np.int64]
    substring_rows: npt.NDArray[np.int64]
    substring_terms: npt.NDArray[np.int64]
    paper: npt.NDArray[np.bool_]


def _keyword_hits(
    kinds: npt.NDArray[np.int8], bounded: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    hits: npt.NDArray[np.bool_] = (kinds == _SUBSTRING) | ((kinds == _WORD) & bounded)
    return hits


def _paper_flags(
    matcher: ColumnMatcher, text: pa.Array | None, url: pa.Array | None, num_rows: int
) -> npt.NDArray[np.bool_]:
    """The paper's rule on its own: any of its substrings in TEXT or URL."""
    flag = np.zeros(num_rows, dtype=bool)
    problem: list[npt.NDArray[np.int64]] = []
    for column in (text, url):
        if column is not None:
            hits, problem_rows = matcher.rows_with_any(column)
            flag[hits] = True
            problem.append(problem_rows)
    for row in np.unique(np.concatenate(problem)).tolist() if problem else ():
        flag[row] = any(
            column is not None and _has_paper_keyword((column[row].as_py() or "").lower())
            for column in (text, url)
        )
    return flag


def _has_paper_keyword(lowered: str) -> bool:
    return any(k in lowered for k in PAPER_KEYWORDS)


def match_rows(
    compiled: CompiledLexicon, text: pa.Array | None, url: pa.Array | None, num_rows: int
) -> RowMatches:
    """Which rows are keyword-NSFW and which terms each row matches (word and substring)."""
    n_terms = len(compiled.term_names)
    keyword = np.zeros(num_rows, dtype=bool)
    match_keys: list[npt.NDArray[np.int64]] = []
    sub_keys: list[npt.NDArray[np.int64]] = []
    problem: list[npt.NDArray[np.int64]] = []
    if text is not None and compiled.text_matcher is not None:
        occ = compiled.text_matcher.find(text)
        keyword[occ.rows[_keyword_hits(compiled.text_kw[occ.needles], occ.bounded)]] = True
        term = compiled.text_term[occ.needles]
        is_term = term >= 0
        is_match = is_term & (~compiled.text_term_word[occ.needles] | occ.bounded)
        is_own = is_term & compiled.text_term_own[occ.needles]
        sub_keys.append(occ.rows[is_own] * n_terms + term[is_own])
        match_keys.append(occ.rows[is_match] * n_terms + term[is_match])
        problem.append(occ.problem_rows)
    if url is not None and compiled.url_matcher is not None:
        if compiled.url_substring_only:  # a flag per row is enough: skip hit positions
            hit_rows, problem_rows = compiled.url_matcher.rows_with_any(url)
            keyword[hit_rows] = True
            problem.append(problem_rows)
        else:
            occ = compiled.url_matcher.find(url)
            keyword[occ.rows[_keyword_hits(compiled.url_kw[occ.needles], occ.bounded)]] = True
            problem.append(occ.problem_rows)

    matched = np.unique(np.concatenate(match_keys)) if match_keys else _EMPTY
    substr = np.unique(np.concatenate(sub_keys)) if sub_keys else _EMPTY
    problem_rows = np.unique(np.concatenate(problem)) if problem else _EMPTY
    if len(problem_rows):
        keyword[problem_rows] = False
        if n_terms:
            matched = matched[~np.isin(matched // n_terms, problem_rows)]
            substr = substr[~np.isin(substr // n_terms, problem_rows)]
        extra_match, extra_sub = _match_in_python(compiled, text, url, problem_rows, keyword)
        matched = np.unique(np.concatenate([matched, extra_match]))
        substr = np.unique(np.concatenate([substr, extra_sub]))
    if compiled.paper_matcher is None:
        paper = keyword
    else:
        paper = _paper_flags(compiled.paper_matcher, text, url, num_rows)
    if n_terms == 0:
        return RowMatches(keyword, matched, matched, substr, substr, paper)
    return RowMatches(
        keyword, matched // n_terms, matched % n_terms, substr // n_terms, substr % n_terms, paper
    )


def _match_in_python(
    compiled: CompiledLexicon,
    text: pa.Array | None,
    url: pa.Array | None,
    rows: npt.NDArray[np.int64],
    keyword: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The exact slow path for the rare rows the vectorised path cannot decide."""
    n_terms = len(compiled.term_names)
    lex = compiled.lexicon
    match_keys: list[int] = []
    sub_keys: list[int] = []
    for row in rows.tolist():
        low_text = (text[row].as_py() or "").lower() if text is not None else ""
        low_url = (url[row].as_py() or "").lower() if url is not None else ""
        keyword[row] = any(
            (text is not None and python_matches(n, p.mode, low_text))
            or (url is not None and python_matches(n, p.mode, low_url))
            for p in lex.keywords
            for n in p.needles
        )
        if text is None:
            continue
        for t, p in enumerate(lex.terms):
            if p.needle in low_text:
                sub_keys.append(row * n_terms + t)
            if any(python_matches(n, p.mode, low_text) for n in p.needles):
                match_keys.append(row * n_terms + t)
    return np.array(match_keys, dtype=np.int64), np.array(sub_keys, dtype=np.int64)
