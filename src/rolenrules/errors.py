"""Errors a user can act on. The CLI prints them in one line and exits non-zero, no traceback."""

from __future__ import annotations


class RnrError(Exception):
    """Base of every error the CLI reports as a clear message (exit code 2)."""

    exit_code = 2


class ConfigError(RnrError):
    """Bad options or config values, found before any work (or LLM call) starts."""


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
