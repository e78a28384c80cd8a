"""The `rnr` command line: thin typer commands that parse options and call the library.

Each command group lives in its own module with a `register(app)` function.
"""

from __future__ import annotations

import importlib
import os
import sys

# OpenMP threads (torch, llama.cpp) sleep at barriers instead of spinning. Spinning teams stall when
# another process holds a core: LoRA on 2 busy cores ran 2.2x faster this way (benchmarks/train_speed.md).
# Set before torch or llama.cpp load libgomp, which reads it once.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer

from rolenrules import __version__
from rolenrules.errors import RnrError

app = typer.Typer(
    name="rnr",
    help="rolenrules: generate role-and-rule training data, train on it, and measure system-prompt following.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Command modules under rolenrules.cli, each with `register(app)`.
_COMMAND_MODULES = ("data", "chat", "evaluate", "train", "rules", "ifeval", "generate", "run")


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
