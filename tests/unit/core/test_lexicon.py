"""Lexicon entries with forms, their validation, and what the default lexicon catches."""

from __future__ import annotations

import pyarrow as pa
import pytest

from shardwatch.core.lexicon import BIRHANE2021, PAPER_KEYWORDS, PRECISE2026, Lexicon, Pattern
from shardwatch.core.profiles import LAION400M
from shardwatch.scan.engine import scan_batches

pytestmark = pytest.mark.unit

DECOYS = ("photo", "shot", "hotel", "grapes", "therapeutic", "Sussex", "Essex", "xxxl",
          "rapeseed")  # fmt: skip
CAUGHT = ("sexy", "porno", "raped", "fucking")


def keyword_rows(lexicon: Lexicon, texts: list[str], urls: list[str] | None = None) -> int:
    table = pa.table({"TEXT": texts, "URL": urls or [""] * len(texts)})
    metrics = scan_batches(table.to_batches(), table.schema, LAION400M, lexicon)
    assert metrics.keyword_nsfw_rows is not None
    return metrics.keyword_nsfw_rows


@pytest.mark.parametrize("word", DECOYS)
def test_precise2026_ignores_every_decoy_the_paper_rule_flags(word: str) -> None:
    caption = f"A {word} by the sea"
    assert keyword_rows(PRECISE2026, [caption], [f"https://x.example/{word}.jpg"]) == 0
    assert keyword_rows(BIRHANE2021, [caption]) == 1


@pytest.mark.parametrize("word", CAUGHT)
def test_precise2026_catches_the_keyword_forms(word: str) -> None:
    assert keyword_rows(PRECISE2026, [f"so {word.upper()}!"]) == 1
    assert keyword_rows(PRECISE2026, ["a cat"], [f"https://x.example/{word}-1.jpg"]) == 1


def test_a_term_matches_through_any_of_its_forms_and_counts_a_row_once() -> None:
    texts = ["black women at work", "Black-woman portrait", "a black woman and black women",
             "blackwomen", "two nuns", "schoolgirl uniform"]  # fmt: skip
    table = pa.table({"TEXT": texts})
    terms = scan_batches(table.to_batches(), table.schema, LAION400M, PRECISE2026).terms
    assert terms is not None
    assert terms["black woman"].matches == 3
    assert terms["black woman"].substring_matches == 1  # the term itself, no forms
    assert terms["nun"].matches == 1 and terms["school girl"].matches == 1
    old = scan_batches(table.to_batches(), table.schema, LAION400M, BIRHANE2021).terms
    assert old is not None and old["black woman"].matches == 1 and old["nun"].matches == 0


def test_the_paper_rule_is_kept_verbatim() -> None:
    assert BIRHANE2021.keywords == tuple(Pattern(k, "substring") for k in PAPER_KEYWORDS)
    assert BIRHANE2021.has_paper_keywords and not PRECISE2026.has_paper_keywords
    assert all(not p.forms for p in BIRHANE2021.terms + BIRHANE2021.keywords)


def test_a_spelling_shared_by_two_entries_is_refused() -> None:
    with pytest.raises(ValueError, match="terms 'nun' and 'nuns' share the spelling 'nuns'"):
        Lexicon("x", terms=(Pattern("nun", "word", ("nuns",)), Pattern("nuns", "word")),
                keywords=())  # fmt: skip
    with pytest.raises(ValueError, match="duplicate keyword 'SEX'"):
        Lexicon("x", terms=(), keywords=(Pattern("sex", "word"), Pattern("SEX", "word")))
    with pytest.raises(ValueError, match="form must not be empty"):
        Pattern("nun", "word", (" ",))
    # a term and a keyword may share a spelling
    Lexicon("x", terms=(Pattern("hot", "word"),), keywords=(Pattern("hot", "word"),))
