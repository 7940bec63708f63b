"""Discovery: the configured sources as `Source` objects, their download policy, and the
monitor's first stage, which lists every source and compares the listing with the store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from shardwatch.acquire.changes import changed_at_source
from shardwatch.acquire.http_listing import HttpListingSource
from shardwatch.acquire.hub import DEFAULT_HF_EXTRA_HOSTS, HubRepo, HuggingFaceSource
from shardwatch.acquire.local import LocalSource
from shardwatch.acquire.object_store import ObjectStoreSource
from shardwatch.acquire.partial import collect
from shardwatch.acquire.policy import DownloadPolicy, origin_entry, policy_from
from shardwatch.acquire.sources import RemoteShard, Source, SourceError, cache_name
from shardwatch.core.names import name_problem, shown, uri_problem
from shardwatch.core.redact import url_problem
from shardwatch.pipeline.resources import Resources
from shardwatch.settings.config import Settings
from shardwatch.store.shard_versions import StoredShard, unfetched_hash


# ------------------------------------------------------------------------------- sources
def download_policy(settings: Settings, hosts: frozenset[str]) -> DownloadPolicy:
    return policy_from(settings.download, hosts)


def export_hosts(settings: Settings) -> frozenset[str]:
    """The hosts an export may download shards from: those of the configured http and
    Hugging Face sources (each [sources.*] manifest or endpoint host and its extra_hosts)."""
    hosts: set[str] = set()
    for spec in settings.sources.values():
        if spec.type == "http":
            hosts |= {origin_entry(spec.manifest), *(h.lower() for h in spec.extra_hosts)}
        elif spec.type == "hf":
            extra = DEFAULT_HF_EXTRA_HOSTS if spec.extra_hosts is None else spec.extra_hosts
            hosts |= {origin_entry(spec.endpoint), *(h.lower() for h in extra)}
    return frozenset(hosts)


def build_source(settings: Settings, name: str) -> Source:
    """The configured source `name` (`[sources.<name>]`)."""
    spec = settings.sources[name]
    if spec.type == "local":
        return LocalSource(name, spec.path)
    if spec.type == "http":
        problem = url_problem(spec.manifest)
        if problem is not None:  # before any parser repeats a piece of it
            raise ValueError(f"manifest URL: {problem}")
        hosts = frozenset({origin_entry(spec.manifest), *(h.lower() for h in spec.extra_hosts)})
        return HttpListingSource(
            name,
            spec.manifest,
            policy=download_policy(settings, hosts),
            listing=settings.download.listing_limits(),
        )
    if spec.type == "hf":
        hub = HubRepo(
            spec.repo,
            revision=spec.revision,
            path=spec.path,
            endpoint=spec.endpoint,
            extra_hosts=(
                DEFAULT_HF_EXTRA_HOSTS if spec.extra_hosts is None else frozenset(spec.extra_hosts)
            ),
        )
        return HuggingFaceSource(
            name,
            hub,
            token=spec.token,
            policy=download_policy(settings, hub.hosts),
            listing=settings.download.listing_limits(),
        )
    return ObjectStoreSource(
        name,
        spec.uri,
        region=spec.region,
        endpoint_override=spec.endpoint_override,
        anonymous=spec.anonymous,
    )


# ----------------------------------------------------------------------------- discovery
@dataclass(frozen=True)
class Discovery:
    """What the sources list, split into what needs processing and what does not."""

    new: tuple[RemoteShard, ...]
    unchanged: int
    errors: tuple[str, ...] = ()  # sources that could not be listed, with the reason
    # Listed with the same checksum as a shard in `new`: processed after `new`, so that a copy
    # under another name is recognised (quarantined) rather than raced and counted twice.
    later: tuple[RemoteShard, ...] = ()


def is_settled(shard: RemoteShard, stored: StoredShard | None) -> bool:
    """True when the URI's current version is this listing's content and nothing more can
    come of processing it again: done, quarantined, or failed on its own bytes. A download
    refused for good (e.g. a redirect off the allow-list) is settled while the listing is
    unchanged; a failed download (no content yet) or a crashed claim is retried."""
    if stored is None:
        return False
    if not stored.fetched:
        unchanged = stored.content_sha256 == unfetched_hash(shard.uri, shard.size, shard.etag)
        return stored.status == "quarantined" and unchanged
    if stored.status not in ("done", "quarantined", "failed"):
        return False
    if shard.sha256 is not None:
        return bool(shard.sha256 == stored.content_sha256)
    if shard.etag is not None and stored.etag is not None:
        return bool(shard.etag == stored.etag and shard.size == stored.size_bytes)
    if shard.size != stored.size_bytes:
        return False
    if shard.mtime is not None and stored.mtime is not None:
        return _utc(shard.mtime) == _utc(stored.mtime)
    return shard.mtime is None


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def discover(res: Resources, sources: Sequence[str] | None = None) -> Discovery:
    """List every configured source (or those named) and compare with the store, by the
    source's checksum, else ETag and size, else size, modification time and (HTTP) the
    server's validator recorded at the last fetch (one conditional request). Then collect
    the partial downloads no listed shard owns (or too old)."""
    settings = res.settings
    current = res.store.current(settings.dataset)
    new: dict[str, RemoteShard] = {}
    unchanged = 0
    errors: list[str] = []
    # The cache names of every listed shard (None when not every source was listed).
    owners: set[str] | None = set() if sources is None else None
    for name in sources if sources is not None else sorted(settings.sources):
        try:
            source = build_source(settings, name)
            listed = source.list()
        except SourceError as exc:
            errors.append(str(exc))
            continue
        except ValueError as exc:  # a source the settings describe badly
            errors.append(f"source {name!r}: {exc}")
            continue
        except Exception as exc:  # any other failure ends this source only; its text may
            # hold what the server sent, so only its type is kept
            errors.append(f"source {name!r}: listing failed ({type(exc).__name__})")
            continue
        if owners is not None:
            owners.update(cache_name(shard) for shard in listed)
        for shard in listed:
            if shard.uri in new:
                continue  # listed by two sources: once is enough
            problem = uri_problem(shard.uri)
            if not problem and shard.fetch_url:  # the redacted parts: a NUL or bad UTF-8
                problem = name_problem(shard.fetch_url, one_line=False)
            if problem:  # e.g. a manifest listing a URL with a NUL: refused, not mangled
                errors.append(f"source {name!r}: shard '{shown(shard.uri)}' {problem}; skipped")
                continue
            stored = current.get(shard.uri)
            if is_settled(shard, stored) and not changed_at_source(source, shard, stored):
                unchanged += 1
            else:
                new[shard.uri] = shard
    first: dict[str, RemoteShard] = {}
    later: list[RemoteShard] = []
    for shard in new.values():
        if shard.sha256 is not None and shard.sha256 in first:
            later.append(shard)
        else:
            first[shard.sha256 or shard.uri] = shard
    unique = tuple(s for s in new.values() if s not in later)
    d = settings.download
    collect(d.cache_dir, None if errors else owners, d.partial_max_age_hours * 3600)
    return Discovery(unique, unchanged, tuple(errors), tuple(later))
