"""Every command's --help: no word lost to markup, and the top level lists every exit code."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer

from shardwatch.cli.exit_codes import MEANINGS, ExitCode
from shardwatch.cli.root import app

pytestmark = pytest.mark.unit

BRACKETED = re.compile(r"\[[a-z_.]+\]")


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


def _help(command: Any, path: tuple[str, ...]) -> str:
    ctx = command.make_context(" ".join(("shardwatch", *path)), ["--help"], resilient_parsing=True)
    return " ".join(command.get_help(ctx).split())  # wrapping never splits a bracketed word


def _source_texts(command: Any) -> list[str]:
    texts = [command.help or ""]
    texts += [getattr(p, "help", None) or "" for p in command.params]
    return texts


ROOT = typer.main.get_command(app)
ALL = list(_commands(ROOT))


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(path) for path, _ in ALL}
    assert {"scan", "run", "ingest", "report", "db upgrade", "alerts list", "serve"} <= names


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=lambda p: " ".join(p) or "(top)")
def test_bracketed_words_survive(path: tuple[str, ...]) -> None:
    command = dict(ALL)[path]
    shown = _help(command, path)
    for text in _source_texts(command):
        for word in BRACKETED.findall(text):
            assert word in shown, f"{word} lost from `shardwatch {' '.join(path)} --help`"
        for quoted in re.findall(r"`([^`]+)`", text):
            assert quoted in shown, f"`{quoted}` lost from `shardwatch {' '.join(path)} --help`"


def test_sources_and_download_shown_literally() -> None:
    assert "configured [sources]," in _help(dict(ALL)[("run",)], ("run",))
    assert "breaks the `[download]` caps" in _help(dict(ALL)[("ingest",)], ("ingest",))


def test_top_level_help_lists_every_exit_code() -> None:
    shown = ROOT.get_help(ROOT.make_context("shardwatch", ["--help"], resilient_parsing=True))
    assert len(MEANINGS) == len(ExitCode)
    for code in ExitCode:
        line = f"{int(code)} {MEANINGS[code]}"
        assert line in " ".join(shown.split()), f"exit code {int(code)} missing: {line}"
    assert "\n    0  ok\n" in shown  # a table, one code per line
