"""Blocklist settings: `[blocklists.<name>]` kinds, paths relative to the config file, slug
names, and mistakes as configuration errors naming the list."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shardwatch.settings.config import ConfigError, load_settings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    for name in [n for n in os.environ if n.startswith("SHARDWATCH_")]:
        monkeypatch.delenv(name)


def write_config(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "shardwatch.toml"
    path.write_text(body)
    return path


def test_lists_resolve_relative_to_the_config_file(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "conf",
        """
[blocklists.relaion]
kind = "url_sha256"
path = "lists/relaion.txt"

[blocklists.bad-domains]
kind = "domain"
path = "https://lists.example.org/domains.txt"
severity = "warning"

[blocklists.ids_2024]
kind = "id"
path = "/srv/lists/ids.parquet"
""",
    )
    s = load_settings(config)
    relaion = s.blocklists["relaion"]
    assert (relaion.kind, relaion.severity) == ("url_sha256", "critical")
    assert relaion.path == str(tmp_path / "conf" / "lists" / "relaion.txt")
    remote = s.blocklists["bad-domains"]
    assert remote.remote and remote.path == "https://lists.example.org/domains.txt"
    assert remote.severity == "warning"
    assert s.blocklists["ids_2024"].path == "/srv/lists/ids.parquet"
    assert not load_settings().blocklists


def test_a_list_from_the_environment_is_relative_to_the_working_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHARDWATCH_BLOCKLISTS__X__KIND", "url")
    monkeypatch.setenv("SHARDWATCH_BLOCKLISTS__X__PATH", "x.txt")
    s = load_settings()
    assert s.blocklists["x"].path == "x.txt"
    assert s.anchored().blocklists["x"].path == str(Path.cwd() / "x.txt")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('[blocklists.mylist]\nkind = "sha1"\npath = "a.txt"', "blocklists.mylist.kind"),
        ('[blocklists.mylist]\nkind = "url"\npath = "ftp://x/a.txt"', "blocklists.mylist.path"),
        ('[blocklists.mylist]\nkind = "url"', "blocklists.mylist.path"),
        ('[blocklists.mylist]\nkind = "url"\npath = "a"\nseverity = "low"', "mylist.severity"),
        ('[blocklists.mylist]\nkind = "url"\npath = "a"\nformat = "csv"', "mylist.format"),
        ('[blocklists."my list"]\nkind = "url"\npath = "a.txt"', "blocklist name 'my list'"),
        (f'[blocklists.{"x" * 65}]\nkind = "url"\npath = "a.txt"', "blocklist name"),
    ],
)
def test_mistakes_are_config_errors_naming_the_list(tmp_path: Path, body: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        load_settings(write_config(tmp_path / "conf", body))
