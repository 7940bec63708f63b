"""Alert links: public URLs for Data Docs pages and run reports, never local paths.

The store keeps a shard's Data Docs link relative to the site's folder
(`validations/<suite>/<run>/<time>/<id>.html`, or `index.html` for dataset alerts: see
`docs_relative` in core/alert_items.py), and a notice written by a pass that writes a report
names its page (`run-N.html`). When a message is sent, `Links` joins them to
`[alerts] docs_base_url` (where the site folder is published) and `reports_base_url` (where
the reports folder is); with a base URL unset, that link is left out. Anything that is not a
relative site path (e.g. an absolute path stored by an older version) is dropped, so no link
that leaves the machine names a local file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from urllib.parse import quote

from shardwatch.core.alert_items import AlertItem
from shardwatch.core.public_urls import is_public_url


def site_path(link: str | None) -> str | None:
    """`link` if it is a clean relative path inside a site (no scheme, not absolute, no
    `..`, no backslash or drive), else None."""
    if not link or "\\" in link or ":" in link or link.startswith(("/", "~")):
        return None
    parts = PurePosixPath(link).parts
    if not parts or ".." in parts or re.search(r"[\x00-\x1f\x7f]", link):
        return None
    return link


@dataclass(frozen=True)
class Links:
    """The public base URLs of the Data Docs site and of the reports folder (None: unset,
    those links are left out)."""

    docs_base_url: str | None = None
    reports_base_url: str | None = None

    def docs(self, link: str | None) -> str | None:
        """The public URL of a site-relative Data Docs link (or an http(s) URL as it is)."""
        if link is not None and is_public_url(link):
            return link
        path = site_path(link)
        if path is None or self.docs_base_url is None:
            return None
        return f"{self.docs_base_url}/{quote(path, safe='/')}"

    def report(self, page: str | None) -> str | None:
        """The public URL of a report page (`run-N.html`)."""
        path = site_path(page)
        if path is None or self.reports_base_url is None:
            return None
        return f"{self.reports_base_url}/{quote(path, safe='/')}"

    def resolve(self, item: AlertItem) -> AlertItem:
        """`item` with public links only: its Data Docs page and its run's report."""
        return replace(item, link=self.docs(item.link), report=self.report(item.report))
