"""Table 1 as the audit paper computed it, beside the precise figures of the dataset's
lexicon (`report --paper`, `scan --format paper`).

The paper's method (Birhane et al. 2021, Table 1): N_match is the rows whose TEXT holds the
term as a plain substring; N_nsfw is those of them whose TEXT or URL holds one of the 7
keywords as a substring; the NSFW tag is counted among the N_nsfw rows. The precise method is
the lexicon's own: the term in its mode with its forms, its keyword rule, and the tag among the
term's keyword-NSFW matches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text

from shardwatch.core.lexicon import PAPER_KEYWORDS
from shardwatch.core.metrics import ShardMetrics
from shardwatch.core.names import shown
from shardwatch.core.profiles import tag_keys

PAPER_METHOD = (
    "paper's method: N_match = rows whose TEXT holds the term as a substring; N_nsfw = those "
    f"whose TEXT or URL holds any of {', '.join(PAPER_KEYWORDS)} as a substring; tags among "
    "N_nsfw"
)


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def _count(counts: Mapping[str, int] | None, key: str) -> str:
    return "-" if counts is None else f"{counts.get(key, 0):,}"


def paper_table(
    metrics: ShardMetrics, labels: Sequence[str], title: str, lexicon: str
) -> Group | Text:
    """Per term: the paper's N_match, N_nsfw (%) and tag counts among N_nsfw, then the
    lexicon's matches, keyword-NSFW (%) and tag counts among those."""
    if metrics.terms is None:
        return Text("Table 1 is unavailable: no shard has a TEXT column.")
    terms = metrics.terms
    if metrics.paper_keyword_nsfw_rows is None or any(
        s.paper_keyword_nsfw is None for s in terms.values()
    ):
        return Text(
            "The paper's figures are unavailable: some shards were stored before shardwatch "
            "counted them; re-ingest them (shardwatch ingest --force) for report --paper."
        )
    keys = tag_keys(labels) if metrics.nsfw_flag_counts is not None else ()
    table = Table(title=Text(shown(title)), title_justify="left")  # no markup: names
    table.add_column("term", no_wrap=True, min_width=11)
    table.add_column("N_match", justify="right", no_wrap=True)
    table.add_column("N_nsfw (%)", justify="right", no_wrap=True)
    for key in keys:
        table.add_column(Text(shown(key)), justify="right", no_wrap=True)
    table.add_column(Text(f"{shown(lexicon)}: matches"), justify="right")
    table.add_column("keyword-NSFW (%)", justify="right", no_wrap=True)
    for key in keys:
        table.add_column(Text(f"kw {shown(key)}"), justify="right", no_wrap=True)
    for term, stats in terms.items():
        paper = stats.paper_keyword_nsfw or 0
        row: list[Text | str] = [
            Text(shown(term)),
            f"{stats.substring_matches:,}",
            f"{paper:,} ({_pct(paper, stats.substring_matches)})",
        ]
        row += [_count(stats.paper_keyword_nsfw_by_tag, k) for k in keys]
        row += [
            f"{stats.matches:,}",
            f"{stats.keyword_nsfw:,} ({_pct(stats.keyword_nsfw, stats.matches)})",
        ]
        row += [_count(stats.keyword_nsfw_by_tag, k) for k in keys]
        table.add_row(*row)
    rows = metrics.rows
    notes = Text(
        "columns: the paper's N_match, N_nsfw and the tag among N_nsfw; then the lexicon's "
        "matches, keyword-NSFW rows and the tag among them (kw).\n"
        f"{PAPER_METHOD}.\nprecise method: lexicon {lexicon} (terms in their mode with their "
        "forms; its own keyword rule; docs/lexicons.md).\n"
        f"rows {rows:,}; flagged by the paper's keywords {metrics.paper_keyword_nsfw_rows:,} "
        f"({_pct(metrics.paper_keyword_nsfw_rows, rows)}); by lexicon {lexicon}'s "
        f"{metrics.keyword_nsfw_rows or 0:,} ({_pct(metrics.keyword_nsfw_rows or 0, rows)})"
    )
    return Group(table, notes)
