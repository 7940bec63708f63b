"""Charts: small self-contained SVG pictures (no plotting library), every label escaped."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from shardwatch.core.metrics import HIST_BINS_PER_UNIT, HIST_LO, Histogram

_W, _H, _PAD = 640, 240, 36
_LEFT = 100  # room for the y axis (title, ticks) and the first slanted shard name
_NAMES_H = 96  # below the bars of a per-shard chart: the shard names, slanted
MAX_NAME = 22  # a longer shard name keeps its start and end around "…"
MAX_LABELS = 40  # more shards than this: every k-th bar is named


def short_name(name: str, limit: int = MAX_NAME) -> str:
    """`name` cut to `limit` characters, keeping both ends (shard numbers are often last)."""
    if len(name) <= limit:
        return name
    head = (limit - 1) // 2
    return name[:head] + "…" + name[len(name) - (limit - 1 - head) :]


def similarity_svg(hist: Histogram, threshold: float, *, lo: float = 0.0, hi: float = 0.6) -> str:
    """The similarity histogram between `lo` and `hi` (0.005-wide bins), with the cut-off."""
    first = round((lo - HIST_LO) * HIST_BINS_PER_UNIT)
    last = round((hi - HIST_LO) * HIST_BINS_PER_UNIT)
    counts = hist.counts[first:last]
    top = max(counts, default=0) or 1
    width = (_W - 2 * _PAD) / max(1, len(counts))
    bars = []
    for i, count in enumerate(counts):
        h = (_H - 2 * _PAD) * count / top
        x = _PAD + i * width
        bars.append(
            f'<rect x="{x:.1f}" y="{_H - _PAD - h:.1f}" width="{max(width - 0.5, 0.5):.1f}" '
            f'height="{h:.1f}" fill="#4c78a8"><title>{count}</title></rect>'
        )
    cut = _PAD + (threshold - lo) / (hi - lo) * (_W - 2 * _PAD)
    title = f"caption-image similarity ({hist.total:,} values; cut-off {threshold:g})"
    return _svg(
        title,
        "".join(bars)
        + f'<line x1="{cut:.1f}" x2="{cut:.1f}" y1="{_PAD}" y2="{_H - _PAD}" stroke="#e45756" '
        'stroke-dasharray="4 3"/>'
        + _axis_labels([f"{lo:g}", f"{(lo + hi) / 2:g}", f"{hi:g}"])
        + _axes("caption-image similarity", "values per 0.005 bin", f"{top:,}", _H + 16),
        height=_H + 16,
    )


def rate_bars_svg(
    title: str, names: Sequence[str], rates: Sequence[float | None], limit: float | None = None
) -> str:
    """One bar per shard (a rate in [0, 1]; None: not available), with an optional limit;
    each bar is named under the axis (escaped, shortened; every k-th when there are many)."""
    height = _H + _NAMES_H
    top = max([r for r in rates if r is not None] + [limit or 0.0, 0.01])
    width = (_W - _LEFT - _PAD) / max(1, len(rates))
    every = math.ceil(len(rates) / MAX_LABELS) if rates else 1
    base = _H - _PAD
    parts = []
    for i, (name, rate) in enumerate(zip(names, rates, strict=True)):
        x = _LEFT + i * width
        middle = x + width / 2
        if i % every == 0:
            parts.append(
                f'<text class="shard" x="{middle:.1f}" y="{base + 12}" font-size="10" '
                f'text-anchor="end" transform="rotate(-45 {middle:.1f} {base + 12})">'
                f"{escape(short_name(name))}<title>{escape(name)}</title></text>"
            )
        if rate is None:
            parts.append(
                f'<text x="{middle:.1f}" y="{base - 4}" font-size="10" '
                f'text-anchor="middle">n/a<title>{escape(name)}</title></text>'
            )
            continue
        h = (_H - 2 * _PAD) * rate / top
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{base - h:.1f}" width="{max(width - 2, 1):.1f}" '
            f'height="{h:.1f}" fill="#f58518"><title>{escape(name)}: {rate:.2%}</title></rect>'
        )
    if limit is not None:
        y = base - (_H - 2 * _PAD) * limit / top
        parts.append(
            f'<line x1="{_LEFT}" x2="{_W - _PAD}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e45756" '
            f'stroke-dasharray="4 3"><title>limit {limit:.2%}</title></line>'
        )
    return _svg(
        title,
        "".join(parts) + _axes("shard", "share of rows", f"{top:.1%}", height, x_at=_LEFT),
        height=height,
    )


def _axes(x_title: str, y_title: str, y_top: str, height: int, *, x_at: int = _PAD) -> str:
    """The axis lines, their titles, and the y axis's 0 and top values."""
    base = _H - _PAD
    return (
        f'<line x1="{x_at}" x2="{_W - _PAD}" y1="{base}" y2="{base}" stroke="#333"/>'
        f'<line x1="{x_at}" x2="{x_at}" y1="{_PAD}" y2="{base}" stroke="#333"/>'
        f'<text class="axis" x="{(x_at + _W - _PAD) / 2:.1f}" y="{height - 4}" font-size="11" '
        f'text-anchor="middle">{escape(x_title)}</text>'
        f'<text class="axis" x="12" y="{(_PAD + base) / 2:.1f}" font-size="11" '
        f'text-anchor="middle" transform="rotate(-90 12 {(_PAD + base) / 2:.1f})">'
        f"{escape(y_title)}</text>"
        f'<text x="{x_at - 3}" y="{base}" font-size="10" text-anchor="end">0</text>'
        f'<text x="{x_at - 3}" y="{_PAD + 4}" font-size="10" text-anchor="end">'
        f"{escape(y_top)}</text>"
    )


def _axis_labels(labels: Sequence[str]) -> str:
    """Tick labels spread evenly under the x axis."""
    step = (_W - 2 * _PAD) / max(1, len(labels) - 1)
    return "".join(
        f'<text x="{_PAD + i * step:.1f}" y="{_H - 20}" font-size="10" text-anchor="middle">'
        f"{escape(label)}</text>"
        for i, label in enumerate(labels)
    )


def _svg(title: str, body: str, *, height: int = _H) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height}" '
        f'viewBox="0 0 {_W} {height}" font-family="sans-serif" role="img" '
        f'aria-label="{escape(title)}">'
        f'<text x="{_PAD}" y="20" font-size="13">{escape(title)}</text>{body}</svg>'
    )
