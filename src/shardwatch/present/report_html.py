"""The pass report as one self-contained HTML page: Table 1 as an HTML table with formatted
numbers, the overall figures, the SVG charts and the failures. Every name from config or data
is escaped; no local path appears (shard files by name, Data Docs by a relative link)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape as _html_escape
from pathlib import PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from shardwatch.core.metrics import ShardMetrics
from shardwatch.core.names import shown
from shardwatch.core.profiles import tag_keys
from shardwatch.core.stats import term_lifts
from shardwatch.present.render import overall_facts

if TYPE_CHECKING:
    from shardwatch.core.passes import PassSummary

_STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}"
    "th,td{border:1px solid #ccc;padding:.25em .6em}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}"
    "caption{text-align:left;font-weight:bold;padding:.3em 0}"
)
_REMOTE = ("http", "https", "s3", "gs", "gcs", "az", "abfs", "hf")


def escape(text: str) -> str:
    """Untrusted text for HTML: shown (control, escape and bidi characters escaped visibly:
    names.shown), then HTML-escaped."""
    return _html_escape(shown(text))


def public_shard_name(uri: str) -> str:
    """What a reader elsewhere may see of a shard: a remote URL as it is, a local file by
    its name only (never its folder)."""
    parts = urlsplit(uri)
    if parts.scheme.lower() in _REMOTE and parts.netloc:
        return uri
    path = parts.path if parts.scheme.lower() == "file" else uri
    name = PurePosixPath(path).name
    return PureWindowsPath(name).name or name or "shard"


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def table1_html(metrics: ShardMetrics, labels: Sequence[str]) -> str:
    """Table 1: per watched term its matches, keyword-NSFW share, lift with its 95% interval,
    tag counts and substring matches; numbers formatted, names escaped."""
    if metrics.terms is None:
        return "<p>Table 1 is unavailable: no shard has a TEXT column.</p>"
    tags = tag_keys(labels) if metrics.nsfw_flag_counts is not None else ()
    head = ["term", "mode", "matches", "keyword-NSFW", "keyword-NSFW %", "lift [95% CI]"]
    head += [*tags, "substring matches"]
    lifts = term_lifts(metrics)
    rows = []
    for term, stats in metrics.terms.items():
        counts = stats.nsfw_flag_counts or {}
        lift = lifts[term]["keyword"]
        numbers = [
            f"{stats.matches:,}",
            f"{stats.keyword_nsfw:,}",
            _pct(stats.keyword_nsfw, stats.matches),
            "-" if lift is None else lift.text(),
            *(f"{counts.get(k, 0):,}" for k in tags),
            f"{stats.substring_matches:,}",
        ]
        cells = f"<td>{escape(term)}</td><td>{escape(stats.mode)}</td>"
        cells += "".join(f'<td class="n">{escape(n)}</td>' for n in numbers)
        rows.append(f"<tr>{cells}</tr>")
    header = "".join(f'<th scope="col">{escape(h)}</th>' for h in head)
    return (
        '<table class="table1"><caption>Table 1: watched terms</caption>'
        f"<thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def report_page(
    dataset: str,
    summary: PassSummary,
    metrics: ShardMetrics,
    labels: Sequence[str],
    charts: Sequence[str],
    docs_href: str | None,
) -> str:
    """The whole page; `docs_href` is a relative link to the Data Docs index (or None)."""
    failed = "".join(
        f"<li><code>{escape(public_shard_name(o.uri))}</code> {escape(o.outcome)}: "
        f"{escape(o.reason or '')}</li>"
        for o in summary.outcomes
        if o.outcome in ("failed", "quarantined")
    )
    docs = f'<p><a href="{escape(docs_href)}">Data Docs</a></p>' if docs_href else ""
    facts = "".join(f"<li>{escape(f)}</li>" for f in overall_facts(metrics))
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\">"
        f"<title>shardwatch run {summary.run_id}</title><style>{_STYLE}</style></head><body>"
        f"<h2>shardwatch: dataset {escape(dataset)}, run {summary.run_id}</h2>"
        f"<p>{escape(summary.line())}</p><p>{escape(summary.alerts)}</p>{docs}"
        + (f"<h3>Failed or quarantined</h3><ul>{failed}</ul>" if failed else "")
        + table1_html(metrics, labels)
        + f"<h3>Overall</h3><ul>{facts}</ul>"
        + "".join(f"<figure>{c}</figure>" for c in charts)
        + "</body></html>"
    )
