"""The `rnr` command line: thin typer commands that parse options and call the library.

Each command group lives in its own module with a `register(app)` function. A module is imported
only when one of its commands runs or shows its own help: `rnr --help` lists the commands from
`COMMANDS` below and imports none of them (nor numpy, torch, NLTK, ...; benchmarks/startup.md).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

# OpenMP threads (torch, llama.cpp) sleep at barriers instead of spinning. Spinning teams stall when
# another process holds a core: LoRA on 2 busy cores ran 2.2x faster this way (benchmarks/train_speed.md).
# Set before torch or llama.cpp load libgomp, which reads it once.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer
from typer.core import TyperCommand, TyperGroup

from rolenrules import __version__
from rolenrules.llm.registry import BACKENDS

#: Every top-level command: its module under rolenrules.cli (with `register(app)`) and the line
#: `rnr --help` shows for it, which must be the command's own short help (tests/cli/test_startup.py).
COMMANDS: dict[str, tuple[str, str]] = {
    "chat": ("chat", "Send one prompt (with an optional system prompt) and print the reply."),
    "eval": ("evaluate", "Run a model on a benchmark, score every rule, and write metrics with confidence intervals."),
    "report": ("evaluate", "Compare runs side by side: an HTML page and a markdown summary (printed)."),
    "compare": ("evaluate", "Paired comparison of two runs (B − A): examples matched by id, or by IFEval key between "
                            "ifeval and sys-ifeval; pass-rate difference with Newcombe's interval, McNemar, flipped "
                            "examples."),
    "tasks": ("tasks", "The built-in eval tasks (`rnr eval --task NAME`): examples, rules scored, judge, licence."),
    "train": ("train", "Fine-tune a model on RNR data: SFT (loss on assistant replies), DPO on preference pairs, GRPO "
                       "with rule rewards, or SFT then DPO."),
    "generate": ("generate", "Generate role-and-rule training data from an instruction dataset (RoleNRules)."),
    "run": ("run", "Run the whole RNR method: data, a held-out benchmark, the base model and each trained arm evaluated on it (and on built-in tasks), one report."),
    "init": ("init", "Write a ready local project: a quickstart config, an experiment for `rnr run` and a seed "
                     "sample."),
    "data": ("data", "Dataset conversion and inspection."),
    "bench": ("evaluate", "Benchmarks of held-out system prompts."),
    "standard": ("evaluate", "Standard benchmarks (lm-evaluation-harness, AlpacaEval) on the same model."),
    "template": ("train", "Chat-template tools."),
    "rules": ("rules", "The verifiable rule library (IFEval's 25 types, system-prompt rules, literal and regex "
                       "rules, and your plugins)."),
    "ifeval": ("ifeval", "IFEval (Zhou et al., 2023) scoring with the official semantics."),
}

_SETTINGS: dict[str, Any] = {
    "add_completion": False,
    "pretty_exceptions_enable": False,
    # click's own help layout: it wraps long option text instead of cutting it with an ellipsis as
    # the rich panels do in an 80-column terminal, and shows each option's default.
    "rich_markup_mode": None,
}


class _LazyGroup(TyperGroup):
    """Imports a command's module on first use of the command."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMANDS, *(name for name in self.commands if name not in COMMANDS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            load_commands(self, COMMANDS[cmd_name][0])
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        limit = formatter.width - 6 - max(map(len, self.list_commands(ctx)))
        rows = [(name, TyperCommand(name=name, help=COMMANDS[name][1]).get_short_help_str(limit)
                 if name in COMMANDS and name not in self.commands else self.commands[name].get_short_help_str(limit))
                for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def load_commands(group: TyperGroup, module: str) -> None:
    """Add the commands that `rolenrules.cli.MODULE` registers to `group`."""
    holder = typer.Typer(**_SETTINGS)
    importlib.import_module(f"rolenrules.cli.{module}").register(holder)
    for name, command in typer.main.get_group(holder).commands.items():
        group.commands.setdefault(name, command)


def _model_specs() -> str:
    """The backend registry as help text (click keeps a paragraph after a \\b line unwrapped)."""
    lines = [f"  {', '.join(entry.forms)}\n      {entry.help}" for entry in BACKENDS.values()]
    return "Model specs (--model, --teacher, --judge):\n\n\b\n" + "\n".join(lines)


app = typer.Typer(
    name="rnr",
    cls=_LazyGroup,
    help="rolenrules: generate role-and-rule training data, train on it, and measure system-prompt following.",
    epilog=_model_specs(),
    no_args_is_help=True,
    context_settings={"max_content_width": 120},
    **_SETTINGS,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rnr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """rolenrules (RoleNRules): roles and rules in system prompts."""


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

    from rolenrules.errors import ExitCode, RnrError

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
