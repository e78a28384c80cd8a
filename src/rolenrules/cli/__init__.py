"""The `rnr` command line: thin typer commands that parse options and call the library.

Each command group lives in its own module with a `register(app)` function.
"""

from __future__ import annotations

import importlib
import sys

import typer

from rolenrules import __version__
from rolenrules.errors import RnrError
from rolenrules.llm.registry import BACKENDS


def _model_specs() -> str:
    """The backend registry as help text (click keeps a paragraph after a \\b line unwrapped)."""
    lines = [f"  {', '.join(entry.forms)}\n      {entry.help}" for entry in BACKENDS.values()]
    return "Model specs (--model, --teacher, --judge):\n\n\b\n" + "\n".join(lines)


app = typer.Typer(
    name="rnr",
    help="rolenrules: generate role-and-rule training data, train on it, and measure system-prompt following.",
    epilog=_model_specs(),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's own help layout: it wraps long option text instead of cutting it with an ellipsis as
    # the rich panels do in an 80-column terminal, and shows each option's default.
    rich_markup_mode=None,
    context_settings={"max_content_width": 120},
)

#: Command modules under rolenrules.cli, each with `register(app)`.
_COMMAND_MODULES = ("data", "chat", "evaluate", "tasks", "train", "rules", "ifeval", "generate", "run")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rnr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """rolenrules (RoleNRules): roles and rules in system prompts."""


for _name in _COMMAND_MODULES:
    importlib.import_module(f"rolenrules.cli.{_name}").register(app)


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv)
    except RnrError as error:
        from rich.markup import escape

        from rolenrules.cli._console import err_console

        err_console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
