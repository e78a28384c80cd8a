"""The `rnr` command line: thin typer commands that parse options and call the library.

Each command group lives in its own module with a `register(app)` function.
"""

from __future__ import annotations

import importlib
import sys

import typer

from rolenrules import __version__
from rolenrules.errors import ExitCode, RnrError
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
_COMMAND_MODULES = ("init", "data", "chat", "evaluate", "tasks", "train", "rules", "ifeval", "generate", "run")


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


INTERRUPTED = "interrupted — run the same command to resume"


def _say(label: str, message: str) -> None:
    from rich.markup import escape

    from rolenrules.cli._console import err_console

    colour = "yellow" if label != "error" else "red"
    err_console.print(f"[bold {colour}]{label}:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _interrupted() -> None:
    from rolenrules.cli._console import err_console

    err_console.print(f"[bold yellow]{INTERRUPTED}[/]", highlight=False, soft_wrap=True)


def _os_error(error: OSError) -> str:
    """`No space left on device: 'out.jsonl'` — the cause and the file, without a traceback."""
    what = error.strerror or str(error) or type(error).__name__
    files = [str(f) for f in (error.filename, error.filename2) if f]
    return what + (f": {' -> '.join(files)}" if files else "")


def main(argv: list[str] | None = None) -> None:
    """The `rnr` entry point. Exit codes are `errors.ExitCode` (documented in the README)."""
    import sqlite3

    try:
        app(args=argv)
    except SystemExit as done:
        # typer turns Ctrl-C inside a command into exit code 130, silently.
        if done.code == ExitCode.INTERRUPTED:
            _interrupted()
        raise
    except KeyboardInterrupt:
        _interrupted()
        sys.exit(ExitCode.INTERRUPTED)
    except RnrError as error:
        _say(error.label, str(error))
        sys.exit(error.exit_code)
    except OSError as error:  # a full disk, a permission denied: the user's to fix, not a bug of ours
        _say("error", _os_error(error))
        sys.exit(ExitCode.ERROR)
    except sqlite3.Error as error:  # e.g. "database or disk is full" in a run store or cache
        _say("error", f"SQLite: {error}")
        sys.exit(ExitCode.ERROR)
