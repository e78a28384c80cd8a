"""Errors a user can act on, and the exit code of every `rnr` command (defined here, once).

The CLI prints an `RnrError` in one line, with no traceback, and exits with its `exit_code`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)
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


def validation_problems(error: ValidationError, *, unknown: str = "unknown field") -> list[tuple[str, str]]:
    """(dotted field path, message) for each problem pydantic found, worded for a user: a key the
    model forbids reads `unknown`, a missing one `required`. The one place that wording lives."""
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item.get("loc", ()))
        # pydantic prefixes a validator's own ValueError text with "Value error, ".
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        if item.get("type") == "extra_forbidden":
            message = unknown
        elif item.get("type") == "missing":
            message = "required"
        problems.append((field, message))
    return problems


def config_error(error: ValidationError, source: str, *, unknown: str = "unknown option",
                 flags: bool = False) -> ConfigError:
    """A ConfigError in one line naming the source and every bad field:
    `SOURCE: field 'a.b': message; field 'c': message`, or with `flags` (options a user typed as
    command-line flags) `SOURCE: --max-tokens: message`."""
    def name(field: str) -> str:
        return "--" + field.replace("_", "-") if flags else f"field '{field}'"

    parts = [f"{name(field)}: {message}" if field else message
             for field, message in validation_problems(error, unknown=unknown)]
    return ConfigError(f"{source}: " + "; ".join(parts))


def validate_config(config_cls: type[ModelT], values: Mapping[str, Any], source: str, *,
                    unknown: str = "unknown option", flags: bool = False) -> ModelT:
    """`config_cls` built from `values`, or a `config_error` naming `source` and every bad field."""
    try:
        return config_cls.model_validate(dict(values))
    except ValidationError as error:
        raise config_error(error, source, unknown=unknown, flags=flags) from None
