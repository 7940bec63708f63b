"""Data Docs in a real browser: shardwatch's pages never run a payload from a shard.

A shard whose ids, NSFW tags, captions, URLs and licences carry HTML/JS payloads (and whose
dataset name does too) is scanned, validated and published; then every page of the site is
checked statically (no payload text in any HTML file) and in headless Chromium (no dialog, no
`window.__pwned`, no navigation), and the failing checks must show with the counts computed
here from the rows. The negative control renders raw strings with GX directly and proves the
same harness catches execution: GX 1.x writes unexpected values into the page unescaped,
which is why the feature table holds no untrusted string (see features.py, gx_adapter.py).

Needs Chromium and chromedriver (`make browser`, part of `make test`, installs them): when
they are missing this skips, or FAILS when `CI` is set.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from support.builders import write_shard

from shardwatch.core.lexicon import BIRHANE2021
from shardwatch.core.profiles import LAION400M
from shardwatch.core.validation import ShardValidation
from shardwatch.scan.engine import scan_shard
from shardwatch.validate.gx_adapter import GxPaths, GxValidator, run_name

pytestmark = pytest.mark.integration

SUITES = Path(__file__).resolve().parents[3] / "expectations"
SUITE = "laion400m"
INSTALL = "run `make test` (its `browser` target) or `apt-get install chromium chromium-driver`"
CHROME_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--window-size=1400,2000",
)
PAYLOADS = (
    "<script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=1;alert(1)">',
    "javascript:alert(1)",
    '"><svg onload=alert(1)>',
)
# No HTML file of the site may contain any of these (the dataset name's slug keeps harmless
# fragments such as "window.__pwned_1", so the checks look for the executable shapes).
FORBIDDEN = ("<script>window.__pwned", "onerror=", "<svg onload", "javascript:alert", "<img src=x")
DATASET = 'laion"><script>window.__pwned=1</script><img src=x onerror=alert(1)>'
N = 300
LABELS = ("UNLIKELY", "UNSURE", "NSFW")
Rows = dict[str, list[Any]]
Published = tuple[ShardValidation, Path, Rows]  # the validation, the docs dir, the rows


# ------------------------------------------------------------------------------ browser
@dataclass(frozen=True)
class Visit:
    """What a page did in the browser: dialogs it opened, `window.__pwned`, its text."""

    url: str
    final_url: str
    alerts: tuple[str, ...]
    pwned_type: str  # typeof window.__pwned
    pwned: Any
    text: str


class Browser:
    """Headless Chromium (system binaries, driven by selenium, no network beyond file://)."""

    def __init__(self, chromium: str, chromedriver: str, scratch: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        for arg in CHROME_ARGS:
            options.add_argument(arg)
        options.binary_location = chromium
        # Keep dialogs open so that `switch_to.alert` sees them (the default dismisses them).
        options.unhandled_prompt_behavior = "ignore"
        # Every request the pages make is recorded (Network.requestWillBeSent events).
        # and so is every console message (the offline test wants no script error).
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        # Chromium's profile and singleton dirs go to pytest's tmp, not /tmp.
        env = {**os.environ, "TMPDIR": str(scratch)}
        service = Service(executable_path=chromedriver, env=env)
        self.driver = webdriver.Chrome(service=service, options=options)
        self.driver.set_page_load_timeout(30)
        # Belt and braces: were a page to ask for http(s), it is recorded (see `requests`),
        # and blocked, so the test stays hermetic and only what the site holds can run.
        self.driver.execute_cdp_cmd("Network.enable", {})
        self.driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["http://*", "https://*"]})

    def visit(self, page: Path, *, wait_for_dialog: float = 1.0) -> Visit:
        from selenium.common.exceptions import NoAlertPresentException, TimeoutException
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        url = page.resolve().as_uri()
        driver = self.driver
        driver.get(url)
        # a handler (img onerror, svg onload) may open its dialog just after the load
        with contextlib.suppress(TimeoutException):
            WebDriverWait(driver, wait_for_dialog).until(expected_conditions.alert_is_present())
        alerts: list[str] = []
        while True:
            try:
                alert = driver.switch_to.alert
            except NoAlertPresentException:
                break
            alerts.append(alert.text)
            alert.accept()
        pwned_type, pwned = driver.execute_script(
            "return [typeof window.__pwned, window.__pwned === undefined ? null : window.__pwned]"
        )
        return Visit(
            url=url,
            final_url=driver.current_url,
            alerts=tuple(alerts),
            pwned_type=pwned_type,
            pwned=pwned,
            text=driver.find_element(By.TAG_NAME, "body").text,
        )

    def requests(self) -> list[str]:
        """The URLs requested since the last call (Chrome's performance log, drained)."""
        import json

        urls = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                urls.append(str(message["params"]["request"]["url"]))
        return urls

    def console_errors(self) -> list[str]:
        """The console's SEVERE messages since the last call (script errors, failed loads)."""
        return [
            str(e["message"]) for e in self.driver.get_log("browser") if e["level"] == "SEVERE"
        ]

    def section_text(self, heading: str) -> str:
        """The text of the Data Docs section (one per column) whose heading is `heading`."""
        from selenium.webdriver.common.by import By

        for section in self.driver.find_elements(By.CSS_SELECTOR, "div.ge-section"):
            text: str = section.text
            if text.split("\n", 1)[0].strip() == heading:
                return text
        raise AssertionError(f"no Data Docs section {heading!r} on {self.driver.current_url}")

    def scroll_to_section(self, heading: str) -> None:
        from selenium.webdriver.common.by import By

        for section in self.driver.find_elements(By.CSS_SELECTOR, "div.ge-section"):
            if section.text.split("\n", 1)[0].strip() == heading:
                self.driver.execute_script("arguments[0].scrollIntoView(true);", section)
                return
        raise AssertionError(f"no Data Docs section {heading!r} on {self.driver.current_url}")

    def quit(self) -> None:
        self.driver.quit()


def _missing(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(
            f"the Data Docs browser test is required in CI (CI is set) but {why}; {INSTALL}",
            pytrace=False,
        )
    pytest.skip(f"{why}; {INSTALL} (with CI set this fails instead)")


@pytest.fixture(scope="module", name="browser")
def browser_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """One headless Chromium for the module; missing: skip, or fail when `CI` is set."""
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not chromedriver:
        absent = [n for n, p in (("chromium", chromium), ("chromedriver", chromedriver)) if not p]
        _missing(f"{' and '.join(absent)} not found on PATH")
    try:
        import selenium  # noqa: F401
    except ImportError:
        _missing("selenium is not installed (pip install -e '.[dev]')")
    assert chromium and chromedriver
    with pytest.MonkeyPatch.context() as mp:
        # The driver's path is given, so Selenium Manager is skipped; were it ever run, it
        # must not download a driver or a browser.
        mp.setenv("SE_OFFLINE", "true")
        instance = Browser(chromium, chromedriver, tmp_path_factory.mktemp("chromium"))
    try:
        yield instance
    finally:
        instance.quit()


# -------------------------------------------------------------------------- the shard
def payload_rows() -> Rows:
    """N LAION rows carrying the payloads everywhere; several expectations fail."""
    rows: Rows = {c: [] for c in ("SAMPLE_ID", "URL", "TEXT", "HEIGHT", "WIDTH", "LICENSE", "NSFW")}
    rows["similarity"] = []
    for i in range(N):
        payload = PAYLOADS[i % len(PAYLOADS)]
        # text ids; the first 12 are used twice (i and i + 288 share the payload and number)
        rows["SAMPLE_ID"].append(f"{payload}{i % (N - 12)}")
        if i % 17 == 3:
            url = payload  # not an http(s) link: url_scheme 'other'
        elif i % 19 == 4:
            url = f"http://example.com/{payload}"  # an http(s) link that carries a payload
        else:
            url = f"https://example.com/{i}.jpg"
        rows["URL"].append(url)
        rows["TEXT"].append(f"a red car {payload} {PAYLOADS[(i + 1) % len(PAYLOADS)]}")
        rows["HEIGHT"].append(64 + i)
        rows["WIDTH"].append(128 + i)
        rows["LICENSE"].append(payload)
        if i % 23 == 0:
            tag: str | None = payload  # not one of the labels
        elif i % 37 == 1:
            tag = None
        elif i % 29 == 2:
            tag = "NSFW"
        else:
            tag = LABELS[i % 2]
        rows["NSFW"].append(tag)
        rows["similarity"].append(0.12 if i % 13 == 7 else 0.31 + (i % 60) / 100)
    return rows


def payload_table(rows: Rows) -> pa.Table:
    types = {
        "SAMPLE_ID": pa.string(),
        "URL": pa.string(),
        "TEXT": pa.string(),
        "HEIGHT": pa.int64(),
        "WIDTH": pa.int64(),
        "LICENSE": pa.string(),
        "NSFW": pa.string(),
        "similarity": pa.float64(),
    }
    return pa.table({name: pa.array(rows[name], types[name]) for name in types})


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    """The payload shard scanned, validated and published: (validation, docs dir, rows)."""
    base = tmp_path_factory.mktemp("docs_browser")
    rows = payload_rows()
    path = write_shard(payload_table(rows), base)
    batches: list[pa.RecordBatch] = []
    scan_shard(path, LAION400M, BIRHANE2021, on_features=batches.append)
    validator = GxValidator(GxPaths(base / "gx", base / "docs"), SUITES, SUITE)
    validation = validator.validate(pa.Table.from_batches(batches), DATASET, 7, 3)
    validator.publish(validation)
    assert validation.docs_page is not None
    assert Path(validation.docs_page).is_file() and validator.paths.index.is_file()
    validator.build_docs()  # the whole site too: the suite's page as well
    return validation, validator.paths.docs, rows


def test_no_payload_text_in_any_page(published: Published) -> None:
    validation, docs, _ = published
    pages = sorted(docs.rglob("*.html"))
    assert validation.docs_page is not None
    assert {
        docs / "index.html",
        Path(validation.docs_page),
        docs / "expectations/laion400m.html",
    } <= set(pages)
    for page in pages:
        html = page.read_text(encoding="utf-8")
        found = [s for s in FORBIDDEN if s in html]
        assert not found, f"{page.relative_to(docs)} contains {found}"
    assert validation.run_name == run_name(DATASET, 7, 3)
    assert not re.search(r"[^A-Za-z0-9_.-]", validation.run_name), validation.run_name


def test_pages_run_no_payload_and_show_the_failures(
    published: Published, browser: Browser, tmp_path: Path
) -> None:
    validation, docs, rows = published
    # The expected numbers, from the rows (not from shardwatch or GX).
    tags = rows["NSFW"]
    bad_tags = sum(t not in LABELS for t in tags)  # payload tags and missing tags
    nsfw_tags = tags.count("NSFW")
    low_similarity = sum(s < 0.3 for s in rows["similarity"])
    duplicated = sum(c for c in Counter(rows["SAMPLE_ID"]).values() if c > 1)
    not_http = sum(not re.match(r"^https?://[^\s/?#]+", u, re.I) for u in rows["URL"])
    assert (bad_tags, nsfw_tags, low_similarity, duplicated) == (23, 11, 23, 24)
    assert nsfw_tags / N > 0.01 and not_http > 0

    failed = {(c.expectation, c.column) for c in validation.checks if c.status == "failed"}
    assert {
        ("expect_column_values_to_be_in_set", "nsfw_tag"),
        ("expect_column_values_to_not_be_in_set", "nsfw_tag"),
        ("expect_column_values_to_be_between", "similarity"),
        ("expect_column_values_to_be_unique", "id"),
        ("expect_column_values_to_be_in_set", "url_scheme"),
    } <= failed

    assert validation.docs_page is not None
    page = browser.visit(Path(validation.docs_page))
    assert page.alerts == (), f"the shard page opened dialogs {page.alerts}"
    assert page.pwned_type == "undefined", f"a payload ran: window.__pwned = {page.pwned!r}"
    assert page.final_url == page.url
    assert "Status: Failed" in page.text
    assert validation.run_name in page.text

    def shows(section: str, expectation: str, unexpected: int) -> None:
        text = browser.section_text(section)
        pattern = rf"{re.escape(expectation)}\s+{unexpected} unexpected values found\. "
        assert re.search(pattern, text), f"{section}: no {pattern!r} in\n{text}"
        assert f"of {N} total rows" in text

    shows("nsfw_tag", "values must belong to this set: UNLIKELY UNSURE NSFW.", bad_tags)
    shows(
        "nsfw_tag",
        "values must not belong to this set: NSFW, at least 99 % of the time.",
        nsfw_tags,
    )
    shows(
        "similarity",
        "values must be greater than or equal to 0.3 and less than or equal to 1.0.",
        low_similarity,
    )
    shows("id", "values must be unique.", duplicated)
    shows("url_scheme", "values must belong to this set: http(s).", not_http)
    # the unexpected values shown are the safe categories that stand for the raw tags
    assert re.search(r"Sampled Unexpected Values\nother\nnull\n", browser.section_text("nsfw_tag"))

    browser.scroll_to_section("nsfw_tag")
    screenshot = tmp_path / "data_docs.png"
    assert browser.driver.save_screenshot(str(screenshot))
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000
    print(f"Data Docs screenshot: {screenshot}")

    index = browser.visit(docs / "index.html")
    assert index.alerts == (), f"index.html opened dialogs {index.alerts}"
    assert index.pwned_type == "undefined", f"a payload ran: window.__pwned = {index.pwned!r}"
    assert index.final_url == index.url
    assert "Validation Results" in index.text
    # The index's table is static HTML (docs_site.py): the slugged run name and the status.
    assert re.search(rf"Failed\s.*{re.escape(validation.run_name)}", index.text), index.text


# ---------------------------------------------------------------------- negative control
def test_harness_catches_a_gx_page_that_runs_a_payload(browser: Browser, tmp_path: Path) -> None:
    """GX renders raw unexpected strings unescaped: the same checks must flag its page."""
    import pandas as pd

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "module 'sre_", DeprecationWarning)
        import great_expectations as gx
        import great_expectations.expectations as gxe
        from great_expectations.checkpoint import UpdateDataDocsAction
        from great_expectations.data_context.types.base import ProgressBarsConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context = gx.get_context(mode="file", project_root_dir=str(tmp_path))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("raw")
    batch = source.add_dataframe_asset("captions").add_batch_definition_whole_dataframe("all")
    suite = context.suites.add(gx.ExpectationSuite(name="raw_strings"))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="tag", value_set=["UNLIKELY"]))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="raw", data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name="raw",
            validation_definitions=[definition],
            actions=[UpdateDataDocsAction(name="docs")],
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 20},
        )
    )
    frame = pd.DataFrame(
        {"tag": ["UNLIKELY", PAYLOADS[0], '<img src=x onerror="alert(7)">', "UNLIKELY"]}
    )
    result = checkpoint.run(batch_parameters={"dataframe": frame})
    assert not result.success
    [page_path] = (tmp_path / "gx").rglob("validations/raw_strings/**/*.html")

    html = page_path.read_text(encoding="utf-8")
    assert "<script>window.__pwned" in html and "onerror=" in html  # the static check fires
    browser.requests()
    page = browser.visit(page_path)
    raw_requests = browser.requests()  # GX's own page asks CDNs: the recorder must see it
    assert any(u.startswith("https://") for u in raw_requests), raw_requests
    assert page.pwned == 1, "the inline <script> in GX's page did not run: harness is blind"
    assert page.alerts == ("7",), f"the img onerror alert was not caught: {page.alerts}"
