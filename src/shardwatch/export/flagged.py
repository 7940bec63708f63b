"""Export: stream the rows a rule flags in the report's shards into a parquet remove-list.

One row per flagged row: shard, row, id, URL and every rule flagging it (captions only when
asked for; `remove_list.py` builds the columns and the file). The shards are the report's:
the latest done version of every shard URI. Each is re-read with the profile and lexicon it
was scanned with, after its sha256 is checked against the stored one, and flagged through
the engine's own per-row view (`rows.row_view`), so a rule's row count equals the report's
figure. A shard that cannot be read or has changed is skipped with its reason; the others
are still written. A `blocklist:<name>` rule applies the list as configured now to every
shard, and the summary names the shards whose stored results came from another version of
it, or from none (summary.py `ListVersions`). Rows are staged per shard and the file is
renamed into place only when complete, so it never holds part of a shard or of an export.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import numpy as np
import pyarrow as pa

from shardwatch.acquire.download import download
from shardwatch.acquire.policy import DownloadError, DownloadPolicy, safe_url
from shardwatch.core.names import shown
from shardwatch.core.profiles import DatasetProfile
from shardwatch.export.flag_rules import shard_rules
from shardwatch.export.remove_list import RemoveListFile, export_schema, output_batch
from shardwatch.export.rule_names import (
    BLOCKLIST_PREFIX,
    RULES,
    TERM_PREFIX,
    blocklist_of,
    parse_rule,
)
from shardwatch.export.summary import (
    ExportError,
    ExportProgress,
    ExportRequest,
    ExportSummary,
    ListVersions,
    ShardNote,
    Silent,
)
from shardwatch.scan.engine import CompiledLexicon
from shardwatch.scan.fingerprint import fingerprint
from shardwatch.scan.reader import ShardReader, ShardReadError
from shardwatch.scan.rows import row_view
from shardwatch.settings.config import ConfigError, Settings
from shardwatch.store.export_queries import DoneShard, done_shards

if TYPE_CHECKING:
    from shardwatch.scan.blocklists import CompiledBlocklist
    from shardwatch.store.database import StoreEngine

__all__ = [  # the request and summary types live in summary.py; callers import them here too
    "ExportError",
    "ExportProgress",
    "ExportRequest",
    "ExportSummary",
    "ShardNote",
    "display_uri",
    "export_flagged",
]


class _ShardError(Exception):
    """This shard is skipped for `reason`; the export goes on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def display_uri(uri: str) -> str:
    """A shard URI safe to print: http(s) without query string or user info."""
    return safe_url(uri) if urlsplit(uri).scheme.lower() in ("http", "https") else uri


def export_flagged(
    engine: StoreEngine,
    settings: Settings,
    request: ExportRequest,
    *,
    download_policy: Callable[[], DownloadPolicy],
    progress: ExportProgress | None = None,
    blocklist: Callable[[str], CompiledBlocklist] | None = None,
) -> ExportSummary:
    """Write `request.out` (see the module docstring). Raises UnknownRule, UnknownDataset or
    ExportError before writing anything; SQLAlchemy errors and an output that cannot be
    written propagate (no partial file is left). `download_policy` gives the policy for
    http(s) shards, asked for at the first one; `blocklist(name)` the configured list a
    `blocklist:<name>` rule names, compiled (raising ExportError for an unknown or unusable
    list); pipeline/export.py builds both."""
    rule = parse_rule(request.rule)
    out = request.out
    if out.is_dir() or not out.parent.is_dir():
        raise ExportError(f"--out {out}: must be a file in an existing folder")
    lists: tuple[CompiledBlocklist, ...] = ()
    if (name := blocklist_of(rule)) is not None:
        if blocklist is None:
            raise ExportError(f"no blocklist {name!r} is configured (no [blocklists] section)")
        lists = (blocklist(name),)
    shards = done_shards(engine, request.dataset, blocklist=name)
    report = progress or Silent()
    job = _Job(settings, request, rule, report.advance, download_policy, lists)
    job.check_term([s.lexicon for s in shards])
    report.start(len(shards), sum(s.rows for s in shards))
    writer = RemoveListFile(out, export_schema(request.with_text), job.header())
    try:
        for i, shard in enumerate(shards):
            report.shard(i, shown(display_uri(shard.uri)))
            job.run(shard, writer)
        if job.read and len(job.unavailable) == job.read:
            why = "; ".join(sorted({n.reason for n in job.unavailable}))
            raise ExportError(f"rule {rule} cannot be evaluated on any shard read: {why}")
        summary = job.summary(out)
        writer.finish(summary.footer())
    except BaseException:
        writer.discard()
        raise
    return summary


class _Job:
    """One export's state: resolved profiles and lexicons, tallies, notes."""

    def __init__(
        self,
        settings: Settings,
        request: ExportRequest,
        rule: str,
        progress: Callable[[int], None],
        download_policy: Callable[[], DownloadPolicy],
        blocklists: tuple[CompiledBlocklist, ...] = (),
    ) -> None:
        self.settings, self.request, self.rule, self.progress = settings, request, rule, progress
        self.download_policy, self.blocklists = download_policy, blocklists
        self.policy: DownloadPolicy | None = None  # built at the first http(s) shard
        self.profiles: dict[str, DatasetProfile | str] = {}
        self.lexicons: dict[str, CompiledLexicon | str] = {}
        self.by_reason: Counter[str] = Counter()
        self.rows = 0
        self.read = 0
        self.skipped: list[ShardNote] = []
        self.unavailable: list[ShardNote] = []
        self.other_version: list[str] = []  # shards read whose stored results came from
        self.unchecked: list[str] = []  # another version of the blocklist, or from none

    def profile(self, name: str) -> DatasetProfile:
        if name not in self.profiles:
            try:
                self.profiles[name] = self.settings.dataset_profile(name)
            except ConfigError as exc:
                self.profiles[name] = f"its profile cannot be resolved: {exc}"
        found = self.profiles[name]
        if isinstance(found, str):
            raise _ShardError(found)
        return found

    def lexicon(self, name: str) -> CompiledLexicon:
        if name not in self.lexicons:
            try:
                self.lexicons[name] = CompiledLexicon(self.settings.active_lexicon(name))
            except ConfigError as exc:
                self.lexicons[name] = f"its lexicon cannot be resolved: {exc}"
        found = self.lexicons[name]
        if isinstance(found, str):
            raise _ShardError(found)
        return found

    def check_term(self, lexicon_names: list[str]) -> None:
        """A term rule must name a term of at least one of the shards' lexicons."""
        if not self.rule.startswith(TERM_PREFIX):
            return
        terms: dict[str, None] = {}
        for name in dict.fromkeys(lexicon_names):
            with suppress(_ShardError):
                terms.update(dict.fromkeys(self.lexicon(name).term_names))
        term = self.rule[len(TERM_PREFIX) :]
        if terms and term not in terms:
            listed = ", ".join(terms)
            raise ExportError(f"no watched term {term!r} in the shards' lexicons; terms: {listed}")

    def run(self, shard: DoneShard, writer: RemoveListFile) -> None:
        """Export one shard, or note why it is skipped (then it leaves no rows)."""
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            self.progress(n)

        uri = display_uri(shard.uri)
        try:
            profile = self.profile(shard.profile)
            lexicon = self.lexicon(shard.lexicon)
            stored = shard.similarity_threshold
            if stored is not None and stored != profile.similarity_threshold:
                raise _ShardError(
                    f"profile {profile.name!r} now has the similarity cut-off "
                    f"{profile.similarity_threshold}, the shard was scanned with {stored}: "
                    "re-ingest it (shardwatch ingest --force)"
                )
            with self.local_copy(shard) as path:
                writer.begin_shard()
                why = self.scan(shard.uri, path, profile, lexicon, writer, advance)
        except (_ShardError, ShardReadError) as exc:
            writer.abort_shard()
            self.skipped.append(ShardNote(uri, exc.reason))
            self.progress(max(0, shard.rows - done))
            return
        self.read += 1
        self.progress(max(0, shard.rows - done))
        if why is not None:
            self.unavailable.append(ShardNote(uri, why))
        elif self.blocklists:  # exported by the list as configured now: was it stored so?
            if shard.list_version is None:
                self.unchecked.append(uri)
            elif shard.list_version != self.blocklists[0].version:
                self.other_version.append(uri)
        rows, tally = writer.commit_shard()
        self.rows += rows
        self.by_reason.update(tally)

    @contextmanager
    def local_copy(self, shard: DoneShard) -> Iterator[Path]:
        """The shard's bytes on local disk, verified against the stored sha256. A download
        goes to a temporary folder in the download cache, deleted afterwards."""
        want = shard.content_sha256
        scheme = urlsplit(shard.uri).scheme.lower()
        if scheme in ("http", "https"):
            cache = self.settings.download.cache_dir
            try:
                cache.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise _ShardError(f"cannot create the download folder {cache} ({exc})") from None
            self.policy = self.policy or self.download_policy()
            with tempfile.TemporaryDirectory(dir=cache, prefix="export-") as folder:
                try:
                    got = download(
                        shard.uri,
                        Path(folder) / _file_name(shard.uri),
                        policy=self.policy,
                        expected_sha256=want,
                    )
                except DownloadError as exc:
                    if "sha256 mismatch" in exc.reason:
                        raise _ShardError(_changed(exc.reason)) from None
                    raise _ShardError(f"download failed: {exc.reason}") from None
                yield got.path
            return
        if scheme:
            raise _ShardError(f"cannot read a {scheme!r} URI: only local files and http(s)")
        path = Path(shard.uri)
        if not path.exists():
            raise _ShardError("no such file (deleted or moved since it was ingested)")
        sha = fingerprint(path).sha256
        if sha != want:
            raise _ShardError(_changed(f"sha256 {sha}, stored {want}"))
        yield path

    def scan(
        self,
        uri: str,
        path: Path,
        profile: DatasetProfile,
        lexicon: CompiledLexicon,
        writer: RemoveListFile,
        advance: Callable[[int], None],
    ) -> str | None:
        """Stage the shard's flagged rows; or why the rule cannot be evaluated on it."""
        with ShardReader(path, profile) as reader:
            rules = shard_rules(reader.columns, profile, lexicon.term_names, self.blocklists)
            why = rules.reason_unavailable(self.rule)
            if why is not None:
                return why
            present = reader.columns.present
            offset = 0
            for batch in reader.iter_batches(self.request.batch_size):
                try:
                    view = row_view(batch, reader.columns, profile, lexicon, self.blocklists)
                    flags = rules.flags(view)
                    rows = np.flatnonzero(flags.mask(self.rule)).astype(np.int64)
                    out = output_batch(
                        batch, present, flags, rows, offset, uri, self.request.with_text
                    )
                except (pa.ArrowException, ValueError) as exc:
                    raise _ShardError(f"unreadable data ({type(exc).__name__}: {exc})") from None
                offset += batch.num_rows
                if out.num_rows:
                    writer.stage(out)
                advance(batch.num_rows)
        return None

    def header(self) -> dict[str, str]:
        doc = {
            "dataset": self.request.dataset,
            "rule": self.rule,
            "with_text": self.request.with_text,
            "rules": {
                **RULES,
                f"{TERM_PREFIX}<term>": "a watched term's match",
                f"{BLOCKLIST_PREFIX}<name>": "a configured blocklist's match",
            },
        }
        return {"shardwatch.export": json.dumps(doc)}

    def summary(self, out: Path) -> ExportSummary:
        order = [*RULES, *sorted(k for k in self.by_reason if k not in RULES)]
        return ExportSummary(
            out=out.resolve(),
            dataset=self.request.dataset,
            rule=self.rule,
            rows=self.rows,
            by_reason={k: self.by_reason[k] for k in order if self.by_reason.get(k)},
            shards_read=self.read,
            skipped=tuple(self.skipped),
            unavailable=tuple(self.unavailable),
            blocklist=ListVersions(
                self.blocklists[0].name,
                self.blocklists[0].version,
                tuple(self.other_version),
                tuple(self.unchecked),
            )
            if self.blocklists
            else None,
        )


def _file_name(url: str) -> str:
    """A safe local name keeping the URL's file name (and so its .csv/.tsv[.gz] ending)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", unquote(PurePosixPath(urlsplit(url).path).name))
    return "shard-" + name[-120:]


def _changed(detail: str) -> str:
    return (
        f"content changed since it was ingested ({detail}); the export would not match the "
        "report: re-ingest it"
    )
