"""Render: metrics as a readable Table-1-style summary for a terminal (no raw captions)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from shardwatch.metrics import ShardMetrics
from shardwatch.profiles import tag_keys
from shardwatch.stats import Lift, term_lifts


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _lift(value: Lift | None) -> str:
    return "-" if value is None else value.text()


def table1(metrics: ShardMetrics, labels: Sequence[str], title: str) -> Table:
    """Per-term matches, keyword-NSFW share, tag counts and substring hits (Table 1)."""
    has_tags = metrics.nsfw_flag_counts is not None
    table = Table(title=Text(title), title_justify="left")  # no markup: names
    table.add_column("term")
    table.add_column("mode")
    table.add_column("matches", justify="right")
    table.add_column("keyword-NSFW (%)", justify="right")
    table.add_column("lift [95% CI]", justify="right")
    if has_tags:
        for label in tag_keys(labels):
            table.add_column(Text(label), justify="right")  # labels come from config
    table.add_column("substring matches", justify="right")
    lifts = term_lifts(metrics)
    for term, stats in (metrics.terms or {}).items():
        row = [
            Text(term),
            stats.mode,
            f"{stats.matches:,}",
            f"{stats.keyword_nsfw:,} ({_pct(stats.keyword_nsfw, stats.matches)})",
            _lift(lifts[term]["keyword"]),
        ]
        if has_tags:
            counts = stats.nsfw_flag_counts or {}
            row += [f"{counts.get(k, 0):,}" for k in tag_keys(labels)]
        row.append(f"{stats.substring_matches:,}")
        table.add_row(*row)
    return table


def paper_table(metrics: ShardMetrics, title: str, label: str = "NSFW") -> Table | Text:
    """Table 1 as the audit paper lays it out: per term, whole-word and substring matches
    side by side (how much the matching rule changes the count), the keyword-NSFW share of
    the term's matches with its lift over the dataset, and the `label`-tagged share."""
    if metrics.terms is None:
        return Text("Table 1 is unavailable: no shard has a TEXT column.")
    has_tags = metrics.nsfw_flag_counts is not None
    table = Table(title=Text(title), title_justify="left")  # no markup: names
    for name in (
        "term",
        "word matches",
        "substring matches",
        "substring / word",
        "keyword-NSFW",
        "lift [95% CI]",
    ):
        table.add_column(name, justify="left" if name == "term" else "right")
    if has_tags:
        table.add_column(Text(f"tagged {label}"), justify="right")
    lifts = term_lifts(metrics, label)
    for term, stats in metrics.terms.items():
        word = stats.matches if stats.mode == "word" else None
        ratio = f"{stats.substring_matches / word:.1f}x" if word else "-"
        row: list[Text | str] = [
            Text(term),
            "-" if word is None else f"{word:,}",
            f"{stats.substring_matches:,}",
            ratio,
            f"{stats.keyword_nsfw:,} ({_pct(stats.keyword_nsfw, stats.matches)})",
            _lift(lifts[term]["keyword"]),
        ]
        if has_tags:
            tags = stats.nsfw_flag_counts or {}
            row.append(f"{tags.get(label, 0):,} ({_pct(tags.get(label, 0), sum(tags.values()))})")
        table.add_row(*row)
    return table


def summary(metrics: ShardMetrics, labels: Sequence[str], title: str) -> Group:
    """The overall facts, duplicates, nulls and notes, then Table 1."""
    lines = Text()
    lines.append(f"{title}\n", style="bold")
    for fact in overall_facts(metrics):
        lines.append(f"{fact}\n")
    if metrics.duplicates:
        dups = ", ".join(f"{k} {v:,}" for k, v in metrics.duplicates.items())
        lines.append(f"duplicates within shards: {dups}\n")
    nulls = ", ".join(f"{k} {v:,}" for k, v in metrics.nulls.items() if v)
    if nulls:
        lines.append(f"nulls: {nulls}\n")
    for note in metrics.notes:
        lines.append(f"note: {note}\n", style="yellow")
    parts: list[Text | Table] = [lines]
    if metrics.terms is not None:
        parts.append(table1(metrics, labels, "Table 1: watched terms"))
    return Group(*parts)


def print_summary(
    console: Console,
    shards: Sequence[tuple[str, ShardMetrics]],
    total: ShardMetrics,
    labels: Sequence[str],
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
                Text(uri, overflow="fold"),
                f"{sm.rows:,}",
                "-" if sm.keyword_nsfw_rows is None else f"{sm.keyword_nsfw_rows:,}",
                "-" if tag is None else f"{tag:,}",
                "-" if below is None else f"{below:,}",
            )
        console.print(per_shard)
    title = "total" if len(shards) != 1 else shards[0][0]
    console.print(summary(total, labels, title))


# --- Markdown and CSV (shardwatch report) -------------------------------------------------

_MD_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character
_MD_SPACE = re.compile(r"[\r\n\t\v\f\u2028\u2029]")


def markdown_escape(text: str) -> str:
    """Plain text safe in a Markdown paragraph or table cell: all ASCII punctuation is
    backslash-escaped (CommonMark allows it for any of them; GFM tables need `\\|`) and line
    breaks become spaces."""
    return _MD_SPECIAL.sub(r"\\\1", _MD_SPACE.sub(" ", text))


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
    if metrics.unavailable:
        missing = ", ".join(name(m) for m in metrics.unavailable)
        facts.append(f"unavailable (columns missing): {missing}")
    for metric, n in metrics.partially_available.items():
        facts.append(f"{name(metric)} missing in {n} of {metrics.shards} shards")
    return facts


def table1_markdown(metrics: ShardMetrics, labels: Sequence[str]) -> str:
    """Table 1 as a GitHub-flavoured Markdown table; term and label names are escaped."""
    if metrics.terms is None:
        return "Table 1 is unavailable: no shard has a TEXT column.\n"
    tag_keys = _tag_keys(metrics, labels)
    header = ["term", "mode", "matches", "keyword-NSFW", "keyword-NSFW %", "lift [95% CI]"]
    header += [markdown_escape(k) for k in tag_keys] + ["substring matches"]
    lines = [
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
            f"{stats.substring_matches:,}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def report_markdown(
    metrics: ShardMetrics, labels: Sequence[str], dataset: str, intro: Sequence[str] = ()
) -> str:
    """A Markdown document: a title, intro lines, Table 1 and an overall line.

    The dataset, term and label names come from config or data and are escaped; `intro`
    lines are the caller's own text and are written as given."""
    parts = [f"## shardwatch report: dataset {markdown_escape(dataset)}", ""]
    if intro:
        parts += [*intro, ""]
    parts += [table1_markdown(metrics, labels)]
    parts.append("**Overall:** " + "; ".join(overall_facts(metrics, markdown_escape)) + "\n")
    return "\n".join(parts)


def table1_csv(metrics: ShardMetrics, labels: Sequence[str]) -> str:
    """Table 1 as CSV, one row per term (tag columns only when a shard has the tag)."""
    tag_keys = _tag_keys(metrics, labels)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    head = ["term", "mode", "matches", "keyword_nsfw", "keyword_nsfw_pct"]
    writer.writerow([*head, *tag_keys, "substring_matches"])
    for term, stats in (metrics.terms or {}).items():
        counts = stats.nsfw_flag_counts or {}
        pct = round(100.0 * stats.keyword_nsfw / stats.matches, 4) if stats.matches else ""
        tags = [counts.get(k, 0) for k in tag_keys]
        row = [term, stats.mode, stats.matches, stats.keyword_nsfw, pct]
        writer.writerow([*row, *tags, stats.substring_matches])
    return out.getvalue()
