"""Errors a user can act on. The CLI prints them in one line and exits non-zero, no traceback."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


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
