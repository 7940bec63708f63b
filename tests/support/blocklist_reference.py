"""A plain-Python reference for blocklist matching (the test oracle): hashlib, set membership,
`urllib.parse` hosts, the `idna` codec and string suffix checks. It imports nothing from
shardwatch, so it cannot share a bug with the matcher."""

from __future__ import annotations

import hashlib
import math
import re
from urllib.parse import urlsplit


def entry_id(kind: str, canonical: bytes) -> bytes:
    """The entry identity of docs (issue 20): url kinds by the URL's digest, others hashed."""
    if kind in ("url", "url_sha256"):
        return canonical[:16]
    return hashlib.sha256(kind.encode() + b"\x00" + canonical).digest()[:16]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def entries_of(lines: list[str]) -> list[str]:
    """The reference's reading: stripped, blank and `#` lines dropped."""
    return [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]


def expected_urls(
    kind: str, lines: list[str], urls: list[str | None]
) -> tuple[list[bool], set[bytes], int]:
    """Rows matching, entry ids matched and distinct entries, computed with hashlib and sets."""
    if kind == "url":
        ids = {hashlib.sha256(e.encode()).digest()[:16] for e in entries_of(lines)}
    else:
        ids = {bytes.fromhex(e)[:16] for e in entries_of(lines)}
    rows, matched = [], set()
    for url in urls:
        key = None if url is None else hashlib.sha256(url.encode()).digest()[:16]
        rows.append(key in ids)
        if key in ids:
            assert key is not None
            matched.add(key)
    return rows, matched, len(ids)


def reference_host(url: str | None) -> str | None:
    if not url or "//" not in url:
        return None
    host = urlsplit(url).hostname
    if not host:
        return None
    host = host.rstrip(".")
    return host if host.isascii() else host.encode("idna").decode("ascii").lower()


def reference_entry_host(entry: str) -> str:
    """A domain entry's host: a leading `*.` or `.` dropped (subdomains match anyway)."""
    entry = entry[2:] if entry.startswith("*.") else entry.removeprefix(".")
    host = entry.lower().rstrip(".")
    return host if host.isascii() else host.encode("idna").decode("ascii").lower()


def expected_domains(lines: list[str], urls: list[str | None]) -> tuple[list[bool], set[bytes]]:
    entries = {reference_entry_host(e) for e in entries_of(lines)}
    rows, matched = [], set()
    for url in urls:
        host = reference_host(url)
        hits = {e for e in entries if host is not None and (host == e or host.endswith("." + e))}
        rows.append(bool(hits))
        matched |= {entry_id("domain", e.encode()) for e in hits}
    return rows, matched


def reference_id_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value == int(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if re.fullmatch(r"[+-]?[0-9]+(\.0*)?", text):
        return str(int(text.split(".")[0]))
    return text


def expected_ids(lines: list[str], ids: list[object]) -> tuple[list[bool], set[bytes], int]:
    entries = {reference_id_text(e) for e in entries_of(lines)}
    rows, matched = [], set()
    for value in ids:
        text = reference_id_text(value)
        hit = text is not None and text in entries
        rows.append(hit)
        if hit:
            assert text is not None
            matched.add(entry_id("id", text.encode()))
    return rows, matched, len(entries)


def expected(
    kind: str, lines: list[str], urls: list[str | None] | None, ids: list[object] | None
) -> tuple[list[bool], set[bytes]]:
    """Rows matching and entry ids matched, for any kind (None: the column is missing)."""
    if kind == "id":
        return expected_ids(lines, ids)[:2] if ids is not None else ([], set())
    if urls is None:
        return [], set()
    if kind == "domain":
        return expected_domains(lines, urls)
    return expected_urls(kind, lines, urls)[:2]
