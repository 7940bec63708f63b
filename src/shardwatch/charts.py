"""Charts: small self-contained SVG pictures (no plotting library), every label escaped."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from shardwatch.metrics import HIST_BINS_PER_UNIT, HIST_LO, Histogram

_W, _H, _PAD = 640, 240, 36


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
        'stroke-dasharray="4 3"/>' + _axis_labels([f"{lo:g}", f"{(lo + hi) / 2:g}", f"{hi:g}"]),
    )


def rate_bars_svg(
    title: str, names: Sequence[str], rates: Sequence[float | None], limit: float | None = None
) -> str:
    """One bar per shard (a rate in [0, 1]; None: not available), with an optional limit."""
    top = max([r for r in rates if r is not None] + [limit or 0.0, 0.01])
    width = (_W - 2 * _PAD) / max(1, len(rates))
    parts = []
    for i, (name, rate) in enumerate(zip(names, rates, strict=True)):
        x = _PAD + i * width
        if rate is None:
            parts.append(
                f'<text x="{x + width / 2:.1f}" y="{_H - _PAD - 4}" font-size="10" '
                f'text-anchor="middle">n/a<title>{escape(name)}</title></text>'
            )
            continue
        h = (_H - 2 * _PAD) * rate / top
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{_H - _PAD - h:.1f}" width="{max(width - 2, 1):.1f}" '
            f'height="{h:.1f}" fill="#f58518"><title>{escape(name)}: {rate:.2%}</title></rect>'
        )
    if limit is not None:
        y = _H - _PAD - (_H - 2 * _PAD) * limit / top
        parts.append(
            f'<line x1="{_PAD}" x2="{_W - _PAD}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e45756" '
            'stroke-dasharray="4 3"/>'
        )
    return _svg(title, "".join(parts) + _axis_labels(["0", f"{top:.1%} max"], vertical=True))


def _axis_labels(labels: Sequence[str], vertical: bool = False) -> str:
    if vertical:
        return (
            f'<text x="4" y="{_H - _PAD}" font-size="10">{escape(labels[0])}</text>'
            f'<text x="4" y="{_PAD}" font-size="10">{escape(labels[1])}</text>'
        )
    step = (_W - 2 * _PAD) / max(1, len(labels) - 1)
    return "".join(
        f'<text x="{_PAD + i * step:.1f}" y="{_H - 12}" font-size="10" text-anchor="middle">'
        f"{escape(label)}</text>"
        for i, label in enumerate(labels)
    )


def _svg(title: str, body: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" font-family="sans-serif">'
        f'<text x="{_PAD}" y="20" font-size="13">{escape(title)}</text>{body}</svg>'
    )
