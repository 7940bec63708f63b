"""Report artifacts: a pass's Table 1, charts and Data Docs links, as an HTML page under
`<state_dir>/reports/` (`Settings.reports_dir`) and a Prefect markdown artifact. Counts and
names only, no captions."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import TYPE_CHECKING

from shardwatch.core.names import shown
from shardwatch.present.charts import rate_bars_svg, similarity_svg
from shardwatch.present.render import markdown_escape, report_markdown
from shardwatch.present.report_html import report_page
from shardwatch.settings.config import Settings

if TYPE_CHECKING:
    from shardwatch.core.passes import PassSummary
    from shardwatch.store.repository import ResultStore


def report_path(settings: Settings, run_id: int) -> Path:
    """Where the HTML report of monitor run `run_id` is written."""
    return settings.reports_dir / f"run-{run_id}.html"


def build_report(
    settings: Settings, summary: PassSummary, store: ResultStore
) -> tuple[str, str, Path | None]:
    """(markdown, html, path of the written HTML page) for the pass's dataset, from `store`."""
    from shardwatch.store.drift import shard_rates
    from shardwatch.store.errors import UnknownDataset
    from shardwatch.store.report import dataset_report

    lines = [f"**Run {summary.run_id}:** {markdown_escape(summary.line())}"]
    if summary.failed:
        lines.append(f"**{summary.failed} shard(s) failed or were quarantined:**")
        lines += [
            f"- {markdown_escape(o.uri)} {o.outcome}: {markdown_escape(o.reason or '')}"
            for o in summary.outcomes
            if o.outcome in ("failed", "quarantined")
        ]
    if summary.data_docs:
        lines.append(f"**Data Docs:** {markdown_escape(summary.data_docs)}")
    lines.append(f"**Alerts:** {markdown_escape(summary.alerts)}")
    try:
        report = dataset_report(store, settings.dataset)
    except UnknownDataset:
        return "\n\n".join(lines), "", None
    lexicon = ", ".join(report.lexicons)
    md = report_markdown(report.total, report.labels, settings.dataset, lines, lexicon)
    rates = shard_rates(store.engine, settings.dataset)
    names = [shown(Path(r.uri).name) for r in rates]
    charts = []
    sim = report.total.similarity
    if sim is not None:
        charts.append(similarity_svg(sim.histogram, sim.threshold))
    charts.append(
        rate_bars_svg(
            "NSFW tag rate per shard",
            names,
            [None if r.tag_nsfw is None or not r.rows else r.tag_nsfw / r.rows for r in rates],
            _limit(settings, "nsfw-tag-rate"),
        )
    )
    charts.append(
        rate_bars_svg(
            "keyword-NSFW rate per shard",
            names,
            [
                None if r.keyword_nsfw is None or not r.rows else r.keyword_nsfw / r.rows
                for r in rates
            ],
            _limit(settings, "keyword-nsfw-rate"),
        )
    )
    out = report_path(settings, summary.run_id)
    docs_href = (  # relative: the page and the site move together (no local path inside)
        Path(os.path.relpath(summary.data_docs, out.parent)).as_posix()
        if summary.data_docs
        else None
    )
    page = report_page(settings.dataset, summary, report.total, report.labels, charts, docs_href)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    images = "\n".join(
        f"![chart](data:image/svg+xml;base64,{base64.b64encode(c.encode()).decode()})"
        for c in charts
    )
    md += f"\n**Charts:** {markdown_escape(out.name)} (reports folder)\n\n{images}\n"
    return md, page, out


def _limit(settings: Settings, rule: str) -> float | None:
    for r in settings.alerts.active_rules():
        if r.name == rule:
            return r.max
    return None


def publish_artifacts(settings: Settings, summary: PassSummary, store: ResultStore) -> Path | None:
    """Write the HTML page and, inside a Prefect run, a markdown artifact."""
    md, _, path = build_report(settings, summary, store)
    try:
        from prefect.artifacts import create_markdown_artifact
        from prefect.context import FlowRunContext

        if FlowRunContext.get() is not None:
            create_markdown_artifact(
                markdown=md, key="shardwatch-report", description="Table 1 and charts"
            )
    except ImportError:  # pragma: no cover - prefect is a dependency
        pass
    return path
