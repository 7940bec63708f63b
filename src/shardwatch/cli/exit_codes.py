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


MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "ok",
    ExitCode.DATA_FAILED: "the data failed a check",
    ExitCode.USAGE: "usage or configuration error (nothing was scanned)",
    ExitCode.INPUT: "an input could not be read (the others were still processed), or the "
    "run could not complete",
    ExitCode.DELIVERY: "an alert could not be delivered",
}
"""One line per exit code, as the top-level --help lists them."""


def exit_code_table() -> str:
    """Every exit code and its meaning, one per line (the top-level --help's table)."""
    return "\n".join(f"  {int(code)}  {MEANINGS[code]}" for code in ExitCode)
