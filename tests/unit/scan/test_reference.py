"""Tests of the oracle itself (tests/support/reference.py) on tiny tables with hand-computed
answers."""

from __future__ import annotations

import math
import re
from typing import Any

import pyarrow as pa
import pytest
from support.reference import (
    EMPTY_SUM,
    HIST_NBINS,
    merge_reference,
    reference_metrics,
    resolve_column,
    word_match,
)

from shardwatch.core.lexicon import BIRHANE2021, Lexicon, Pattern
from shardwatch.core.profiles import LAION400M, DatasetProfile

pytestmark = pytest.mark.unit

DESI = Lexicon(
    name="desi-only",
    terms=(Pattern("desi", "word"),),
    keywords=(Pattern("hot", "substring"), Pattern("porn", "substring")),
)


def one_text(text: str | None, lexicon: Lexicon = DESI) -> dict[str, Any]:
    return reference_metrics([{"TEXT": text}], LAION400M, lexicon, columns=["TEXT"])


# --- word vs substring matching on TEXT ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "word", "substring"),
    [
        ("desi", 1, 1),
        ("design", 0, 1),
        ("Designer", 0, 1),
        ("#Desi", 1, 1),
        ("DESI-style", 1, 1),
        ("desi's", 1, 1),
        ("über-desi", 1, 1),
        ("desi.", 1, 1),
        ("desis", 0, 1),
        ("desiñ", 0, 1),
        ("desi2", 0, 1),
        ("desi_", 0, 1),
        ("_desi", 0, 1),
        ("xdesi desi", 1, 1),  # the second occurrence is a whole word
        ("desidesi", 0, 1),
        ("\u0663desi", 0, 1),  # Arabic-Indic digit three is a word character
        ("\u00b2desi", 0, 1),  # superscript two: str.isalnum() is True
        ("\u216bdesi", 0, 1),  # roman numeral twelve (Nl): word character
        ("\u01c5desi", 0, 1),  # titlecase letter: lower() gives 'ǆ', a letter
        ("desi\u0301", 1, 1),  # combining acute (Mn) is not a word character
        ("desi\u0940", 1, 1),  # Devanagari vowel sign (Mc) is not a word character
        ("\u0926\u0947\u0938\u0940 desi", 1, 1),
        ("🔥desi🔥", 1, 1),
        ("desi\u200dx", 1, 1),  # zero-width joiner is not a word character
        ("desi\u203fgirl", 1, 1),  # undertie (connector punctuation) is not \w in Python
        ("\uff3fdesi", 1, 1),  # fullwidth low line is not '_'
        ("\u24b6desi", 1, 1),  # circled A (So) is not a word character
        ("DESİS", 1, 1),  # 'İ'.lower() is 'i' + U+0307, so 'desi' is followed by a mark
        ("\uff44\uff45\uff53\uff49", 0, 0),  # fullwidth letters are other characters
        ("de\u017fi", 0, 0),  # long s: lower() keeps it (casefold would not)
        ("d\u0435si", 0, 0),  # Cyrillic e
        ("", 0, 0),
        (None, 0, 0),
    ],
)
def test_desi_word_and_substring(text: str | None, word: int, substring: int) -> None:
    stats = one_text(text)["terms"]["desi"]
    assert (stats["matches"], stats["substring_matches"]) == (word, substring)


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("school girl", 1),
        ("SCHOOL GIRL uniform", 1),
        ("School  girl", 0),  # two spaces: the space in the term matches literally
        ("schoolgirl", 0),
        ("school\u00a0girl", 0),  # no-break space is not a space
        ("school\tgirl", 0),
        ("highschool girl", 0),
        ("school girls", 0),
        ("(school girl)", 1),
    ],
)
def test_multi_word_term(text: str, word: int) -> None:
    lexicon = Lexicon("sg", terms=(Pattern("school girl", "word"),), keywords=())
    stats = one_text(text, lexicon)["terms"]["school girl"]
    assert stats["matches"] == word
    assert stats["substring_matches"] == int("school girl" in text.lower())


def test_terms_are_lowercased_and_keyed_by_their_spelling() -> None:
    lexicon = Lexicon(
        "case",
        terms=(Pattern("DESI", "substring"), Pattern("ΣΑΣ", "word"), Pattern("İ", "substring")),
        keywords=(),
    )
    m = one_text("Design ΣΑΣ", lexicon)["terms"]
    assert m["DESI"] == {"matches": 1, "keyword_nsfw": 0, "substring_matches": 1,
                         "mode": "substring", "paper_keyword_nsfw": 0}
    # 'ΣΑΣ'.lower() == 'σας' (final sigma) on both sides
    assert m["ΣΑΣ"]["matches"] == 1
    # 'İ'.lower() is 'i' + U+0307: plain 'i' does not contain it, 'DİZ' does
    assert m["İ"]["matches"] == 0
    assert one_text("DİZ", lexicon)["terms"]["İ"]["matches"] == 1


def test_regex_metacharacters_in_terms_match_literally() -> None:
    lexicon = Lexicon(
        "meta",
        terms=(Pattern("a.b", "word"), Pattern("c++", "word"), Pattern(".net", "word")),
        keywords=(),
    )
    rows = [{"TEXT": t} for t in ("a.b", "axb", "c++ x", "c++x", ".net", "asp.net", "x .net!")]
    m = reference_metrics(rows, LAION400M, lexicon, columns=["TEXT"])["terms"]
    assert m["a.b"]["matches"] == 1  # 'axb' must not match
    assert m["c++"]["matches"] == 1  # 'c++x': a word character follows the term
    assert m[".net"]["matches"] == 2  # 'asp.net': a word character precedes the term
    assert m[".net"]["substring_matches"] == 3


def test_word_character_is_isalnum_or_underscore() -> None:
    # docs: a word character is exactly re's \w on str, i.e. str.isalnum() or '_'
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        c = chr(code)
        assert (re.match(r"\w", c) is not None) == (c.isalnum() or c == "_"), hex(code)


def test_word_match_considers_every_occurrence() -> None:
    assert word_match("x x", "yx x x")  # first occurrence fails, overlapping second matches
    assert not word_match("x x", "yx x")
    assert word_match("desi", "desidesi desi")


# --- keywords: TEXT or URL ------------------------------------------------------------------


def test_keyword_only_in_url_flags_the_row() -> None:
    rows = [
        {"TEXT": "a red car", "URL": "http://porn.example/1.jpg"},  # URL only
        {"TEXT": "Photo of a desi wedding", "URL": None},  # 'hot' in 'photo'
        {"TEXT": "nice", "URL": "http://example.com/nice.jpg"},
        {"TEXT": None, "URL": "HTTP://HOTELS.EXAMPLE"},  # upper-case URL
        {"TEXT": "desi", "URL": "http://example.com/desi.jpg"},
        {"TEXT": "nice", "URL": "http://example.com/desi.jpg"},  # terms ignore the URL
    ]
    m = reference_metrics(rows, LAION400M, DESI, columns=["TEXT", "URL"])
    assert m["keyword_nsfw_rows"] == 3
    # the paper's rule: of the 2 rows holding 'desi', the 'photo' one holds 'hot'
    assert m["terms"]["desi"] == {
        "matches": 2, "keyword_nsfw": 1, "substring_matches": 2, "mode": "word",
        "paper_keyword_nsfw": 1,
    }


def test_keyword_word_mode() -> None:
    lexicon = Lexicon("kw", terms=(), keywords=(Pattern("hot", "word"),))
    rows = [{"TEXT": t, "URL": u} for t, u in (("photo", None), ("HOT!", None), ("x", "a/hot/b"))]
    m = reference_metrics(rows, LAION400M, lexicon, columns=["TEXT", "URL"])
    assert m["keyword_nsfw_rows"] == 2


def test_birhane_decoys_are_keyword_hits() -> None:
    decoys = ["photo", "hotel", "shot", "grapes", "therapeutic", "Sussex", "adulthood"]
    others = ["design", "announcement", "nunchaku", "a nun"]
    rows = [{"TEXT": t, "URL": ""} for t in [*decoys, *others]]
    m = reference_metrics(rows, LAION400M, BIRHANE2021, columns=["TEXT", "URL"])
    assert m["keyword_nsfw_rows"] == len(decoys)
    assert m["terms"]["nun"]["matches"] == 1
    # 'announcement' spells 'nounce', not 'nun': only 'nunchaku' and 'a nun' contain it
    assert m["terms"]["nun"]["substring_matches"] == 2
    assert m["terms"]["desi"]["substring_matches"] == 1
    assert m["terms"]["desi"]["matches"] == 0


# --- NSFW tags --------------------------------------------------------------------------------


def test_nsfw_flag_counts_exact_labels() -> None:
    tags = ["UNLIKELY", "UNSURE", "NSFW", "nsfw", "Unlikely", "", "NSFW ", None, "NSFW"]
    texts = ["desi"] * 4 + ["x"] * 5
    rows = [{"NSFW": g, "TEXT": t} for g, t in zip(tags, texts, strict=True)]
    m = reference_metrics(rows, LAION400M, DESI, columns=["NSFW", "TEXT"])
    assert m["nsfw_flag_counts"] == {"UNLIKELY": 1, "UNSURE": 1, "NSFW": 2, "other": 4, "null": 1}
    assert m["terms"]["desi"]["nsfw_flag_counts"] == {
        "UNLIKELY": 1, "UNSURE": 1, "NSFW": 1, "other": 1, "null": 0
    }


def test_integer_tags_compare_as_strings() -> None:
    profile = DatasetProfile("ints", {"nsfw_tag": "tag"}, 0.5, nsfw_labels=("0", "1"))
    table = pa.table({"tag": pa.array([0, 1, 1, 2, None], type=pa.int64())})
    m = reference_metrics(table, profile, DESI)
    assert m["nsfw_flag_counts"] == {"0": 1, "1": 2, "other": 1, "null": 1}


# --- similarity -------------------------------------------------------------------------------


def test_similarity_metrics_and_histogram_edges() -> None:
    values = [None, math.nan, 0.3, 0.29999999999999993, -1.0, 1.0, 1.5, -3.0, 0.005,
              1 - 2**-53, -0.995]
    table = pa.table({"similarity": pa.array(values, type=pa.float64())})
    s = reference_metrics(table, LAION400M, DESI)["similarity"]
    non_null = [0.3, 0.29999999999999993, -1.0, 1.0, 1.5, -3.0, 0.005, 1 - 2**-53, -0.995]
    assert s["count"] == 9
    assert s["null"] == 2
    assert s["below_threshold"] == 5  # 0.2999..., -1.0, -3.0, 0.005, -0.995 (0.3 is not)
    assert s["threshold"] == 0.3
    assert s["min"] == -3.0
    assert s["max"] == 1.5
    assert math.isclose(s["sum"], math.fsum(non_null), rel_tol=0, abs_tol=1e-15)
    assert math.isclose(s["mean"], math.fsum(non_null) / 9)
    h = s["histogram"]
    assert (h["lo"], h["hi"], h["bins_per_unit"]) == (-1.0, 1.0, 200)
    assert len(h["counts"]) == HIST_NBINS == 400
    assert (h["underflow"], h["overflow"]) == (1, 1)
    expected = [0] * 400
    expected[260] += 1  # 0.3: (0.3 + 1) * 200 == 260.0
    expected[259] += 1  # 0.29999999999999993: 259.99999999999994
    expected[0] += 1  # -1.0 == lo
    expected[399] += 1  # 1.0 == hi goes in the last bin
    expected[200] += 1  # 0.005: (1.005) * 200 == 200.99999999999997 in float64
    expected[399] += 1  # 1 - 2**-53: (v + 1) rounds to 2.0; v < hi so it is the last bin
    expected[1] += 1  # -0.995: 1.0000000000000009
    assert h["counts"] == expected


def test_similarity_all_null_has_null_aggregates() -> None:
    table = pa.table({"similarity": pa.array([None, math.nan], type=pa.float64())})
    s = reference_metrics(table, LAION400M, DESI)["similarity"]
    assert (s["count"], s["null"], s["below_threshold"]) == (0, 2, 0)
    assert (s["min"], s["max"], s["mean"]) == (None, None, None)
    assert s["sum"] is EMPTY_SUM  # None: the docs' literal reading (see reference.py)
    assert sum(s["histogram"]["counts"]) == 0


# --- nulls and duplicates ---------------------------------------------------------------------


def test_nulls_count_nan_and_ignore_empty_strings() -> None:
    table = pa.table(
        {
            "WIDTH": pa.array([1.0, math.nan, None, 3.0]),
            "HEIGHT": pa.array([1, None, 2, 3], type=pa.int64()),
            "TEXT": ["", None, " ", "x"],
            "URL": ["", "", None, None],
            "unrelated": [None, None, None, None],
        }
    )
    m = reference_metrics(table, LAION400M, DESI)
    assert m["nulls"] == {"width": 2, "height": 1, "text": 1, "url": 2}


def test_duplicates_by_value_and_exact_string() -> None:
    table = pa.table(
        {
            "SAMPLE_ID": pa.array([5, 5.0, math.nan, None, 0.0, -0.0, 7.0, math.nan]),
            "URL": ["a", "a", "A", "", "", None, "a ", None],
        }
    )
    d = reference_metrics(table, LAION400M, DESI)["duplicates"]
    assert d == {"id": 2, "url": 2}  # ids 5,5,0,-0,7 -> 3 distinct; urls a,a,A,'','',a -> 4


def test_int_ids_beyond_float_precision_are_distinct() -> None:
    table = pa.table({"SAMPLE_ID": pa.array([2**53, 2**53 + 1, 2**63 - 1, 2**63 - 2, 2**53])})
    assert reference_metrics(table, LAION400M, DESI)["duplicates"] == {"id": 1}


# --- columns: resolution and unavailability ---------------------------------------------------


def test_resolve_column() -> None:
    assert resolve_column(["TEXT", "text"], "TEXT") == "TEXT"
    assert resolve_column(["text"], "TEXT") == "text"
    assert resolve_column(["text", "Text"], "TEXT") is None
    assert resolve_column(["URL"], "TEXT") is None
    assert resolve_column(["TEXT"], None) is None


def test_only_text() -> None:
    rows = [{"TEXT": "Photo of a desi"}, {"TEXT": "design"}]
    m = reference_metrics(rows, LAION400M, DESI, columns=["TEXT"])
    assert m["unavailable"] == ["domains", "duplicates.id", "duplicates.url",
                                "nsfw_flag_counts", "similarity"]
    assert "nsfw_flag_counts" not in m
    assert "similarity" not in m
    assert m["duplicates"] == {}
    assert m["nulls"] == {"text": 0}
    assert m["keyword_nsfw_rows"] == 1
    assert m["terms"]["desi"] == {
        "matches": 1, "keyword_nsfw": 1, "substring_matches": 2, "mode": "word",
        "paper_keyword_nsfw": 1,  # 'design' holds no paper keyword
    }


def test_only_url() -> None:
    rows = [{"URL": "http://hot.example/desi"}, {"URL": "http://hot.example/desi"}]
    m = reference_metrics(rows, LAION400M, DESI, columns=["URL"])
    assert m["unavailable"] == ["duplicates.id", "nsfw_flag_counts", "similarity", "terms"]
    assert "terms" not in m
    assert m["keyword_nsfw_rows"] == 2
    assert m["duplicates"] == {"url": 1}


def test_no_text_no_url() -> None:
    m = reference_metrics([{"NSFW": "NSFW"}], LAION400M, DESI, columns=["NSFW"])
    assert "keyword_nsfw_rows" not in m
    assert "terms" not in m
    assert m["unavailable"] == ["domains", "duplicates.id", "duplicates.url",
                                "keyword_nsfw_rows", "similarity", "terms"]
    assert m["nsfw_flag_counts"]["NSFW"] == 1


def test_missing_tag_drops_per_term_flag_counts() -> None:
    m = one_text("desi")
    assert "nsfw_flag_counts" not in m["terms"]["desi"]


def test_case_insensitive_columns() -> None:
    table = pa.table({"text": ["desi"], "Text": ["nothing"], "url": ["http://porn.example"]})
    m = reference_metrics(table, LAION400M, DESI)
    # 'text'/'Text' is ambiguous for 'TEXT'; 'url' is the unique match for 'URL'
    assert "terms" in m["unavailable"]
    assert m["keyword_nsfw_rows"] == 1
    assert m["nulls"] == {"url": 0}


# --- merging ----------------------------------------------------------------------------------


def test_merge_of_split_equals_whole_except_cross_shard_duplicates() -> None:
    rows = [
        {"TEXT": "desi", "URL": "a", "similarity": 0.2, "SAMPLE_ID": 1.0},
        {"TEXT": "photo", "URL": "a", "similarity": None, "SAMPLE_ID": 1.0},
        {"TEXT": "nun", "URL": "b", "similarity": 1.7, "SAMPLE_ID": 2.0},
        {"TEXT": None, "URL": "a", "similarity": -0.5, "SAMPLE_ID": 1.0},
    ]
    cols = ["TEXT", "URL", "similarity", "SAMPLE_ID"]
    whole = reference_metrics(rows, LAION400M, BIRHANE2021, columns=cols)
    merged = merge_reference(
        [
            reference_metrics(rows[:2], LAION400M, BIRHANE2021, columns=cols),
            reference_metrics(rows[2:], LAION400M, BIRHANE2021, columns=cols),
        ]
    )
    assert whole["duplicates"] == {"id": 2, "url": 2}
    assert merged["duplicates"] == {"id": 1, "url": 1}  # merge is a sum of shard counts
    merged["duplicates"] = whole["duplicates"]
    assert merged == whole


def test_merge_unavailable_is_intersection() -> None:
    a = reference_metrics([{"TEXT": "desi"}], LAION400M, DESI, columns=["TEXT"])
    b = reference_metrics([{"URL": "u", "NSFW": "NSFW"}], LAION400M, DESI, columns=["URL", "NSFW"])
    merged = merge_reference([a, b])
    assert merged["unavailable"] == ["duplicates.id", "similarity"]
    assert merged["nsfw_flag_counts"]["NSFW"] == 1
    assert merged["terms"]["desi"]["matches"] == 1
    assert "nsfw_flag_counts" not in merged["terms"]["desi"]
