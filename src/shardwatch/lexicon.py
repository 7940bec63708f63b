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
            seen: set[str] = set()
            for p in patterns:
                if p.needle in seen:
                    raise ValueError(
                        f"lexicon {self.name!r}: duplicate {kind} {p.term!r} "
                        "(terms compare case-insensitively)"
                    )
                seen.add(p.needle)


def _patterns(terms: tuple[str, ...], mode: MatchMode) -> tuple[Pattern, ...]:
    return tuple(Pattern(t, mode) for t in terms)


# Birhane, Prabhu & Kahembwe (2021), Table 1 and section 2: the keyword filter and the terms
# the audit queried (relationship, nationality/ethnicity and 'school girl' terms).
BIRHANE2021: Final = Lexicon(
    name="birhane2021",
    description=(
        "Table 1 of Birhane et al. (2021): NSFW keywords as substrings of TEXT or URL, "
        "watched terms as whole words of TEXT."
    ),
    keywords=_patterns(("porn", "hot", "adult", "xxx", "sex", "fuck", "rape"), "substring"),
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

BUILTIN_LEXICONS: Final[dict[str, Lexicon]] = {BIRHANE2021.name: BIRHANE2021}
