"""Alert text: rates as percentages with counts, formatted numbers, no local paths, and
Slack mrkdwn escaping of every untrusted field."""

from __future__ import annotations

import random
import re

import pytest

from shardwatch.alerting.text import (
    SLACK_LOOKALIKES,
    format_number,
    format_percent,
    format_rate,
    format_threshold,
    html_line,
    message_id_domain,
    one_line,
    plain_line,
    slack_line,
    slack_text,
)
from shardwatch.core.alert_items import AlertItem, scope_label, shard_label, strip_local_paths

pytestmark = pytest.mark.unit

MARKDOWN = "*bold* _it_ ~s~ <!channel> & `code`"
FORMATTING = "*_~`"


def test_a_rate_reads_as_a_percentage_with_its_counts() -> None:
    assert format_rate(731, 59_812) == "1.22% (731 of 59,812)"
    assert format_rate(14, 100) == "14.00% (14 of 100)"
    assert format_rate(0, 1_000_000) == "0.00% (0 of 1,000,000)"


def test_percentages_round_to_the_rate_and_never_claim_none_or_all() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        support = rng.choice([1, 3, 7, 100, 59_812, 10**6, 10**9])
        count = rng.randint(0, support)
        text = format_percent(count, support)
        if text.startswith(("<", ">")):
            assert (count > 0 and count / support < 0.0001) or (
                count < support and count / support > 0.9999
            ), (count, support, text)
            continue
        value = float(text.removesuffix("%"))
        assert abs(value - 100 * count / support) <= 0.005 + 1e-9, (count, support, text)
        assert (value == 0) == (count == 0) and (value == 100) == (count == support)


def test_numbers_and_thresholds_are_formatted() -> None:
    assert format_number(0.0122216) == "0.0122"
    assert format_number(59812.0) == "59,812" and format_number(3) == "3"
    assert format_number(12345.678) == "12,346" and format_number(None) == "n/a"
    assert format_threshold("<= 0.01", rate=True) == "<= 1%"
    assert format_threshold("0.1..0.5", rate=True) == "10%..50%"
    assert format_threshold(">= 0.07", rate=True) == ">= 7%"  # not 7.000000000000001%
    assert format_threshold("<= 0.2", rate=False) == "<= 0.2"
    assert format_threshold("<= 1500", rate=False) == "<= 1,500"
    assert format_threshold(0.25, rate=False) == "0.25"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cannot read /home/ana/.shardwatch/cache/ab12-part.parquet: gone",
         "cannot read ab12-part.parquet: gone"),
        ("suite ~/proj/expectations/laion400m.json missing", "suite laion400m.json missing"),
        ("see file:///srv/docs/index.html", "see index.html"),
        (r"cannot open C:\Users\ana\data\x.parquet now", "cannot open x.parquet now"),
        ("(/tmp/pytest-1/a.parquet)", "(a.parquet)"),
        ("https://example.org/a/b/c.parquet", "https://example.org/a/b/c.parquet"),
        ("s3://bucket/a/b.parquet, 3/4 and/or", "s3://bucket/a/b.parquet, 3/4 and/or"),
    ],
)
def test_local_paths_are_cut_to_their_last_component(text: str, expected: str) -> None:
    assert strip_local_paths(text) == expected


def test_shards_are_named_without_local_paths_or_credentials() -> None:
    assert shard_label("/data/laion/part-00017.parquet") == "part-00017.parquet"
    assert shard_label("file:///data/laion/p.parquet") == "p.parquet"
    assert shard_label("s3://bucket/laion/p.parquet") == "s3://bucket/laion/p.parquet"
    signed = "https://user:pw@cdn.example.org/laion/p.parquet?X-Amz-Signature=abc#frag"
    assert shard_label(signed) == "https://cdn.example.org/laion/p.parquet"
    assert scope_label("shard:/data/a b.parquet|term:desi") == "shard a b.parquet, term 'desi'"
    assert scope_label("shard:/d/x.parquet|domain:ex.com") == "shard x.parquet, domain 'ex.com'"
    assert scope_label("dataset") == "dataset (latest shard versions)"


def test_slack_text_neutralises_every_control_character() -> None:
    shown = slack_text(MARKDOWN + "\n> quoted\u2028line")
    assert not set(FORMATTING + "<>\n\u2028") & set(shown)
    assert re.sub("&(amp|lt|gt);", "", shown).count("&") == 0  # only entities
    assert "&lt;!channel&gt; &amp;" in shown
    # the look-alikes: documented, one per character, none of them a formatting character
    assert shown.startswith("\u2217bold\u2217 \u02cdit\u02cd \u223cs\u223c")
    # (maketrans maps code points to str: the look-alikes are the values themselves)
    lookalikes = set(SLACK_LOOKALIKES.values())
    assert all(isinstance(c, str) and len(c) == 1 for c in lookalikes)
    assert not set(FORMATTING) & lookalikes
    assert one_line("a\r\nb\tc") == "a\\r\\nb\\tc"


def item(**changes: object) -> AlertItem:
    fields: dict[str, object] = {
        "rule": "term_rate", "severity": "critical", "dataset": MARKDOWN,
        "scope": f"shard {MARKDOWN}.parquet, term {MARKDOWN!r}", "observed": 731 / 59812,
        "threshold": "<= 0.01", "run_id": 7, "detail": "731 of 59812",
        "link": "https://docs.example.org/sw/validations/a.html",
        "report": "https://reports.example.org/run-7.html",
    }
    fields.update(changes)
    return AlertItem(**fields)  # type: ignore[arg-type]


def test_item_lines_in_every_medium() -> None:
    plain = plain_line(item())
    assert plain == (
        f"[CRITICAL] term_rate on {MARKDOWN} / shard {MARKDOWN}.parquet, term {MARKDOWN!r}: "
        "observed 1.22% (731 of 59,812), threshold <= 1% (run 7)"
        " | Data Docs: https://docs.example.org/sw/validations/a.html"
        " | report: https://reports.example.org/run-7.html"
    )
    slack = slack_line(item())
    body, *links = slack.split(" | <")
    assert not set(FORMATTING + "<>") & set(body)  # dataset, shard, term, rule: all escaped
    assert "term\u02cdrate" in body and "threshold &lt;= 1% (run 7)" in body
    assert links == ["https://docs.example.org/sw/validations/a.html|Data Docs>",
                     "https://reports.example.org/run-7.html|report>"]
    page = html_line(item())
    assert "&lt;!channel&gt; &amp;" in page and "<!channel>" not in page
    assert '<a href="https://reports.example.org/run-7.html">report</a>' in page


def test_non_rates_keep_their_detail_and_local_links_are_left_out() -> None:
    psi = item(observed=0.2345678, threshold="<= 0.2", detail="PSI 0.235 over 12,000 values",
               link="/home/ana/.shardwatch/docs/index.html", report=None)
    line = plain_line(psi)
    assert "observed 0.235 (PSI 0.235 over 12,000 values), threshold <= 0.2 (run 7)" in line
    assert "/home" not in line and "Data Docs" not in line and "report" not in line
    reason = item(observed=1.0, threshold="<= 0", detail="validation could not run: "
                  "/home/ana/proj/expectations/x.json: no such suite file")
    assert "observed 1 (validation could not run: x.json: no such suite file)" in plain_line(
        reason
    )


def test_message_ids_use_the_senders_domain() -> None:
    assert message_id_domain("Shardwatch <alerts@Example.org>") == "example.org"
    assert message_id_domain("alerts") == "shardwatch.invalid"
    assert message_id_domain("a@localhost") == "shardwatch.invalid"
    assert message_id_domain("a@[127.0.0.1]") == "shardwatch.invalid"
