"""Domains: count each shard's rows per registrable URL domain into a mergeable top-k sketch."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from publicsuffixlist import PublicSuffixList

from shardwatch.core.domain_sketch import DomainSketch, DomainStat

DEFAULT_TOP_K: Final = 100
NO_HOST: Final = "(no host)"  # a null URL, or one without scheme://host
INVALID_HOST: Final = "(invalid host)"  # over 253 characters, or characters no host has
# The authority of scheme://authority/... or //authority/... (one cheap anchored pattern; the
# userinfo, port and case are handled per distinct authority, which are few).
AUTHORITY_PATTERN: Final = r"^[^/]*//(?P<authority>[^/?#\\]*)"
_PORT: Final = re.compile(r":\d*$")
_BAD_HOST: Final = re.compile(r"[\s<>\"'`\\\x00-\x1f\x7f\[\]]")
_IPV4: Final = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_IPV6: Final = re.compile(r"\[[0-9a-f:.]{2,45}\]")
_CACHE_LIMIT: Final = 1_000_000
_COMPACT_ROWS: Final = 500_000


class RegistrableDomains:
    """Host -> registrable domain (eTLD+1) under the Public Suffix List bundled with the
    `publicsuffixlist` package (no network): `cdn.shopify.com` -> `shopify.com`,
    `a.b.co.uk` -> `b.co.uk`; a private suffix counts (`x.blogspot.com` stays itself). An IP
    literal, or a host that is itself a suffix (`localhost`), is its own domain."""

    def __init__(self) -> None:
        self._psl = PublicSuffixList()
        self._cache: dict[str, str] = {}

    def __call__(self, authority: str) -> str:
        """The registrable domain of a URL authority (`user@Host.example:8080`)."""
        found = self._cache.get(authority)
        if found is None:
            found = self._lookup(authority)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[authority] = found
        return found

    def _lookup(self, authority: str) -> str:
        host = host_of(authority)
        if host in (NO_HOST, INVALID_HOST) or is_ip_literal(host):
            return host
        return self._psl.privatesuffix(host) or host


def host_of(authority: str) -> str:
    """The host of a URL authority (`user@Host.example:8080` -> `host.example`) in its one
    comparable form: userinfo, port and a trailing dot stripped, lower-case ASCII (IDN as
    punycode, see `ascii_host`); an IPv6 literal keeps its brackets. NO_HOST when empty,
    INVALID_HOST when no host could have it. Domain attribution and domain blocklists share it.
    """
    host = _PORT.sub("", authority.rpartition("@")[2]).lower().rstrip(".")
    if not host:
        return NO_HOST
    if host.startswith("[") and host.endswith("]"):
        # an IPv6 literal; anything else in brackets (markup, a NUL, 1 MB) is no host
        return host if _IPV6.fullmatch(host) else INVALID_HOST
    if len(host) > 253:  # before any IDN work: punycode is quadratic in a label's length
        return INVALID_HOST
    if not host.isascii():
        host = ascii_host(host)
    if len(host) > 253 or _BAD_HOST.search(host):
        return INVALID_HOST
    return host


def is_ip_literal(host: str) -> bool:
    """An IPv4 or bracketed IPv6 literal, as `host_of` returns them."""
    return host.startswith("[") or _IPV4.fullmatch(host) is not None


def ascii_host(host: str) -> str:
    """An internationalised host in its one documented form: lower-case ASCII (punycode
    A-labels, IDNA 2003 as Python's `idna` codec maps it: `Bücher.de`, `bücher。de` and
    `xn--bcher-kva.de` are all `xn--bcher-kva.de`), safe to show in any terminal. A label the
    codec refuses is encoded as bare punycode; a host that cannot be encoded at all is
    INVALID_HOST's business (returned unchanged, it fails the checks after)."""
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        labels = re.split("[.\u3002\uff0e\uff61]", host)
        try:
            return ".".join(
                label if label.isascii() else "xn--" + label.encode("punycode").decode("ascii")
                for label in labels
            ).lower()
        except UnicodeError:
            return "\x00"  # no host has it: counted as INVALID_HOST


_DOMAINS = RegistrableDomains()


def domain_codes(url: pa.Array) -> tuple[list[str], npt.NDArray[np.int64]]:
    """The distinct registrable domains of a URL column and, per row, its domain's index."""
    extracted = pc.extract_regex(url, pattern=AUTHORITY_PATTERN)
    encoded = pc.struct_field(extracted, "authority").dictionary_encode(null_encoding="encode")
    names = [_DOMAINS(h) if h is not None else NO_HOST for h in encoded.dictionary.to_pylist()]
    domains, per_host = np.unique(np.array(names, dtype=object), return_inverse=True)
    indices = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return [str(d) for d in domains], np.asarray(per_host, dtype=np.int64)[indices]


_SCHEMA: Final = pa.schema(
    [
        ("domain", pa.large_string()),
        ("rows", pa.int64()),
        ("keyword_nsfw", pa.int64()),
        ("tag_nsfw", pa.int64()),
    ]
)


def batch_counts(
    url: pa.Array,
    keyword: npt.NDArray[np.bool_] | None,
    tag_nsfw: npt.NDArray[np.bool_] | None,
) -> pa.Table:
    """One batch's exact (domain, rows, keyword_nsfw, tag_nsfw) counts."""
    domains, codes = domain_codes(url)
    width = len(domains)

    def count(flags: npt.NDArray[np.bool_] | None) -> npt.NDArray[np.int64]:
        if flags is None:
            return np.zeros(width, dtype=np.int64)
        return np.bincount(codes[flags], minlength=width).astype(np.int64)

    rows = np.bincount(codes, minlength=width).astype(np.int64)
    return pa.table(
        [pa.array(domains, pa.large_string()), rows, count(keyword), count(tag_nsfw)],
        schema=_SCHEMA,
    )


@dataclass
class DomainCounter:
    """Sums batch counts per domain (compacting as it goes), then keeps the top k."""

    k: int = DEFAULT_TOP_K

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError("top-k must be at least 1")
        self._parts: list[pa.Table] = []
        self._pending = 0  # rows added since the last compaction
        self._compacted = 0  # rows of the compacted part

    def add(self, counts: pa.Table) -> None:
        self._parts.append(counts)
        self._pending += counts.num_rows
        # Compact once the new rows outnumber the compacted ones (and a floor): amortised
        # linear even when a shard has millions of distinct domains.
        if self._pending > max(_COMPACT_ROWS, self._compacted):
            self._parts = [self._combined()]
            self._compacted, self._pending = self._parts[0].num_rows, 0

    def _combined(self) -> pa.Table:
        if not self._parts:
            return _SCHEMA.empty_table()
        table = pa.concat_tables(self._parts)
        # On the calling thread: a threaded Acero plan can release its last batches, whose
        # buffers may be numpy-owned, on an Arrow pool thread after the call returns; during
        # interpreter exit that aborts the process (docs/exit-134.md, second cause).
        summed = table.group_by("domain", use_threads=False).aggregate(
            [("rows", "sum"), ("keyword_nsfw", "sum"), ("tag_nsfw", "sum")]
        )
        return summed.rename_columns(["domain", "rows", "keyword_nsfw", "tag_nsfw"]).cast(_SCHEMA)

    def sketch(self) -> DomainSketch:
        """The exact top-k sketch of everything added (docs/metrics.md)."""
        table = self._combined()
        domains = table.column("domain").to_pylist()
        counts = {
            name: np.asarray(table.column(name).to_numpy(), dtype=np.int64)
            for name in ("rows", "keyword_nsfw", "tag_nsfw")
        }
        keep = np.zeros(len(domains), dtype=bool)
        order_by_name = np.argsort(np.array(domains, dtype=object), kind="stable")
        for values in counts.values():
            # Largest first, ties by name, so the kept set does not depend on batch order.
            ranked = order_by_name[np.argsort(-values[order_by_name], kind="stable")]
            chosen = ranked[: self.k]
            keep[chosen[values[chosen] > 0]] = True
        rest = ~keep

        def floor(values: npt.NDArray[np.int64]) -> int:
            return int(values[rest].max()) if rest.any() else 0

        return DomainSketch(
            k=self.k,
            top={
                domains[i]: DomainStat(
                    int(counts["rows"][i]),
                    int(counts["keyword_nsfw"][i]),
                    int(counts["tag_nsfw"][i]),
                )
                for i in np.flatnonzero(keep).tolist()
            },
            floor_rows=floor(counts["rows"]),
            floor_keyword=floor(counts["keyword_nsfw"]),
            floor_tag=floor(counts["tag_nsfw"]),
            rest_rows=int(counts["rows"][rest].sum()),
            rest_keyword=int(counts["keyword_nsfw"][rest].sum()),
            rest_tag=int(counts["tag_nsfw"][rest].sum()),
        )
