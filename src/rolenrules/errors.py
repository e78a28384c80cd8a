"""Errors a user can act on, and the exit code of every `rnr` command (defined here, once).

The CLI prints an `RnrError` in one line, with no traceback, and exits with its `exit_code`.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What an `rnr` command's exit status means (documented in the README)."""

    #: Everything asked for was done.
    COMPLETE = 0
    #: An error outside rnr's own checks: the disk is full, a permission was denied, or a bug.
    ERROR = 1
    #: Bad usage, options, config or input data, found before any work was done (or a run folder
    #: another process holds). Fix the command and run it again.
    USAGE = 2
    #: The command finished, but some work failed on server errors and was left out (failed,
    #: retryable); what finished is written. Run the same command again to retry the rest.
    INCOMPLETE = 3
    #: A model server could not be used: unreachable, refused the API key, or unknown model.
    SERVER = 4
    #: Interrupted (Ctrl-C). Run the same command again to resume.
    INTERRUPTED = 130


class RnrError(Exception):
    """Base of every error the CLI reports as one clear line."""

    exit_code: int = ExitCode.USAGE
    #: The word the CLI prints before the message.
    label = "error"


class ConfigError(RnrError):
    """Bad options or config values, found before any work (or LLM call) starts."""


class BusyError(ConfigError):
    """Another process is working in the same run folder."""


class Incomplete(RnrError):
    """A run finished with work left over that failed on server errors; re-running retries it."""

    exit_code = ExitCode.INCOMPLETE
    label = "incomplete"


class DataError(RnrError):
    """Bad input data. Names the file, the line (or row) and the field when known."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 row: int | None = None, field: str | None = None) -> None:
        self.path, self.line, self.row, self.field, self.detail = path, line, row, field, message
        where = path or "<input>"
        if line is not None:
            where += f":{line}"
        elif row is not None:
            where += f": row {row}"
        if field:
            where += f": field '{field}'"
        super().__init__(f"{where}: {message}")
