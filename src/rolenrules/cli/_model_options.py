"""CLI options generated from a typed pydantic config, so each option is documented once (in the
config class) and a YAML `--config` file can set any of them, with flags taking precedence.

`--help` shows each field's description and default (click shows it; a field without a default
says `[required]`). Which flags the user actually typed comes from click's parameter source, so
the field defaults shown in `--help` never override a value from the YAML file.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import typer
from pydantic import BaseModel

from rolenrules.errors import ConfigError


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(the type without None, whether it is a list)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    is_list = typing.get_origin(annotation) is list
    if is_list:
        annotation = typing.get_args(annotation)[0]
    # What typer cannot parse (a mapping, a record such as PATH[:WEIGHT]) comes in as text; the config parses it.
    simple = annotation in (str, int, float, bool, Path) or typing.get_origin(annotation) is typing.Literal
    return (annotation if simple else str), is_list


def config_parameters(config_cls: type[BaseModel], *, short: dict[str, str] | None = None,
                      flags: dict[str, str] | None = None) -> list[inspect.Parameter]:
    """One keyword parameter (a typer option) per field of `config_cls`: `--field-name`, the
    field's description as help, its default shown; `flags` renames a field's flag."""
    short, flags = short or {}, flags or {}
    params = []
    for name, field in config_cls.model_fields.items():
        flag = flags.get(name, "--" + name.replace("_", "-"))
        kind, is_list = _base_type(field.annotation)
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        if is_list or default == []:
            default = None  # typer's repeatable options cannot show a list default; absent means the field's
        help_text = (field.description or "") + ("  [required]" if field.is_required() else "")
        decls = [f"{flag}/--no-{flag[2:]}"] if kind is bool else [flag] + ([short[name]] if name in short else [])
        # A repeatable option reads as its item type (`<str>`), not `<list[str]>`.
        metavar = f"<{getattr(kind, '__name__', 'value')}>" if is_list else None
        option = typer.Option(*decls, help=help_text, show_default=default is not None, metavar=metavar)
        annotation: Any = Optional[list[kind]] if is_list else (kind if default is not None else Optional[kind])
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=typing.Annotated[annotation, option]))
    return params


def command_from_config(config_cls: type[BaseModel], run: Callable[[dict[str, Any]], None],
                        load_yaml: Callable[[Path], dict[str, Any]], *, short: dict[str, str] | None = None,
                        flags: dict[str, str] | None = None, doc: str = "") -> Callable[..., None]:
    """A typer command function with one `--option` per field of `config_cls` plus `--config FILE`.

    `run` receives the merged values: field defaults < YAML file < flags given on the command line
    (a flag counts as given only when typed, so the defaults `--help` shows never mask the file).
    """
    params = [
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
        inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None,
                          annotation=typing.Annotated[Optional[Path], typer.Option(
                              "--config", *([short["config"]] if short and "config" in short else []),
                              help="YAML file of options (same names); flags override it.")]),
        *config_parameters(config_cls, short=short, flags=flags),
    ]

    def command(ctx: typer.Context, **given: Any) -> None:
        config_file = given.pop("config")
        values: dict[str, Any] = load_yaml(config_file) if config_file else {}
        unknown = set(values) - set(config_cls.model_fields)
        if unknown:
            raise ConfigError(f"{config_file}: unknown option(s) {', '.join(sorted(unknown))}")
        # By name: typer ships its own copy of click, whose ParameterSource is not click's.
        typed = {"COMMANDLINE", "ENVIRONMENT"}
        values.update({k: v for k, v in given.items() if getattr(ctx.get_parameter_source(k), "name", None) in typed})
        run(values)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = doc
    return command
