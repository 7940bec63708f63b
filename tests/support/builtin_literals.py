"""Literal copies of shardwatch's built-in lexicons and profiles, written out by hand from
docs/lexicons.md and docs/configuration.md (never generated from shardwatch's objects).

The oracle (reference.py) computes with these, so a change to a built-in in `src/` (a term
deleted, a form added, a threshold moved) makes the engine and the oracle disagree, and
tests/unit/core/test_builtin_pins.py compares code and docs with them entry by entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LABELS = ("UNLIKELY", "UNSURE", "NSFW")


@dataclass(frozen=True)
class Entry:
    term: str
    mode: str
    forms: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlainLexicon:
    name: str
    keywords: tuple[Entry, ...]
    terms: tuple[Entry, ...]


@dataclass(frozen=True)
class PlainProfile:
    name: str
    columns: dict[str, str]
    similarity_threshold: float
    nsfw_labels: tuple[str, ...] = ()
    nsfw_signal: str = "label"
    nsfw_threshold: float | None = None
    unsafe_threshold: float = 0.5
    header: tuple[str, ...] | None = None
    other_columns: tuple[str, ...] | None = None
    lexicon: str = "precise2026"
    extra: dict[str, str] = field(default_factory=dict)

    def column(self, logical: str) -> str | None:
        return self.columns.get(logical)


def _words(*entries: tuple[str, tuple[str, ...]]) -> tuple[Entry, ...]:
    return tuple(Entry(term, "word", forms) for term, forms in entries)


PAPER_TERMS = (
    "desi", "nun", "latina", "mom", "sister", "daughter", "daddy", "mother", "aunty", "mummy",
    "maa", "abuela", "asian", "indian", "nigerian", "african", "korean", "black woman",
    "school girl", "school boy", "european",
)  # fmt: skip

BIRHANE2021 = PlainLexicon(
    "birhane2021",
    keywords=tuple(
        Entry(k, "substring") for k in ("porn", "hot", "adult", "xxx", "sex", "fuck", "rape")
    ),
    terms=tuple(Entry(t, "word") for t in PAPER_TERMS),
)

PRECISE2026 = PlainLexicon(
    "precise2026",
    keywords=_words(
        ("porn", ("porno", "pornos", "porns", "pornographic", "pornography", "pornstar",
                  "pornstars", "porn star", "porn stars", "porn-star")),
        ("sex", ("sexy", "sexier", "sexiest")),
        ("xxx", ()),
        ("fuck", ("fucks", "fucked", "fucking", "fucker", "fuckers")),
        ("rape", ("raped", "rapes", "raping", "rapist", "rapists")),
        ("hentai", ()),
        ("milf", ("milfs",)),
        ("nsfw", ()),
        ("adult video", ("adult videos", "adult film", "adult films", "adult movie",
                         "adult movies", "adult content", "adult site", "adult sites",
                         "adult-video", "adult-videos", "adult-film", "adult-movie")),
        ("hot girl", ("hot girls", "hot woman", "hot women", "hot babe", "hot babes",
                      "hottie", "hotties", "hot-girl", "hot-girls")),
    ),
    terms=_words(
        ("desi", ("desis",)),
        ("nun", ("nuns",)),
        ("latina", ("latinas",)),
        ("mom", ("moms", "mommy", "mommies")),
        ("sister", ("sisters",)),
        ("daughter", ("daughters",)),
        ("daddy", ("daddies",)),
        ("mother", ("mothers",)),
        ("aunty", ("aunties", "auntie")),
        ("mummy", ()),
        ("maa", ()),
        ("abuela", ("abuelas",)),
        ("asian", ("asians",)),
        ("indian", ("indians",)),
        ("nigerian", ("nigerians",)),
        ("african", ("africans",)),
        ("korean", ("koreans",)),
        ("black woman", ("black women", "black-woman", "black-women")),
        ("school girl", ("school girls", "schoolgirl", "schoolgirls", "school-girl",
                         "school-girls")),
        ("school boy", ("school boys", "schoolboy", "schoolboys", "school-boy",
                        "school-boys")),
        ("european", ("europeans",)),
    ),
)  # fmt: skip

LEXICONS = {lex.name: lex for lex in (BIRHANE2021, PRECISE2026)}

PROFILES = {
    p.name: p
    for p in (
        PlainProfile(
            "laion400m",
            {"id": "SAMPLE_ID", "url": "URL", "text": "TEXT", "nsfw_tag": "NSFW",
             "similarity": "similarity", "width": "WIDTH", "height": "HEIGHT",
             "license": "LICENSE"},
            0.3, LABELS, other_columns=(),
        ),
        PlainProfile(
            "laion5b-joined",
            {"id": "hash", "url": "URL", "text": "TEXT", "nsfw_tag": "NSFW",
             "similarity": "similarity", "width": "WIDTH", "height": "HEIGHT",
             "license": "LICENSE", "unsafe_score": "punsafe", "watermark": "pwatermark"},
            0.28, LABELS, other_columns=("LANGUAGE",),
        ),
        PlainProfile(
            "coyo700m",
            {"id": "id", "url": "url", "text": "text", "nsfw_tag": "nsfw_score_opennsfw2",
             "similarity": "clip_similarity_vitb32", "width": "width", "height": "height",
             "unsafe_score": "nsfw_score_gantman", "watermark": "watermark_score"},
            0.3, ("UNLIKELY", "NSFW"), nsfw_signal="score", nsfw_threshold=0.5,
            other_columns=("image_phash", "text_length", "word_count", "num_tokens_bert",
                           "num_tokens_gpt", "num_faces", "clip_similarity_vitl14",
                           "aesthetic_score_laion_v2"),
        ),
        PlainProfile(
            "datacomp",
            {"id": "uid", "url": "url", "text": "text",
             "similarity": "clip_b32_similarity_score", "width": "original_width",
             "height": "original_height"},
            0.3, other_columns=("clip_l14_similarity_score", "face_bboxes", "sha256"),
        ),
        PlainProfile("cc3m", {"text": "caption", "url": "url"}, 0.3,
                     header=("caption", "url"), other_columns=()),
        PlainProfile("cc12m", {"url": "url", "text": "caption"}, 0.3,
                     header=("url", "caption"), other_columns=()),
    )
}  # fmt: skip
