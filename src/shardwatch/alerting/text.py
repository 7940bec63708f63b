"""Alert text: how an alert item reads in a message that leaves the machine.

- Numbers: a rate reads as a percentage with its counts, `1.22% (731 of 59,812)`; its
  threshold as a percentage, `<= 1%`; counts get thousand separators; other values (PSI,
  |z|, lift) three significant digits (`format_rate`, `format_number`, `format_threshold`).
- No local paths: a local shard is named by its file name, a remote one by its URL without
  credentials, query or fragment (`shard_label`); absolute paths inside reasons and names are
  cut to their last component (`strip_local_paths`; both in core/alert_items.py); links are
  public URLs or left out (links.py).
- One line per field: control characters, terminal escapes, bidi controls and line breaks are
  escaped visibly (`one_line`, names.shown), so a name cannot forge a line or be obeyed.
- Slack mrkdwn (`slack_text`): Slack documents entity escapes for `&`, `<` and `>` only, and
  no escape for its formatting characters, so `*`, `_`, `~` and the backtick (and their
  full-width forms) are replaced by look-alikes that Slack does not parse: `*` -> U+2217
  ASTERISK OPERATOR, `_` -> U+02CD MODIFIER LETTER LOW MACRON, `~` -> U+223C TILDE OPERATOR,
  backtick -> U+02CB MODIFIER LETTER GRAVE ACCENT (`SLACK_LOOKALIKES`). A zero-width space
  would not do: Slack uses it to *enable* formatting inside words.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass

from shardwatch.core.alert_items import AlertItem, strip_local_paths
from shardwatch.core.names import shown
from shardwatch.core.public_urls import is_public_url

# ------------------------------------------------------------------------------- numbers


def format_count(n: int) -> str:
    """`59,812`."""
    return f"{int(n):,}"


def format_number(value: float | int | str | None) -> str:
    """A count with thousand separators, else three significant digits; `n/a` for None."""
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return one_line(strip_local_paths(value))
    x = float(value)
    if x != x or x in (float("inf"), float("-inf")):
        return str(x)
    if x.is_integer():
        return format_count(int(x))
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def format_percent(count: int, support: int) -> str:
    """`count / support` as a percentage with two decimals; never `0.00%` for a non-zero
    count nor `100.00%` for a count short of the support."""
    if support <= 0:
        return "n/a"
    pct = 100.0 * count / support
    text = f"{pct:.2f}%"
    if count > 0 and text == "0.00%":
        return "<0.01%"
    if count < support and text == "100.00%":
        return ">99.99%"
    return text


def format_rate(count: int, support: int) -> str:
    """`1.22% (731 of 59,812)`."""
    return f"{format_percent(count, support)} ({format_count(count)} of {format_count(support)})"


_COUNTS = re.compile(r"^\s*(\d+) of (\d+)\s*$")  # Observation.describe() of a rate
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def rate_counts(detail: str | None) -> tuple[int, int] | None:
    """(count, support) when an item's detail is a rate's `731 of 59812`, else None."""
    found = _COUNTS.match(detail or "")
    if found is None or int(found[2]) == 0:
        return None
    return int(found[1]), int(found[2])


def format_threshold(threshold: float | int | str | None, *, rate: bool) -> str:
    """A rule's bound (`<= 0.01`, `>= 0.3`, `0.1..0.5`) with each number formatted: as a
    percentage for a rate (`<= 1%`), else like `format_number`."""
    if threshold is None:
        return "n/a"
    if not isinstance(threshold, str):
        return _percent_of(float(threshold)) if rate else format_number(threshold)

    def number(found: re.Match[str]) -> str:
        value = float(found[0])
        return _percent_of(value) if rate else format_number(value)

    return _NUMBER.sub(number, one_line(threshold))


def _percent_of(fraction: float) -> str:
    return f"{100.0 * fraction:.4g}%"


# ----------------------------------------------------------------------- escaping

SLACK_LOOKALIKES = str.maketrans(
    {
        "*": "\u2217",
        "_": "\u02cd",
        "~": "\u223c",
        "`": "\u02cb",
        "\uff0a": "\ufe61",  # full-width asterisk -> small asterisk
        "\uff3f": "\u02cd",  # full-width low line
        "\uff5e": "\u223c",  # full-width tilde
        "\uff40": "\u02cb",  # full-width grave accent
    }
)


def one_line(text: str) -> str:
    """Control characters (so terminal escapes), bidi controls, line and paragraph separators
    escaped visibly (`\\n`, `\\x1b`, `\\u202e`: names.shown), so no field can start a line."""
    return shown(text)


def slack_escape(text: str) -> str:
    """Slack's entity escapes: `<!channel>` and `<http://x|y>` arrive as text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(text: str) -> str:
    """Untrusted text for a Slack mrkdwn field: one line, `&`, `<`, `>` as entities, and
    the formatting characters `*`, `_`, `~`, backtick replaced by look-alikes."""
    return slack_escape(one_line(text)).translate(SLACK_LOOKALIKES)


def slack_link(url: str, label: str) -> str:
    """`<url|label>`: the URL is already public and percent-encoded (links.py); the
    label is escaped like any text."""
    return f"<{slack_escape(url)}|{slack_text(label)}>"


# ------------------------------------------------------------------------ messages


def subject_line(title: str) -> str:
    """A message's title as a subject or header: one line, no local paths."""
    return one_line(strip_local_paths(title))


def message_id_domain(sender: str) -> str:
    """The sender address's domain, for Message-ID (make_msgid's default would be this
    machine's fully qualified name); `shardwatch.invalid` if it has none usable."""
    from email.utils import parseaddr

    domain = parseaddr(sender)[1].rpartition("@")[2].strip().lower()
    if "." in domain and re.fullmatch(r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?", domain):
        return domain
    return "shardwatch.invalid"


@dataclass(frozen=True)
class ItemText:
    """An alert item's fields as text (untrusted ones still unescaped), and its links."""

    head: str
    rule: str
    where: str
    observed: str
    threshold: str
    run: str
    docs: str | None
    report: str | None

    def sentence(self, escape: Callable[[str], str] = str) -> str:
        """The line without links; `escape` is applied to every untrusted field."""
        return (
            f"[{self.head}] {escape(self.rule)} on {escape(self.where)}: observed "
            f"{escape(self.observed)}, threshold {escape(self.threshold)}{self.run}"
        )

    def links(self) -> list[tuple[str, str]]:
        """(public URL, label) of the item's Data Docs page and run report, if known."""
        found = [(self.docs, "Data Docs"), (self.report, "report")]
        return [(url, label) for url, label in found if url]


def item_text(item: AlertItem) -> ItemText:
    """The item's parts: numbers formatted, local paths cut, each field one line."""
    head = {"recovery": "RECOVERED", "reminder": f"{item.severity.upper()}, STILL"}.get(
        item.kind, item.severity.upper()
    )
    counts = rate_counts(item.detail)
    if counts is not None:
        observed = format_rate(*counts)
    else:
        detail = one_line(strip_local_paths(item.detail)) if item.detail else ""
        observed = format_number(item.observed) + (f" ({detail})" if detail else "")
    dataset = one_line(strip_local_paths(item.dataset))
    scope = one_line(strip_local_paths(item.scope))
    return ItemText(
        head=head,
        rule=one_line(item.rule),
        where=f"{dataset} / {scope}",
        observed=observed,
        threshold=format_threshold(item.threshold, rate=counts is not None),
        run=f" (run {item.run_id})" if item.run_id is not None else "",
        docs=item.link if is_public_url(item.link) else None,
        report=item.report if is_public_url(item.report) else None,
    )


def plain_line(item: AlertItem) -> str:
    """The item as plain text (email's text part, console): links as bare URLs."""
    parts = item_text(item)
    return " | ".join([parts.sentence(), *(f"{label}: {url}" for url, label in parts.links())])


def slack_line(item: AlertItem) -> str:
    """The item as Slack mrkdwn: every field escaped, links as `<url|label>`."""
    parts = item_text(item)
    links = (slack_link(url, label) for url, label in parts.links())
    return " | ".join([parts.sentence(slack_text), *links])


def html_line(item: AlertItem) -> str:
    """The item as HTML (email's HTML part): every field escaped, links as anchors."""
    parts = item_text(item)
    anchors = (
        f'<a href="{html.escape(url, quote=True)}">{label}</a>' for url, label in parts.links()
    )
    return " | ".join([html.escape(parts.sentence()), *anchors])
