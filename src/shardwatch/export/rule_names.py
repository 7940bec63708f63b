"""Rule names: the remove-list rules `export-flagged` takes, with their help, parsed without
loading the engine (the CLI's help lists them; flag_rules.py evaluates them)."""

from __future__ import annotations

from typing import Final

TERM_PREFIX: Final = "term:"
BLOCKLIST_PREFIX: Final = "blocklist:"
# The fixed rules, in the order a row's reasons list them (then `term:<term>`, lexicon order),
# each with what it flags and the report figure its row count equals.
RULES: Final[dict[str, str]] = {
    "keyword-nsfw": "an NSFW keyword in the caption or URL (= keyword_nsfw_rows)",
    "tag-nsfw": 'the dataset\'s NSFW tag is "NSFW" (= nsfw_flag_counts.NSFW)',
    "keyword-nsfw-tagged-unlikely": 'keyword-nsfw and tagged "UNLIKELY" '
    "(= keyword_nsfw_by_tag.UNLIKELY)",
    "below-similarity-cutoff": "similarity below the profile's cut-off "
    "(= similarity.below_threshold)",
    "unsafe-score": "the second NSFW score (e.g. punsafe) above the profile's unsafe_threshold "
    "(= unsafe_rows)",
    "any-nsfw": "keyword-nsfw or tag-nsfw or unsafe-score",
}
TERM_RULE_HELP: Final = (
    "the caption matches watched term T as Table 1 counts it (= terms.T.matches)"
)
BLOCKLIST_RULE_HELP: Final = (
    "the row's URL (or id) matches the configured blocklist N, [blocklists.N] "
    "(= blocklists.N.rows); the file then holds the URLs and ids of the rows on that list"
)
ANY_OF: Final = ("keyword-nsfw", "tag-nsfw", "unsafe-score")  # what any-nsfw combines


class UnknownRule(ValueError):
    """Not a rule name; the message lists the rules."""

    def __init__(self, rule: str) -> None:
        names = ", ".join([*RULES, f"{TERM_PREFIX}<term>", f"{BLOCKLIST_PREFIX}<name>"])
        super().__init__(f"unknown rule {rule!r}; the rules are: {names}")


def parse_rule(rule: str) -> str:
    """`rule` if it names a rule (a fixed one, `term:<term>` or `blocklist:<name>`), else
    raise UnknownRule."""
    if rule in RULES or (rule.startswith(TERM_PREFIX) and rule[len(TERM_PREFIX) :].strip()):
        return rule
    if blocklist_of(rule):
        return rule
    raise UnknownRule(rule)


def blocklist_of(rule: str) -> str | None:
    """The list a `blocklist:<name>` rule names (None for any other rule)."""
    if not rule.startswith(BLOCKLIST_PREFIX):
        return None
    return rule[len(BLOCKLIST_PREFIX) :] or None
