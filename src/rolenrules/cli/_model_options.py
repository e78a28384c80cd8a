"""CLI options generated from a typed pydantic config, so each option is documented once (in the
config class) and a YAML `--config` file can set any of them, with flags taking precedence."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import typer
from pydantic import BaseModel
from rich.markup import escape

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


def command_from_config(config_cls: type[BaseModel], run: Callable[[dict[str, Any]], None],
                        load_yaml: Callable[[Path], dict[str, Any]], *, short: dict[str, str] | None = None,
                        doc: str = "") -> Callable[..., None]:
    """A typer command function with one `--option` per field of `config_cls` plus `--config FILE`.

    `run` receives the merged values: field defaults < YAML file < flags given on the command line.
    """
    short = short or {}
    params = [inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None,
                                annotation=typing.Annotated[Optional[Path], typer.Option(
                                    "--config", *([short["config"]] if "config" in short else []),
                                    help="YAML file of options (same names); flags override it.")])]
    for name, field in config_cls.model_fields.items():
        flag = "--" + name.replace("_", "-")
        kind, is_list = _base_type(field.annotation)
        help_text = field.description or ""
        if not field.is_required() and field.default is not None and not is_list:
            # Escaped: rich would take "[default: 5]" for a markup tag and drop it.
            help_text += escape(f" [default: {field.default}]")
        decls = [flag] + ([short[name]] if name in short else [])
        if kind is bool:
            decls = [f"{flag}/--no-{flag[2:]}"]
        option = typer.Option(*decls, help=help_text, show_default=False)
        annotation: Any = Optional[list[kind]] if is_list else Optional[kind]
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=typing.Annotated[annotation, option]))

    def command(**given: Any) -> None:
        config_file = given.pop("config")
        values: dict[str, Any] = load_yaml(config_file) if config_file else {}
        unknown = set(values) - set(config_cls.model_fields)
        if unknown:
            raise ConfigError(f"{config_file}: unknown option(s) {', '.join(sorted(unknown))}")
        values.update({k: v for k, v in given.items() if v is not None})
        run(values)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = doc
    return command
