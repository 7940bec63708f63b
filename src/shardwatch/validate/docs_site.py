"""Data Docs offline: every page GX writes is rewritten to load files from the site only.

GX 1.x's templates load Bootstrap, jQuery, Popper, Font Awesome, bootstrap-table,
bootstrap-datepicker, Vega and a dark theme from CDNs, and the logo from a web bucket.
After every GX write, shardwatch:

* copies the files it needs from installed packages into `<docs>/static/vendor/` (vendored
  at install time by pip: XStatic-jQuery, XStatic-Bootstrap, XStatic-Font-Awesome; nothing
  is ever downloaded at run time);
* points each page's CDN stylesheets and scripts at those copies and drops the rest (no
  copy needed: Popper ships in Bootstrap's bundle; bootstrap-table, the datepicker, Vega and
  the dark theme serve features the index and shard pages do without);
* renders the index's validation table (which bootstrap-table would draw from inline data)
  as a static HTML table: each validation with its status in words and a link to its page;
* shows GX's own logo from the site, fixes the favicon link, turns outside links into text.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import threading
from collections.abc import Iterable, Mapping
from html import escape
from pathlib import Path
from typing import Any

from shardwatch.core.names import shown

VENDOR = "static/vendor"
# (package, file under the package's BASE_DIR, copy under <docs>/static/vendor)
_FILES = (
    ("xstatic.pkg.jquery", "jquery.min.js", "jquery/jquery.min.js"),
    ("xstatic.pkg.bootstrap", "css/bootstrap.min.css", "bootstrap/css/bootstrap.min.css"),
    ("xstatic.pkg.bootstrap", "js/bootstrap.bundle.min.js", "bootstrap/js/bootstrap.bundle.min.js"),
    ("xstatic.pkg.font_awesome", "css/all.min.css", "fontawesome/css/all.min.css"),
)
_DIRS = (("xstatic.pkg.font_awesome", "webfonts", "fontawesome/webfonts"),)  # all.min.css: ../

# A CDN URL -> the vendored copy that replaces it (the first pattern that matches wins).
_CDN = (
    (
        re.compile(r"/bootstrap/[\d.]+/css/bootstrap(\.min)?\.css$"),
        "bootstrap/css/bootstrap.min.css",
    ),
    # Bootstrap's bundle carries Popper, so GX's separate Popper script is dropped.
    (
        re.compile(r"/bootstrap/[\d.]+/js/bootstrap(\.bundle)?(\.min)?\.js$"),
        "bootstrap/js/bootstrap.bundle.min.js",
    ),
    (re.compile(r"/jquery-[\d.]+(\.min)?\.js$"), "jquery/jquery.min.js"),
    (re.compile(r"font-?awesome.*/css/all(\.min)?\.css$"), "fontawesome/css/all.min.css"),
)
_EXTERNAL = r"(?:https?:)?//[^\"'\s>]+"
_LINK = re.compile(rf"<link\b[^>]*?\bhref=\"(?P<url>{_EXTERNAL})\"[^>]*>", re.I)
_SCRIPT = re.compile(rf"<script\b[^>]*?\bsrc=\"(?P<url>{_EXTERNAL})\"[^>]*>\s*</script>", re.I)
_LOGO = re.compile(rf"<img\b(?P<pre>[^>]*?)\bsrc=\"{_EXTERNAL}\"", re.I)
_CSS_URL = re.compile(rf"url\(\s*(['\"]?){_EXTERNAL}\1\s*\)", re.I)
_ANCHOR = re.compile(rf"<a\b[^>]*?\bhref=\"{_EXTERNAL}\"[^>]*>(?P<text>.*?)</a>", re.I | re.S)
_ANY_EXTERNAL = re.compile(rf"\b(src|href)=\"{_EXTERNAL}\"", re.I)
_FAVICON = re.compile(r"href=\"[./]*static/images/favicon\.ico\"")
# the toggle of the (emptied) traceback of an errored check: the reason is shown above it
_TRACEBACK_TOGGLE = re.compile(
    r"<p class=\"m-0\">\s*<a data-toggle=\"collapse\"[^>]*>\s*Show exception traceback\.\.\.\s*"
    r"</a>\s*</p>"
)
_NEWSLETTER = re.compile(r"<footer>\s*<p>Stay current on everything GX.*?</footer>", re.S)
_TABLE_SCRIPT = re.compile(
    r"<script>\s*\$\('#(?P<id>[\w-]+)'\)\.bootstrapTable\(\s*Object\.assign\(\s*\{\s*"
    r"columns:\s*(?P<columns>\[.*?\]),\s*data:\s*(?P<data>\[.*?\]),\s*toolbar:.*?</script>",
    re.S,
)
_TABLE_FUNCTIONS = re.compile(
    r"<script>(?:(?!</script>).)*?function clearTableFilters.*?</script>", re.S
)
_LOGO_IMAGE = "static/images/logo-long.png"


def _package_dir(module: str) -> Path:
    package: Any = importlib.import_module(module)
    return Path(package.BASE_DIR)


def vendor_assets(docs: Path) -> Path:
    """Copy the vendored CSS, JS and fonts into `<docs>/static/vendor/` (a file is copied
    again only when its size differs, e.g. after a package upgrade); returns the folder."""
    target = docs / VENDOR
    pairs = [(_package_dir(m) / src, target / dst) for m, src, dst in _FILES]
    for module, src, dst in _DIRS:
        for file in sorted((_package_dir(module) / src).iterdir()):
            pairs.append((file, target / dst / file.name))
    for source, copy in pairs:
        if not copy.is_file() or copy.stat().st_size != source.stat().st_size:
            copy.parent.mkdir(parents=True, exist_ok=True)
            _replace(copy, source.read_bytes())
    return target


def _replace(path: Path, content: bytes) -> None:
    """Write `path` whole or not at all (several processes may publish at once)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_bytes(content)
    os.replace(temporary, path)


def localize_pages(docs: Path, pages: Iterable[Path]) -> list[Path]:
    """Vendor the assets, then rewrite each existing page (idempotent); returns the pages."""
    vendor_assets(docs)
    done = []
    for page in dict.fromkeys(pages):
        if not page.is_file():
            continue
        html = page.read_text(encoding="utf-8")
        root = Path(os.path.relpath(docs, page.parent)).as_posix()
        prefix = "" if root == "." else root + "/"
        new = localize_html(html, prefix)
        if new != html:
            _replace(page, new.encode("utf-8"))
        done.append(page)
    return done


def localize_html(html: str, prefix: str) -> str:
    """One page's HTML with no request leaving the site; `prefix` leads to the site's root
    from the page's folder ("" for index.html, "../../../../" for a shard page)."""
    vendor = f"{prefix}{VENDOR}/"

    def local(url: str) -> str | None:
        for pattern, copy in _CDN:
            if pattern.search(url.split("?", 1)[0]):
                return vendor + copy
        return None

    def link(m: re.Match[str]) -> str:
        copy = local(m["url"])
        return f'<link rel="stylesheet" href="{escape(copy)}">' if copy else ""

    def script(m: re.Match[str]) -> str:
        copy = local(m["url"])
        return f'<script src="{escape(copy)}"></script>' if copy else ""

    html = _static_tables(html)
    html = _LINK.sub(link, html)
    html = _SCRIPT.sub(script, html)
    html = _LOGO.sub(lambda m: f'<img{m["pre"]}src="{prefix}{_LOGO_IMAGE}"', html)
    html = _CSS_URL.sub(f"url('{prefix}{_LOGO_IMAGE}')", html)
    html = _NEWSLETTER.sub("", html)
    html = _TRACEBACK_TOGGLE.sub("", html)
    html = _ANCHOR.sub(lambda m: m["text"], html)
    html = _FAVICON.sub(f'href="{prefix}static/images/favicon.ico"', html)
    # Anything else that would still load from outside is disabled, never fetched.
    return _ANY_EXTERNAL.sub(lambda m: f'data-offline-{m[1].lower()}="removed"', html)


# ------------------------------------------------------------------------- the index table
def _static_tables(html: str) -> str:
    """Each bootstrap-table GX fills from inline data (Python literals) becomes static."""
    for m in list(_TABLE_SCRIPT.finditer(html)):
        try:
            columns = ast.literal_eval(m["columns"])
            data = ast.literal_eval(m["data"])
        except (ValueError, SyntaxError):
            continue  # not the shape GX 1.x writes: left alone (the browser test would fail)
        table_id = re.escape(m["id"])
        table = static_table(m["id"], columns, data)
        html = html.replace(m[0], "", 1)
        element = re.compile(rf"<table\s+id=\"{table_id}\"[^>]*>\s*</table>", re.S)
        found = element.search(html)
        if found:
            html = html[: found.start()] + table + html[found.end() :]
        toolbar = re.compile(rf"<div id=\"{table_id}-toolbar\"[^>]*>.*?</div>", re.S)
        html = toolbar.sub("", html, count=1)
    return _TABLE_FUNCTIONS.sub("", html)


def static_table(
    table_id: str, columns: list[Mapping[str, Any]], data: list[Mapping[str, Any]]
) -> str:
    """GX's index rows as a plain HTML table, newest first: GX's own cell markup, the
    status in words next to its icon, and the run name linking to the validation's page."""
    rows = sorted(data, key=lambda r: -float(r.get("_run_time_sort") or 0))
    head = "".join(f"<th>{escape(str(c.get('title', c.get('field', ''))))}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for column in columns:
            field = str(column.get("field", ""))
            value = str(row.get(field, ""))
            cell = value if "<" in value else escape(shown(value))
            if field == "validation_success":
                status = str(row.get("_validation_success_text") or "")
                cell += f' <span class="shardwatch-status">{escape(status)}</span>'
            elif field == "run_name" and row.get("_table_row_link_path"):
                href = escape(str(row["_table_row_link_path"]))
                cell = f'<a href="{href}">{escape(shown(value))}</a>'
            cells.append(f"<td>{cell}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<table id="{escape(table_id)}" class="table table-sm table-striped '
        f'ge-index-page-validation-results-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


# ------------------------------------------------------------------- errored checks' reasons
_PATH = re.compile(r"(?:file://)?(?<![\w.])(?:[A-Za-z]:)?(?:[/\\][^\s/\\'\"():,]+){2,}")
REASON_LIMIT = 300


def public_reason(text: str | None) -> str:
    """A one-line reason safe to publish: no traceback, no local path (a path keeps only
    its last part), at most REASON_LIMIT characters."""
    first = (text or "unknown error").strip().split("\nTraceback", 1)[0]
    line = " ".join(first.split())
    line = _PATH.sub(lambda m: "…/" + re.split(r"[/\\]", m[0])[-1], line)
    return line if len(line) <= REASON_LIMIT else line[: REASON_LIMIT - 1] + "…"


def scrub_exceptions(results: Iterable[Any], reasons: Mapping[int, str] | None = None) -> bool:
    """Make each GX expectation result that raised carry a one-line public reason and no
    traceback (`reasons`: position -> the reason shardwatch gave that check, e.g. its
    schema drift). GX keeps `exception_info` flat or keyed by metric; both are scrubbed.
    Returns whether anything changed (then the caller stores the result again)."""
    changed = False
    for position, result in enumerate(results):
        info = result.exception_info or {}
        entries = [info] if "raised_exception" in info else list(info.values())
        for entry in entries:
            if not isinstance(entry, dict) or not entry.get("raised_exception"):
                continue
            wanted = (reasons or {}).get(position) or entry.get("exception_message")
            message = public_reason(str(wanted) if wanted is not None else None)
            if entry.get("exception_message") != message or entry.get("exception_traceback"):
                entry["exception_message"] = message
                entry["exception_traceback"] = ""
                changed = True
    return changed
