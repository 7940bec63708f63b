"""Every built-in lexicon and profile equals its literal copy (builtin_literals.py), entry by
entry, and so do the tables that document them (docs/lexicons.md, docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.builtin_literals import LEXICONS, PROFILES

from shardwatch.core.lexicon import BUILTIN_LEXICONS
from shardwatch.core.profiles import BUILTIN_PROFILES, LOGICAL_FIELDS

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[3] / "docs"


def _lexicon_rows(lexicon: object) -> list[tuple[str, str, str, tuple[str, ...]]]:
    return [
        (kind, p.term, p.mode, tuple(p.forms))
        for kind, patterns in (("keyword", lexicon.keywords), ("term", lexicon.terms))  # type: ignore[attr-defined]
        for p in patterns
    ]


def _tables(text: str, header: str) -> dict[str, list[list[str]]]:
    """Markdown tables that follow `header`, keyed by the heading (`### ...`) above them."""
    out: dict[str, list[list[str]]] = {}
    rows: list[list[str]] = []
    heading, inside = "", False
    for line in [*text.splitlines(), ""]:
        if line.startswith("### "):
            heading = line[4:].strip().strip("`")
        if line.strip() == header:
            rows, inside = [], True
        elif inside and line.startswith("|"):
            if not line.startswith("|---"):
                rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif inside:
            out[heading] = rows
            inside = False
    return out


def test_the_builtin_lexicons_are_the_literal_copies() -> None:
    assert list(BUILTIN_LEXICONS) == list(LEXICONS)
    for name, literal in LEXICONS.items():
        assert _lexicon_rows(BUILTIN_LEXICONS[name]) == _lexicon_rows(literal), name


def test_the_lexicon_tables_in_the_docs_are_the_literal_copies() -> None:
    tables = _tables((DOCS / "lexicons.md").read_text(), "| kind | entry | mode | forms |")
    assert set(tables) == set(LEXICONS)
    for name, rows in tables.items():
        documented = [
            (kind, entry, mode, () if forms == "-" else tuple(f.strip() for f in forms.split(",")))
            for kind, entry, mode, forms in rows
        ]
        assert documented == _lexicon_rows(LEXICONS[name]), name


def _profile_facts(p: object) -> dict[str, object]:
    return {
        "columns": {f: p.column(f) for f in LOGICAL_FIELDS},  # type: ignore[attr-defined]
        **{
            key: getattr(p, key)
            for key in (
                "similarity_threshold", "nsfw_labels", "nsfw_signal", "nsfw_threshold",
                "unsafe_threshold", "header", "other_columns", "lexicon",
            )
        },
    }  # fmt: skip


def test_the_builtin_profiles_are_the_literal_copies() -> None:
    assert list(BUILTIN_PROFILES) == list(PROFILES)
    for name, literal in PROFILES.items():
        assert _profile_facts(BUILTIN_PROFILES[name]) == _profile_facts(literal), name


def test_the_profile_table_in_the_docs_is_the_literal_copy() -> None:
    header = (
        "| profile | id | url | text | nsfw_tag | similarity | width | height | license | "
        "unsafe_score | watermark | labels | NSFW threshold | unsafe threshold | "
        "similarity cut-off | lexicon |"
    )
    rows = _tables((DOCS / "configuration.md").read_text(), header)
    (table,) = rows.values()
    assert [row[0] for row in table] == list(PROFILES)
    for row in table:
        p = PROFILES[row[0]]
        columns = [None if cell == "-" else cell for cell in row[1:11]]
        assert columns == [p.column(f) for f in LOGICAL_FIELDS], p.name
        labels = row[11]
        if p.nsfw_signal == "score":
            assert labels == "score" and float(row[12]) == p.nsfw_threshold
        else:
            assert labels == (", ".join(p.nsfw_labels) or "-") and row[12] == "-"
        assert float(row[13]) == p.unsafe_threshold
        assert float(row[14]) == p.similarity_threshold
        assert row[15] == p.lexicon
