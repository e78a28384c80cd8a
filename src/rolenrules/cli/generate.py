"""`rnr generate`: the RNR data-generation run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from rolenrules.cli._console import err_console
from rolenrules.console import setup_logging
from rolenrules.cli._model_options import command_from_config
from rolenrules.cli._options import build_llm
from rolenrules.config_file import load_yaml_mapping
from rolenrules.generate import GenerateConfig, build_config, generate
from rolenrules.llm import LLM


def make_clients(config: GenerateConfig) -> tuple[LLM, LLM]:
    """The teacher, and the judge (a sibling of the teacher unless --judge names another model)."""
    cache = Path(config.cache) if config.cache else config.run_path / "cache.sqlite"
    teacher = build_llm(config.teacher, base_url=config.base_url, timeout=config.timeout,
                        max_retries=config.max_retries, concurrency=config.concurrency, cache=cache)
    if not config.judge:
        return teacher, teacher.sibling()
    judge = build_llm(config.judge, base_url=config.judge_base_url, timeout=config.timeout,
                      max_retries=config.max_retries, concurrency=config.concurrency, cache=cache)
    return teacher, judge


def _run(values: dict[str, Any]) -> None:
    config = build_config(values, "rnr generate")
    setup_logging()
    result = generate(config, make_clients)
    if result.already_complete:
        err_console.print(f"run already complete ({result.kept} kept, {result.rejected} rejected): nothing to do; "
                          f"output in {result.out}", highlight=False)
        return
    usage = result.teacher_usage.add(result.judge_usage)
    err_console.print(
        f"[green]done[/]: {result.kept} kept → {result.out}; {result.rejected} rejected → {result.rejects}; "
        f"card → {result.card}; {usage.requests} requests ({usage.cached_requests} from cache), "
        f"{usage.total_tokens:,} tokens", highlight=False)


generate_command = command_from_config(
    GenerateConfig, _run, load_yaml_mapping, short={"input": "-i", "out": "-o", "teacher": "-t"},
    doc="Generate role-and-rule training data from an instruction dataset (RoleNRules).\n\n"
        "Example: rnr generate --input alpaca.json --teacher openai:gpt-4o-mini --out rnr.jsonl --num-prompts 100")


def register(app: typer.Typer) -> None:
    app.command("generate")(generate_command)
