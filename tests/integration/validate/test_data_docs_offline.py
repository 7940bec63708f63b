"""Data Docs read offline: headless Chromium opens the site from file:// and every request it
makes stays on file:// (or data:); the index lists each validation with its status; every
href resolves; an errored check shows a one-line reason, no traceback and no local path.

The site is made by the real CLI (`shardwatch ingest`, then `shardwatch docs`, which prunes
and rebuilds) from three shards: a clean one, one with failing data, one whose WIDTH column
is gone (schema drift: errored checks). Needs Chromium and chromedriver like
test_data_docs_browser.py (its `browser` fixture is reused).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from support.builders import adversarial_table, write_shard
from support.gx_rows import clean_rows, table
from support.store_checks import run_shardwatch
from test_data_docs_browser import (
    Browser,
    browser_fixture,  # noqa: F401  (the `browser` fixture)
)

pytestmark = pytest.mark.integration

Site = tuple[Path, dict[str, str]]  # the docs folder, run name -> expected status text
LOCAL_SCHEMES = ("file:", "data:")
SCREENSHOTS = Path(__file__).resolve().parents[3] / "build"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    base = tmp_path_factory.mktemp("offline_docs")
    for name in ("clean", "bad", "drift"):
        (base / name).mkdir()
    shards = [
        write_shard(table(clean_rows()), base / "clean"),
        write_shard(adversarial_table(300, 8, int_ids=True), base / "bad"),
        write_shard(adversarial_table(300, 9).drop_columns(["WIDTH"]), base / "drift"),
    ]
    done = run_shardwatch("ingest", *map(str, shards), "--json", cwd=base)
    assert done.returncode == 1, done.stderr  # two shards fail their checks
    results = json.loads(done.stdout)["results"]
    expected = {}
    for result in results:  # the status GX must show, from shardwatch's own verdict
        checks = result["validation"]["checks"]
        ok = all(c["status"] == "passed" for c in checks)
        run = Path(result["validation"]["docs_page"]).parents[1].name
        expected[run] = "Success" if ok else "Failed"
    assert sorted(expected.values()) == ["Failed", "Failed", "Success"], expected
    return base / ".shardwatch" / "docs", expected


def pages(docs: Path) -> list[Path]:
    return sorted(docs.rglob("*.html"))


def check_page(browser: Browser, page: Path) -> str:
    """Load `page`, assert that it asked only for local files and that every href and src
    resolves; returns the page's text."""
    browser.requests()  # drain what came before
    browser.console_errors()
    visit = browser.visit(page)
    assert visit.alerts == () and visit.pwned_type == "undefined"
    requested = browser.requests()
    assert page.resolve().as_uri() in requested, requested  # the recorder saw the page
    outside = [u for u in requested if not u.startswith(LOCAL_SCHEMES)]
    assert outside == [], f"{page.name} asked outside the machine: {outside}"
    errors = browser.console_errors()  # e.g. a script that needs a library not loaded
    assert errors == [], f"{page.name}: console errors {errors}"
    # The vendored files were found and ran: jQuery, Bootstrap's JS and the icon font.
    driver = browser.driver
    assert driver.execute_script("return typeof jQuery") == "function"
    assert driver.execute_script("return typeof jQuery.fn.collapse") == "function"
    assert any(u.endswith("/static/vendor/fontawesome/css/all.min.css") for u in requested)
    if driver.execute_script("return document.querySelector('i.fas') !== null"):
        loaded = driver.execute_async_script(
            "const done = arguments[0]; document.fonts.ready.then(() => "
            "done(document.fonts.check('900 16px \"Font Awesome 6 Free\"')))"
        )
        assert loaded, f"{page.name}: Font Awesome's solid font did not load"
        fonts = [u for u in browser.requests() + requested if "/webfonts/fa-solid-900" in u]
        assert fonts and all(u.startswith("file://") for u in fonts), fonts
    links = driver.execute_script(
        "return Array.from(document.querySelectorAll('[href],[src]'))"
        ".map(e => e.getAttribute('href') ?? e.getAttribute('src'))"
    )
    for link in links:
        parts = urlsplit(link)
        assert not parts.scheme and not parts.netloc, f"{page.name}: link {link!r} leaves the site"
        if parts.path:
            target = (page.parent / unquote(parts.path)).resolve()
            assert target.is_file(), f"{page.name}: {link!r} -> {target} does not exist"
        if parts.fragment and not parts.path:  # an anchor on this page
            found = driver.execute_script(
                "return document.getElementById(arguments[0]) !== null", parts.fragment
            )
            assert found, f"{page.name}: anchor #{parts.fragment} does not exist"
        elif parts.fragment:
            html = target.read_text(encoding="utf-8")
            assert re.search(rf"id=\"?{re.escape(parts.fragment)}\b", html), link
    return visit.text


def check_index(browser: Browser, docs: Path, expected: dict[str, str]) -> None:
    from selenium.webdriver.common.by import By

    check_page(browser, docs / "index.html")
    rows = browser.driver.find_elements(By.CSS_SELECTOR, "#Validation-Results table tbody tr")
    shown = {}
    for row in rows:
        cells = [c.text.strip() for c in row.find_elements(By.TAG_NAME, "td")]
        run = next(c for c in cells if c in expected)
        shown[run] = cells[0]  # the Status column, in words
        link = row.find_element(By.LINK_TEXT, run).get_attribute("href")
        assert link and link.startswith("file://") and Path(unquote(link[7:])).is_file()
    assert shown == expected


def test_the_site_loads_only_its_own_files_and_lists_every_validation(
    site: Site, browser: Browser
) -> None:
    docs, expected = site
    assert len(pages(docs)) == 1 + len(expected) + 1  # index, one page per shard, the suite
    check_index(browser, docs, expected)
    SCREENSHOTS.mkdir(exist_ok=True)
    shot = SCREENSHOTS / "data_docs_index_offline.png"
    assert browser.driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    print(f"offline Data Docs index screenshot: {shot}")
    html = (docs / "index.html").read_text(encoding="utf-8")
    assert "bootstrapTable" not in html and "data-toggle=\"table\"" not in html
    for page in pages(docs):
        if page.name != "index.html":
            check_page(browser, page)
        if ".shard-3." in str(page):  # the drifted shard: its errored checks
            browser.scroll_to_section("width")
            drift_shot = SCREENSHOTS / "data_docs_drift_offline.png"
            assert browser.driver.save_screenshot(str(drift_shot))


def test_an_errored_check_shows_one_line_and_no_traceback_or_path(
    site: Site, browser: Browser
) -> None:
    docs, _ = site
    [drifted] = [p for p in pages(docs) if ".shard-3." in str(p)]
    text = check_page(browser, drifted)
    assert "raised an exception:\nschema drift: missing: WIDTH" in text
    for page in pages(docs):
        html = page.read_text(encoding="utf-8")
        assert "Traceback" not in html and "traceback" not in html.lower().replace(
            "exception_traceback", ""
        ), page
        assert str(Path.home()) not in html and "site-packages" not in html, page
        assert str(docs.parent.parent) not in html, page  # not the folder it was made in
    stored = "".join(p.read_text() for p in (docs.parent / "gx").rglob("validations/**/*.json"))
    assert "Traceback" not in stored and "site-packages" not in stored


def test_the_site_stays_offline_after_pruning_and_a_full_rebuild(
    site: Site, browser: Browser, tmp_path: Path
) -> None:
    docs, expected = site
    copy = tmp_path / "project"
    shutil.copytree(docs.parent.parent, copy)  # the whole folder (.shardwatch inside)
    done = run_shardwatch("docs", cwd=copy, SHARDWATCH_VALIDATION__KEEP_RESULTS="2")
    assert done.returncode == 0, done.stderr
    assert "pruned 1 old validation result(s)" in done.stdout
    rebuilt = copy / ".shardwatch" / "docs"
    kept = {p.parents[1].name for p in rebuilt.glob("validations/*/*/*/*.html")}
    assert len(kept) == 2
    check_index(browser, rebuilt, {run: expected[run] for run in kept})
    for page in pages(rebuilt):
        check_page(browser, page)
