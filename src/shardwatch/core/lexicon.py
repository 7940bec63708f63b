"""Lexicons: the watched terms and the NSFW keywords, each pattern with its match mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

MatchMode = Literal["word", "substring"]


@dataclass(frozen=True)
class Pattern:
    """One term and how it matches: `word` (no word character on either side) or `substring`."""

    term: str
    mode: MatchMode
    # Other spellings that count as this term (plurals, hyphen and spacing variants), each
    # matched in the same mode; a row matches the term when it matches any of them.
    forms: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.term or not self.term.strip():
            raise ValueError("a lexicon term must not be empty")
        if self.mode not in ("word", "substring"):
            raise ValueError(f"term {self.term!r}: mode must be 'word' or 'substring'")
        for form in self.forms:
            if not form or not form.strip():
                raise ValueError(f"term {self.term!r}: a form must not be empty")

    @property
    def needle(self) -> str:
        """The lower-cased term itself, searched for in lower-cased text."""
        return self.term.lower()

    @property
    def needles(self) -> tuple[str, ...]:
        """The lower-cased term, then its lower-cased forms, without repeats."""
        return tuple(dict.fromkeys([self.needle, *(f.lower() for f in self.forms)]))


@dataclass(frozen=True)
class Lexicon:
    """Watched terms (matched in TEXT) and NSFW keywords (matched in TEXT or URL)."""

    name: str
    terms: tuple[Pattern, ...]
    keywords: tuple[Pattern, ...]
    description: str = ""

    def __post_init__(self) -> None:
        for kind, patterns in (("term", self.terms), ("keyword", self.keywords)):
            owner: dict[str, str] = {}
            for p in patterns:
                for needle in p.needles:
                    if needle in owner:
                        first = owner[needle]
                        what = (
                            f"duplicate {kind} {p.term!r}"
                            if first.lower() == needle == p.needle
                            else f"{kind}s {first!r} and {p.term!r} share the spelling {needle!r}"
                        )
                        raise ValueError(
                            f"lexicon {self.name!r}: {what} (terms compare case-insensitively)"
                        )
                    owner[needle] = p.term

    @property
    def has_paper_keywords(self) -> bool:
        """Whether the keyword rule is exactly the paper's: its 7 substrings, no forms."""
        return self.keywords == _patterns(PAPER_KEYWORDS, "substring")


def _patterns(terms: tuple[str, ...], mode: MatchMode) -> tuple[Pattern, ...]:
    return tuple(Pattern(t, mode) for t in terms)


# The audit's keyword rule (section 2): any of these as a substring of TEXT or URL.
PAPER_KEYWORDS: Final = ("porn", "hot", "adult", "xxx", "sex", "fuck", "rape")


# Birhane, Prabhu & Kahembwe (2021), Table 1 and section 2: the keyword filter and the terms
# the audit queried (relationship, nationality/ethnicity and 'school girl' terms).
BIRHANE2021: Final = Lexicon(
    name="birhane2021",
    description=(
        "Table 1 of Birhane et al. (2021): NSFW keywords as substrings of TEXT or URL, "
        "watched terms as whole words of TEXT."
    ),
    keywords=_patterns(PAPER_KEYWORDS, "substring"),
    terms=_patterns(
        (
            # Table 1
            "desi",
            "nun",
            "latina",
            # relationship terms (section 4)
            "mom",
            "sister",
            "daughter",
            "daddy",
            "mother",
            "aunty",
            "mummy",
            # cross-cultural relationship terms (figure 7)
            "maa",
            "abuela",
            # nationality and ethnicity terms (figures 5, 8, 11, 14)
            "asian",
            "indian",
            "nigerian",
            "african",
            "korean",
            "black woman",
            # school terms (figure 9)
            "school girl",
            "school boy",
            # a baseline the paper contrasts with (figure 11)
            "european",
        ),
        "word",
    ),
)


def _with_forms(entries: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[Pattern, ...]:
    return tuple(Pattern(term, "word", forms) for term, forms in entries)


# The default lexicon: the paper's terms and keyword stems as whole words, each with the
# spellings that mean the same (docs/lexicons.md says why each form is there). Bare 'hot' and
# 'adult' are out: as whole words they are 'hot sale', 'hot tub', 'adult costume'.
PRECISE2026: Final = Lexicon(
    name="precise2026",
    description=(
        "The default: the paper's 21 terms and its keyword stems as whole words of TEXT "
        "(keywords: of TEXT or URL), each with its plural, inflected, hyphen and spacing "
        "forms; no substring decoys such as 'photo', 'hotel' or 'grapes'."
    ),
    keywords=_with_forms(
        (
            (
                "porn",
                (
                    "porno",
                    "pornos",
                    "porns",
                    "pornographic",
                    "pornography",
                    "pornstar",
                    "pornstars",
                    "porn star",
                    "porn stars",
                    "porn-star",
                ),
            ),
            ("sex", ("sexy", "sexier", "sexiest")),
            ("xxx", ()),
            ("fuck", ("fucks", "fucked", "fucking", "fucker", "fuckers")),
            ("rape", ("raped", "rapes", "raping", "rapist", "rapists")),
            ("hentai", ()),
            ("milf", ("milfs",)),
            ("nsfw", ()),
            (
                "adult video",
                (
                    "adult videos",
                    "adult film",
                    "adult films",
                    "adult movie",
                    "adult movies",
                    "adult content",
                    "adult site",
                    "adult sites",
                    "adult-video",
                    "adult-videos",
                    "adult-film",
                    "adult-movie",
                ),
            ),
            (
                "hot girl",
                (
                    "hot girls",
                    "hot woman",
                    "hot women",
                    "hot babe",
                    "hot babes",
                    "hottie",
                    "hotties",
                    "hot-girl",
                    "hot-girls",
                ),
            ),
        )
    ),
    terms=_with_forms(
        (
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
            (
                "school girl",
                ("school girls", "schoolgirl", "schoolgirls", "school-girl", "school-girls"),
            ),
            ("school boy", ("school boys", "schoolboy", "schoolboys", "school-boy", "school-boys")),
            ("european", ("europeans",)),
        )
    ),
)

DEFAULT_LEXICON: Final = PRECISE2026.name
BUILTIN_LEXICONS: Final[dict[str, Lexicon]] = {
    BIRHANE2021.name: BIRHANE2021,
    PRECISE2026.name: PRECISE2026,
}
