"""`rnr generate`: the RNR data-generation run."""

from __future__ import annotations

from typing import Any

import typer

from rolenrules.cli._console import err_console, quiet_datasets
from rolenrules.cli._model_options import command_from_config
from rolenrules.config_file import load_yaml_mapping
from rolenrules.console import setup_logging
from rolenrules.errors import Incomplete
from rolenrules.generate import GenerateConfig, build_config, default_clients, generate


def _run(values: dict[str, Any]) -> None:
    config = build_config(values, "rnr generate", flags=True)
    setup_logging()
    quiet_datasets(config.quiet)
    result = generate(config, default_clients)
    if result.already_complete:
        err_console.print(f"run already complete ({result.kept} kept, {result.rejected} rejected): nothing to do; "
                          f"output in {result.out}", highlight=False)
        return
    usage = result.teacher_usage.add(result.judge_usage)
    total = result.total_usage
    status = "[green]done[/]" if result.complete else "[yellow]finished, incomplete[/]"
    err_console.print(
        f"{status}: {result.kept} kept → {result.out}; {result.rejected} rejected → {result.rejects}; "
        f"card → {result.card}; {usage.requests} requests ({usage.cached_requests} from cache), "
        f"{usage.total_tokens:,} tokens this time; {total.total_tokens:,} tokens over the whole run", highlight=False)
    if result.kept == 0 and result.complete:
        err_console.print(f"[yellow]warning:[/] no conversation was kept: see why in {result.rejects}", highlight=False)
    if not result.complete:
        raise Incomplete(f"{result.failed} conversation(s) failed on server errors (teacher or judge) and are not in "
                         f"{result.out}; run the same command again to retry them")


generate_command = command_from_config(
    GenerateConfig, _run, load_yaml_mapping, short={"input": "-i", "out": "-o", "teacher": "-t"},
    doc="Generate role-and-rule training data from an instruction dataset (RoleNRules).\n\n"
        "Example: rnr generate --input alpaca.json --teacher openai:gpt-4o-mini --out rnr.jsonl --num-prompts 100")


def register(app: typer.Typer) -> None:
    app.command("generate")(generate_command)
