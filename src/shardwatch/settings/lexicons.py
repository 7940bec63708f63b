"""Lexicon settings: `[lexicons.<name>]`, a user-defined lexicon of watched terms and NSFW
keywords, and how a lexicon name resolves (built-in, or from the config through `extends`)."""

from __future__ import annotations

from pydantic import Field

from shardwatch.core.lexicon import BUILTIN_LEXICONS, Lexicon, MatchMode, Pattern
from shardwatch.core.names import MAX_TERM_CHARS, name_problem, shown
from shardwatch.settings.base import ConfigError, StrictModel, chain_error


class PatternSpec(StrictModel):
    term: str = Field(description="The term; matched case-insensitively.")
    mode: MatchMode | None = Field(
        default=None, description="`word` or `substring`; defaults per list (terms: word)."
    )
    forms: list[str] = Field(
        default_factory=list,
        description="Other spellings that count as this entry (plurals, hyphen and spacing "
        "variants), matched in the same mode.",
    )


class LexiconSpec(StrictModel):
    description: str = ""
    extends: str | None = Field(
        default=None, description="Start from this lexicon's terms and keywords, then add."
    )
    terms: list[str | PatternSpec] = Field(
        default_factory=list, description="Watched terms, matched in TEXT; default mode word."
    )
    keywords: list[str | PatternSpec] = Field(
        default_factory=list,
        description="NSFW keywords, matched in TEXT or URL; default mode substring.",
    )


def _patterns(items: list[str | PatternSpec], default: MatchMode) -> tuple[Pattern, ...]:
    out = []
    for item in items:
        spec = PatternSpec(term=item) if isinstance(item, str) else item
        problem = name_problem(spec.term, max_chars=MAX_TERM_CHARS, one_line=True)
        if problem:  # terms are stored and label report rows (keywords too, for symmetry)
            raise ValueError(f"term '{shown(spec.term)}' {problem}")
        for form in spec.forms:
            problem = name_problem(form, max_chars=MAX_TERM_CHARS, one_line=True)
            if problem:
                raise ValueError(f"form '{shown(form)}' of '{shown(spec.term)}' {problem}")
        out.append(Pattern(spec.term, spec.mode or default, tuple(spec.forms)))
    return tuple(out)


def resolve_lexicon(name: str, specs: dict[str, LexiconSpec], chain: tuple[str, ...]) -> Lexicon:
    """The lexicon `name`, built-in or from `specs` (`chain`: the names extending it)."""
    known = sorted(set(BUILTIN_LEXICONS) | set(specs))
    if name in chain or (name not in specs and name not in BUILTIN_LEXICONS):
        raise chain_error("lexicon", name, chain, known)
    if name not in specs:
        return BUILTIN_LEXICONS[name]
    spec = specs[name]
    base = resolve_lexicon(spec.extends, specs, (*chain, name)) if spec.extends else None
    try:
        return Lexicon(
            name=name,
            terms=(base.terms if base else ()) + _patterns(spec.terms, "word"),
            keywords=(base.keywords if base else ()) + _patterns(spec.keywords, "substring"),
            description=spec.description or (base.description if base else ""),
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
