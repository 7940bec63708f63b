"""The secrets scenario (issue 8, scenario 9): canary secrets that every other reliability
scenario runs with, and the checks that they never show up anywhere.

`CANARIES` holds a webhook token, an SMTP password and a database password, fresh for each
test session. Scenarios put them where real secrets go (the Slack webhook URL's path, the
SMTP login, the PostgreSQL URL's password: trust auth ignores it, so it can be any value)
and, once they have run, hand every output to the `leaks` fixture (conftest.py), which also
runs the test with the root logger at DEBUG into its own file (`debug_logging`) and searches
that log when the test ends:

    leaks.text("ingest stdout", proc.stdout)     # CLI output, messages, captured logs
    leaks.tree("gx and docs", tmp_path / ".shardwatch")  # every file under a folder
    leaks.database("results", url)               # every row of every table, as text

Each check asserts 0 hits at once (so the failing scenario is the one named) and is also
counted per scenario; when a scenario module ends, conftest.py asserts that it searched
something (its DEBUG logs aside). `test_secrets.py` runs a pass of its own with the canaries
and searches everything it produced; it depends on no other module and on no order.
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import MetaData, select

from shardwatch.store.database import make_engine


@dataclass(frozen=True)
class Canaries:
    """Stand-ins for real secrets; each is unique to the session and appears nowhere else."""

    webhook: str
    smtp_password: str
    db_password: str

    @classmethod
    def fresh(cls) -> Canaries:
        tag = secrets.token_hex(6)
        return cls(f"cw{tag}hook", f"cs{tag}mtp", f"cd{tag}bpw")

    @property
    def values(self) -> tuple[str, ...]:
        return (self.webhook, self.smtp_password, self.db_password)

    def webhook_url(self, port: int) -> str:
        """A Slack-like incoming-webhook URL on loopback whose path is the secret."""
        return f"http://127.0.0.1:{port}/services/T000/B000/{self.webhook}"

    def postgres_url(self, plain_url: str) -> str:
        """`postgresql://postgres@host:port/db` with the canary as the password."""
        scheme, _, rest = plain_url.partition("://")
        user, _, where = rest.partition("@")
        return f"{scheme}://{user.split(':')[0]}:{self.db_password}@{where}"


CANARIES = Canaries.fresh()
TESTS = Path(__file__).resolve().parents[2]
SUITE = TESTS / "reliability"  # the suite's folder: its test modules get the `reliability` marker
FIGURES = TESTS.parent / "build" / "reliability-figures.jsonl"


@contextmanager
def debug_logging(path: Path) -> Iterator[Path]:
    """The root logger at DEBUG into `path` while the block runs (a secret must not leak even
    there), SQLAlchemy's at WARNING (not every statement); levels and handlers restored after."""
    root, sqlalchemy = logging.getLogger(), logging.getLogger("sqlalchemy")
    levels = root.level, sqlalchemy.level
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    sqlalchemy.setLevel(logging.WARNING)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(levels[0])
        sqlalchemy.setLevel(levels[1])


@dataclass
class LeakWatch:
    """Counts what was searched for the canaries, per scenario, and the hits (always 0)."""

    canaries: Canaries
    checked: Counter[str] = field(default_factory=Counter)  # scenario -> items searched
    logs_checked: Counter[str] = field(default_factory=Counter)  # scenario -> DEBUG logs
    hits: list[str] = field(default_factory=list)
    scenario: str = "?"

    def _record(self, where: str, blob: bytes, *, count: bool = True) -> None:
        if count:
            self.checked[self.scenario] += 1
        found = [c for c in self.canaries.values if c.encode() in blob]
        if found:
            self.hits.append(f"{self.scenario}: {where}")
        assert not found, f"a canary secret leaked into {where}"

    def text(self, where: str, text: str | bytes | None) -> None:
        """Search CLI output, a message body, a captured log..."""
        if text is None:
            return
        self._record(
            where, text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
        )

    def debug_log(self, path: Path) -> None:
        """Search a test's DEBUG log (`debug_logging`); counted apart from the outputs."""
        self.logs_checked[self.scenario] += 1
        self._record(f"DEBUG log {path}", path.read_bytes(), count=False)

    def texts(self, where: str, texts: Iterable[str | bytes]) -> None:
        for i, item in enumerate(texts):
            self.text(f"{where}[{i}]", item)

    def tree(self, where: str, root: Path) -> int:
        """Search every file under `root` (GX project, Data Docs, artifacts, SQLite files,
        logs). Returns the number of files searched."""
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in files:
            self._record(f"{where}: {path}", path.read_bytes())
        return len(files)

    def database(self, where: str, url: str) -> int:
        """Search every row of every table of the database at `url`. Returns the rows."""
        engine = make_engine(url)  # postgresql:// means psycopg2, as in the service
        rows = 0
        try:
            meta = MetaData()
            meta.reflect(engine)
            with engine.connect() as conn:
                for table in meta.sorted_tables:
                    dumped = [repr(tuple(r)) for r in conn.execute(select(table))]
                    rows += len(dumped)
                    self._record(
                        f"{where}: table {table.name}",
                        "\n".join(dumped).encode("utf-8", "surrogateescape"),
                    )
        finally:
            engine.dispose()
        return rows


@dataclass
class Session:
    """What the suite's conftest keeps for the session (per process): the leak watch. The
    figures go to FIGURES, which every pytest-xdist worker appends to."""

    watch: LeakWatch


SESSION = Session(LeakWatch(CANARIES))
