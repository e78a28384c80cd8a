"""`rnr ifeval score`: official IFEval strict and loose verdicts for a file of responses."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rolenrules.cli._console import console, err_console
from rolenrules.cli.rules import RulesPluginOption, load_plugins

ifeval_app = typer.Typer(help="IFEval (Zhou et al., 2023) scoring with the official semantics.", no_args_is_help=True)


@ifeval_app.command("score")
def score(
    responses: Annotated[Path, typer.Argument(metavar="RESPONSES.jsonl", help="Rows with `instruction_id_list`, `kwargs`, `response` (and `key` or `prompt`): IFEval's input format plus the response. Ids are IFEval's, or any rule type of `rnr rules list`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for verdicts.jsonl and summary.json.")],
    per_instruction: Annotated[bool, typer.Option("--per-instruction", help="Also print accuracy per instruction id.")] = False,
    rules_plugin: RulesPluginOption = None,
) -> None:
    """Score responses: writes OUT/verdicts.jsonl (strict and loose booleans per instruction, in
    input order) and OUT/summary.json (prompt- and instruction-level accuracy, per instruction id)."""
    from rich.table import Table

    from rolenrules.rules.ifeval_accuracy import score_file

    load_plugins(rules_plugin)
    summary = score_file(responses, out)
    table = Table(title=f"IFEval: {summary['prompts']} prompts, {summary['instructions']} instructions")
    table.add_column("level")
    table.add_column("strict", justify="right")
    table.add_column("loose", justify="right")
    table.add_row("prompt", f"{summary['prompt_level_strict']:.4f}", f"{summary['prompt_level_loose']:.4f}")
    table.add_row("instruction", f"{summary['instruction_level_strict']:.4f}",
                  f"{summary['instruction_level_loose']:.4f}")
    if per_instruction:
        table.add_section()
        for instruction_id, stats in summary["per_instruction"].items():
            table.add_row(f"{instruction_id} ({stats['count']})", f"{stats['strict']:.3f}", f"{stats['loose']:.3f}")
    console.print(table)
    err_console.print(f"wrote {out / 'verdicts.jsonl'} and {out / 'summary.json'}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(ifeval_app, name="ifeval")
