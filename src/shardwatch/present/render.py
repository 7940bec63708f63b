"""Render: metrics as a readable Table-1-style summary for a terminal (no raw captions)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Mapping, Sequence

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from shardwatch.core.metrics import ShardMetrics
from shardwatch.core.names import shown
from shardwatch.core.profiles import tag_keys
from shardwatch.core.stats import Lift, term_lifts


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _lift(value: Lift | None) -> str:
    return "-" if value is None else value.text()


def _opt_count(counts: Mapping[str, int] | None, key: str) -> str:
    """A count from an optional map ('-' where the map is missing, e.g. older stored rows)."""
    return "-" if counts is None else f"{counts.get(key, 0):,}"


def table1_title(lexicon: str | None) -> str:
    return "Table 1: watched terms" + (f" (lexicon {lexicon})" if lexicon else "")


def table1(metrics: ShardMetrics, labels: Sequence[str], title: str) -> Table:
    """Per-term matches, keyword-NSFW share, tag counts and substring hits (Table 1)."""
    has_tags = metrics.nsfw_flag_counts is not None
    table = Table(title=Text(shown(title)), title_justify="left")  # no markup: names
    table.add_column("term")
    table.add_column("mode")
    table.add_column("matches", justify="right")
    table.add_column("keyword-NSFW (%)", justify="right")
    table.add_column("lift [95% CI]", justify="right")
    if has_tags:
        for label in tag_keys(labels):
            table.add_column(Text(shown(label)), justify="right")  # labels come from config
        for label in tag_keys(labels):  # the paper's column: the tag among keyword-NSFW
            table.add_column(Text(f"kw-NSFW {shown(label)}"), justify="right")
    table.add_column("substring matches", justify="right")
    lifts = term_lifts(metrics)
    for term, stats in (metrics.terms or {}).items():
        row = [
            Text(shown(term)),
            stats.mode,
            f"{stats.matches:,}",
            f"{stats.keyword_nsfw:,} ({_pct(stats.keyword_nsfw, stats.matches)})",
            _lift(lifts[term]["keyword"]),
        ]
        if has_tags:
            counts = stats.nsfw_flag_counts or {}
            row += [f"{counts.get(k, 0):,}" for k in tag_keys(labels)]
            kw_tags = stats.keyword_nsfw_by_tag
            row += [_opt_count(kw_tags, k) for k in tag_keys(labels)]
        row.append(f"{stats.substring_matches:,}")
        table.add_row(*row)
    return table


def summary(
    metrics: ShardMetrics, labels: Sequence[str], title: str, lexicon: str | None = None
) -> Group:
    """The overall facts, duplicates, nulls and notes, then Table 1 (naming `lexicon`)."""
    lines = Text()
    lines.append(f"{shown(title)}\n", style="bold")
    for fact in overall_facts(metrics):
        lines.append(f"{fact}\n")
    if metrics.duplicates:
        dups = ", ".join(f"{k} {v:,}" for k, v in metrics.duplicates.items())
        lines.append(f"duplicates within shards: {dups}\n")
    nulls = ", ".join(f"{k} {v:,}" for k, v in metrics.nulls.items() if v)
    if nulls:
        lines.append(f"nulls: {nulls}\n")
    for note in metrics.notes:
        lines.append(f"note: {shown(note)}\n", style="yellow")
    parts: list[Text | Table] = [lines]
    if metrics.terms is not None:
        parts.append(table1(metrics, labels, table1_title(lexicon)))
    return Group(*parts)


def print_summary(
    console: Console,
    shards: Sequence[tuple[str, ShardMetrics]],
    total: ShardMetrics,
    labels: Sequence[str],
    lexicon: str | None = None,
) -> None:
    """One line per shard, then the dataset total in full."""
    if len(shards) > 1:
        per_shard = Table(title="shards", title_justify="left")
        for col in ("shard", "rows", "keyword-NSFW", "NSFW tag", "below threshold"):
            per_shard.add_column(col, justify="left" if col == "shard" else "right")
        for uri, sm in shards:
            tag = (sm.nsfw_flag_counts or {}).get("NSFW")
            below = sm.similarity.below_threshold if sm.similarity else None
            per_shard.add_row(
                Text(shown(uri), overflow="fold"),
                f"{sm.rows:,}",
                "-" if sm.keyword_nsfw_rows is None else f"{sm.keyword_nsfw_rows:,}",
                "-" if tag is None else f"{tag:,}",
                "-" if below is None else f"{below:,}",
            )
        console.print(per_shard)
    title = "total" if len(shards) != 1 else shards[0][0]
    console.print(summary(total, labels, title, lexicon))


# --- Markdown and CSV (shardwatch report) -------------------------------------------------

_MD_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character


def markdown_escape(text: str) -> str:
    """Plain text safe in a Markdown paragraph or table cell: all ASCII punctuation is
    backslash-escaped (CommonMark allows it for any of them; GFM tables need `\\|`) and line
    breaks, control characters and bidi controls are escaped visibly (names.shown)."""
    return _MD_SPECIAL.sub(r"\\\1", shown(text))


def _tag_keys(metrics: ShardMetrics, labels: Sequence[str]) -> tuple[str, ...]:
    return tag_keys(labels) if metrics.nsfw_flag_counts is not None else ()


def overall_facts(metrics: ShardMetrics, name: Callable[[str], str] = str) -> list[str]:
    """The dataset-level figures beside Table 1, as short phrases (`name` wraps the strings
    that come from config or data: labels and metric names)."""
    rows = metrics.rows
    facts = [f"rows {rows:,}"]
    if metrics.nsfw_flag_counts is not None:
        tags = ", ".join(
            f"{name(k)} {v:,} ({_pct(v, rows)})" for k, v in metrics.nsfw_flag_counts.items()
        )
        facts.append(f"NSFW tag: {tags}")
    if metrics.keyword_nsfw_rows is not None:
        kw = metrics.keyword_nsfw_rows
        facts.append(f"keyword-NSFW rows {kw:,} ({_pct(kw, rows)})")
    if metrics.paper_keyword_nsfw_rows is not None:
        paper = metrics.paper_keyword_nsfw_rows
        facts.append(f"flagged by the paper's substring keywords {paper:,} ({_pct(paper, rows)})")
    by_tag = metrics.keyword_nsfw_by_tag
    if by_tag is not None:
        tagged = sum(by_tag.values())
        split = ", ".join(f"{name(k)} {v:,} ({_pct(v, tagged)})" for k, v in by_tag.items())
        facts.append(f"the tag on the {tagged:,} keyword-NSFW rows: {split}")
    if metrics.unsafe_rows is not None:
        unsafe = metrics.unsafe_rows
        fact = f"second NSFW score above its threshold {unsafe:,} ({_pct(unsafe, rows)})"
        if metrics.keyword_unsafe_rows is not None:
            fact += f", {metrics.keyword_unsafe_rows:,} of them keyword-NSFW"
        facts.append(fact)
    if metrics.unsafe_by_tag is not None:
        flagged = sum(metrics.unsafe_by_tag.values())
        split = ", ".join(
            f"{name(k)} {v:,} ({_pct(v, flagged)})" for k, v in metrics.unsafe_by_tag.items()
        )
        facts.append(f"the tag on the {flagged:,} rows the score calls unsafe: {split}")
    sim = metrics.similarity
    if sim is not None:
        q = sim.histogram
        facts.append(
            f"similarity below {sim.threshold}: {sim.below_threshold:,} of {sim.count:,} values "
            f"({_pct(sim.below_threshold, sim.count)}), {sim.null:,} null; "
            f"min {_fmt(sim.min)}, mean {_fmt(sim.mean)}, max {_fmt(sim.max)}; "
            f"p05 {_fmt(q.quantile(0.05))}, median {_fmt(q.quantile(0.5))}, "
            f"p95 {_fmt(q.quantile(0.95))} (from the merged histogram)"
        )
    facts += blocklist_facts(metrics, name)
    if metrics.unavailable:
        missing = ", ".join(name(m) for m in metrics.unavailable)
        facts.append(f"unavailable (columns missing): {missing}")
    for metric, n in metrics.partially_available.items():
        facts.append(f"{name(metric)} missing in {n} of {metrics.shards} shards")
    return facts


def blocklist_facts(metrics: ShardMetrics, name: Callable[[str], str] = str) -> list[str]:
    """One phrase per blocklist: its kind, entries, the rows matching it and the entries
    matched. Counts only: never an entry, its id, or a matched URL, id or domain."""
    facts = []
    for list_name, b in (metrics.blocklists or {}).items():
        size = f"{b.entries:,} entries"
        if len(b.versions) > 1:
            size = f"{len(b.versions)} versions, the largest {size}"
        fact = (
            f"blocklist {name(shown(list_name))} ({name(b.kind)}, {size}): {b.rows:,} rows matched "
            f"({_pct(b.rows, metrics.rows)}), {b.matched_entries:,} entries matched"
        )
        if b.shards < metrics.shards:
            fact += f"; checked in {b.shards:,} of {metrics.shards:,} shards"
        facts.append(fact)
    return facts


def table1_markdown(
    metrics: ShardMetrics, labels: Sequence[str], lexicon: str | None = None
) -> str:
    """Table 1 as a GitHub-flavoured Markdown table; term and label names are escaped."""
    if metrics.terms is None:
        return "Table 1 is unavailable: no shard has a TEXT column.\n"
    tag_keys = _tag_keys(metrics, labels)
    header = ["term", "mode", "matches", "keyword-NSFW", "keyword-NSFW %", "lift [95% CI]"]
    header += [markdown_escape(k) for k in tag_keys]
    header += [f"kw-NSFW {markdown_escape(k)}" for k in tag_keys] + ["substring matches"]
    lines = [
        f"**{markdown_escape(table1_title(lexicon))}**",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join([" --- ", " --- "] + [" ---: "] * (len(header) - 2)) + "|",
    ]
    lifts = term_lifts(metrics)
    for term, stats in metrics.terms.items():
        counts = stats.nsfw_flag_counts or {}
        cells = [
            markdown_escape(term),
            stats.mode,
            f"{stats.matches:,}",
            f"{stats.keyword_nsfw:,}",
            _pct(stats.keyword_nsfw, stats.matches),
            markdown_escape(_lift(lifts[term]["keyword"])),
            *(f"{counts.get(k, 0):,}" for k in tag_keys),
            *(_opt_count(stats.keyword_nsfw_by_tag, k) for k in tag_keys),
            f"{stats.substring_matches:,}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def report_markdown(
    metrics: ShardMetrics,
    labels: Sequence[str],
    dataset: str,
    intro: Sequence[str] = (),
    lexicon: str | None = None,
) -> str:
    """A Markdown document: a title, intro lines, Table 1 and an overall line.

    The dataset, term and label names come from config or data and are escaped; `intro`
    lines are the caller's own text and are written as given."""
    parts = [f"## shardwatch report: dataset {markdown_escape(dataset)}", ""]
    if intro:
        parts += [*intro, ""]
    parts += [table1_markdown(metrics, labels, lexicon)]
    parts.append("**Overall:** " + "; ".join(overall_facts(metrics, markdown_escape)) + "\n")
    return "\n".join(parts)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(name: str) -> str:
    """A name for a CSV cell: shown (names.shown), and a leading `=`, `+`, `-`, `@`, tab or
    CR (a spreadsheet would run it as a formula) neutralised by a leading `'`."""
    text = shown(name)
    risky = text.startswith(_FORMULA_START) or name.startswith(_FORMULA_START)
    return "'" + text if risky else text


def table1_csv(metrics: ShardMetrics, labels: Sequence[str], lexicon: str = "") -> str:
    """Table 1 as CSV, one row per term (tag columns only when a shard has the tag): the tag
    among all matches, then among the keyword-NSFW matches (`keyword_nsfw_<label>`, empty
    where stored rows predate it); the first column names the lexicon."""
    tag_keys = _tag_keys(metrics, labels)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    head = ["lexicon", "term", "mode", "matches", "keyword_nsfw", "keyword_nsfw_pct"]
    kw_head = [f"keyword_nsfw_{k}" for k in tag_keys]
    writer.writerow([*head, *map(csv_cell, tag_keys), *map(csv_cell, kw_head), "substring_matches"])
    for term, stats in (metrics.terms or {}).items():
        counts = stats.nsfw_flag_counts or {}
        pct = round(100.0 * stats.keyword_nsfw / stats.matches, 4) if stats.matches else ""
        tags = [counts.get(k, 0) for k in tag_keys]
        kw = stats.keyword_nsfw_by_tag
        kw_tags = ["" if kw is None else kw.get(k, 0) for k in tag_keys]
        names = [csv_cell(lexicon), csv_cell(term), csv_cell(stats.mode)]
        row = [*names, stats.matches, stats.keyword_nsfw, pct]
        writer.writerow([*row, *tags, *kw_tags, stats.substring_matches])
    return out.getvalue()
