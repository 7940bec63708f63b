"""Alert links: configured public base URLs, site-relative Data Docs links, no local path."""

from __future__ import annotations

from pathlib import Path

import pytest

from shardwatch.alerting.links import Links
from shardwatch.core.alert_items import AlertItem, docs_relative
from shardwatch.core.public_urls import normalise_base_url
from shardwatch.settings.config import ConfigError, load_settings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in __import__("os").environ if n.startswith("SHARDWATCH_")]:
        monkeypatch.delenv(name)


def test_base_urls_come_from_toml_or_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings().alerts.docs_base_url is None  # unset by default: no links
    cfg = tmp_path / "shardwatch.toml"
    cfg.write_text('[alerts]\ndocs_base_url = "https://example.org/sw/docs/"\n')
    assert load_settings(cfg).alerts.docs_base_url == "https://example.org/sw/docs"
    monkeypatch.setenv("SHARDWATCH_ALERTS__REPORTS_BASE_URL", "http://reports.example.org:8080")
    assert load_settings(cfg).alerts.reports_base_url == "http://reports.example.org:8080"


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("/srv/www/docs", "http:// or https://"),
        ("file:///srv/docs", "http:// or https://"),
        ("ftp://example.org/docs", "http:// or https://"),
        ("https://", "http:// or https://"),
        ("https://example.org/docs?x=1", "query or a fragment"),
        ("https://ana:CANARY-pw@example.org/docs", "user name or password"),
        ("https://example.org/my docs", "whitespace"),
        ("https://example.org/<!channel>", "whitespace"),
    ],
)
def test_a_bad_base_url_is_a_clear_config_error(tmp_path: Path, value: str, needle: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(f"[alerts]\nreports_base_url = {value!r}\n")
    with pytest.raises(ConfigError, match=r"alerts\.reports_base_url") as info:
        load_settings(cfg)
    assert needle in str(info.value) and "CANARY" not in str(info.value)


def test_links_are_public_urls_or_left_out() -> None:
    links = Links("https://example.org/sw/docs", "https://example.org/sw/reports")
    page = "validations/laion400m/run 1/20261205T001500.000000Z/a#b?c.html"
    assert links.docs(page) == (
        "https://example.org/sw/docs/validations/laion400m/run%201/"
        "20261205T001500.000000Z/a%23b%3Fc.html"
    )
    assert links.docs("index.html") == "https://example.org/sw/docs/index.html"
    for local in ("/home/ana/.shardwatch/docs/index.html", "../secret.html", "~/x.html",
                  r"C:\docs\index.html", "file:///x/index.html", None, ""):
        assert links.docs(local) is None, local
    assert links.report("run-12.html") == "https://example.org/sw/reports/run-12.html"
    assert links.report(None) is None and links.report("/srv/reports/run-1.html") is None
    unset = Links()
    assert unset.docs("index.html") is None and unset.report("run-3.html") is None
    item = AlertItem("r", "warning", "d", "dataset", 0.5, "<= 0.1", run_id=4, link="index.html",
                     report="run-4.html")
    resolved = links.resolve(item)
    assert resolved.link == "https://example.org/sw/docs/index.html"
    assert resolved.report == "https://example.org/sw/reports/run-4.html"
    assert Links().resolve(item).link is None and Links().resolve(item).report is None


def test_data_docs_pages_are_kept_relative_to_the_site(tmp_path: Path) -> None:
    docs = tmp_path / "state" / "docs"
    page = docs / "validations" / "s" / "r" / "t" / "p.html"
    assert docs_relative(str(page), str(docs / "index.html")) == "validations/s/r/t/p.html"
    assert docs_relative(str(tmp_path / "elsewhere.html"), str(docs / "index.html")) is None
    assert docs_relative(None, str(docs / "index.html")) is None
    assert docs_relative(str(page), None) is None


def test_normalise_base_url_trims_and_unsets() -> None:
    assert normalise_base_url("https://example.org/") == "https://example.org"
    assert normalise_base_url("  ") is None and normalise_base_url(None) is None
