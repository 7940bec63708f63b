"""Exit codes: what every `shardwatch` command's status means."""

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit statuses, shared by all commands."""

    OK = 0
    """Everything ran and every shard was read."""
    DATA_FAILED = 1
    """The data failed a validation check (used by validation commands)."""
    USAGE = 2
    """Bad command line or configuration; nothing was scanned."""
    INPUT = 3
    """At least one input could not be read; the others were still processed."""
    DELIVERY = 4
    """An alert message could not be delivered (the reason is printed)."""
