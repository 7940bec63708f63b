"""Blocklist settings: `[blocklists.<name>]`, a published remove-list every shard is checked
against (scan/blocklists.py matches it).

`kind` is `url`, `url_sha256`, `id` or `domain`; `path` a local file (relative to the config
file's folder; from the environment, to the current directory) or an `http(s)` URL, fetched
under the download policy into the cache; `severity` (default `critical`) of the
`blocklisted-rows` alert. A list's name is a plain slug: it names a feature column
(`blocklist_<name>`), report rows and alerts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from pydantic import Field, field_validator

from shardwatch.core.blocklist import BLOCKLIST_NAME, BlocklistKind, BlocklistSeverity
from shardwatch.settings.base import StrictModel

_REMOTE: Final = ("http://", "https://")


class BlocklistSpec(StrictModel):
    kind: BlocklistKind = Field(
        description="`url` (exact URL), `url_sha256` (hex SHA-256 of the URL, either case), "
        "`id` (the profile's id column, as integer or text) or `domain` (the URL's host or a "
        "subdomain of it)."
    )
    path: str = Field(
        description="The list: a local file (relative to the config file's folder) or an "
        "http(s) URL fetched under the download policy. Text (one entry a line, `#` "
        "comments), CSV with one column, or parquet with one column (by extension; `.gz` "
        "text and CSV are read too)."
    )
    severity: BlocklistSeverity = Field(
        default="critical", description="Severity of the `blocklisted-rows` alert."
    )

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("path is empty")
        if "://" in value and not value.lower().startswith(_REMOTE):
            raise ValueError("path must be a local file or an http(s) URL")
        return value

    def anchored(self, folder: Path) -> BlocklistSpec:
        """This spec with a relative local path made absolute against `folder`."""
        if self.remote:
            return self
        return self.model_copy(update={"path": str(folder / Path(self.path).expanduser())})

    @property
    def remote(self) -> bool:
        """The list is fetched over http(s)."""
        return self.path.lower().startswith(_REMOTE)


def blocklist_name_problem(name: str) -> str | None:
    """Why `name` cannot name a list, or None."""
    if BLOCKLIST_NAME.fullmatch(name) is None:
        return "must be 1 to 64 letters, digits, '_' or '-'"
    return None
