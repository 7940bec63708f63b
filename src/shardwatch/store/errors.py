"""The store's own errors: what its public functions and methods raise. SQLAlchemy's errors
never leave `store/`; `boundary.translated` turns them into these at the entry points."""

from __future__ import annotations

from collections.abc import Sequence


class StoreError(Exception):
    """Anything the results store raises."""


class StoreConfigError(StoreError):
    """The store cannot be opened as configured: a malformed or unsupported database URL, a
    missing driver, or missing migrations (a usage error, not a database failure)."""


class StoreFailed(StoreError):
    """A database operation failed. `kind` names the database error (e.g. "OperationalError"),
    `driver` the driver's own error class ("NoneType" without one); `str()` is the driver's message
    (or the database error's), which never holds the URL's password."""

    def __init__(self, kind: str, message: str, driver: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.driver = driver


class StoreUnavailable(StoreFailed):
    """The database server dropped the connection or could not be reached (refused, starting
    or shutting down) for longer than the store's patience: worth trying again later."""


class ReportError(StoreError):
    """The report cannot be made (unknown dataset, or shards that do not add up)."""


class UnknownDataset(ReportError):
    """No dataset of that name is in the store."""

    def __init__(self, dataset: str, known: Sequence[str]) -> None:
        self.dataset = dataset
        self.known = tuple(known)
        listed = ", ".join(repr(k) for k in known) if known else "none yet"
        super().__init__(f"no dataset {dataset!r} in the results store (known: {listed})")
