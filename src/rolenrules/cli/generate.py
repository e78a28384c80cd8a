"""`rnr generate`: the RNR data-generation run (or, with --dry-run, its estimate)."""

from __future__ import annotations

import gc
import shlex
from contextvars import ContextVar
from functools import partial
from typing import Any

import typer
from typer.core import TyperCommand

from rolenrules.cli._console import console, err_console, quiet_datasets
from rolenrules.cli._model_options import command_from_config
from rolenrules.cli._progress import progress_display
from rolenrules.config_file import load_yaml_mapping
from rolenrules.console import setup_logging
from rolenrules.errors import Incomplete
from rolenrules.generate import GenerateConfig, build_config, default_clients, estimate, generate

#: Options whose value may be left out: `--pairs` alone means `--pairs true` (OUT.pairs.jsonl).
OPTIONAL_VALUES = {"--pairs": "true"}
#: The arguments of this invocation, recorded on the dataset card.
_ARGV: ContextVar[list[str]] = ContextVar("generate_argv", default=[])


def fill_optional_values(args: list[str], optional: dict[str, str]) -> list[str]:
    """`--pairs` followed by nothing or by another option gets its implied value."""
    out: list[str] = []
    for i, arg in enumerate(args):
        out.append(arg)
        if arg in optional and (i + 1 == len(args) or args[i + 1].startswith("-")):
            out.append(optional[arg])
    return out


class _GenerateCommand(TyperCommand):
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        _ARGV.set(list(args))
        return super().parse_args(ctx, fill_optional_values(args, OPTIONAL_VALUES))


def _run(values: dict[str, Any]) -> None:
    config = build_config(values, "rnr generate", flags=True)
    setup_logging()
    quiet_datasets(config.quiet)
    if config.dry_run:
        _dry_run(config)
        return
    with progress_display(config.quiet) as progress:
        result = generate(config, default_clients, progress=progress,
                          command=shlex.join(["rnr", "generate", *_ARGV.get()]))
    # Everything is written and closed; the process ends after these lines. Frozen objects are left
    # out of the full collection Python makes at exit: 0.3 s of a few-second run otherwise.
    gc.freeze()
    if result.already_complete:
        err_console.print(f"run already complete ({result.kept} kept, {result.rejected} rejected): nothing to do; "
                          f"output in {result.out}", highlight=False)
        return
    usage = result.teacher_usage.add(result.judge_usage)
    total = result.total_usage
    status = "[green]done[/]" if result.complete else "[yellow]finished, incomplete[/]"
    pairs = f"; {result.pairs} preference pairs → {result.pairs_path}" if result.pairs_path else ""
    err_console.print(
        f"{status}: {result.kept} kept → {result.out}; {result.rejected} rejected → {result.rejects}; "
        f"card → {result.card}; judge transcripts → {result.transcripts}{pairs}; {usage.requests} requests "
        f"({usage.cached_requests} from cache), {usage.total_tokens:,} tokens this time; {total.total_tokens:,} "
        "tokens over the whole run", highlight=False)
    if result.timing:
        err_console.print(f"client timing: {result.timing}", highlight=False)
    if result.kept == 0 and result.complete:
        err_console.print(f"[yellow]warning:[/] no conversation was kept: see why in {result.rejects} and {result.card}",
                          highlight=False)
    if not result.complete:
        parts = [f"{result.failed} conversation(s)"] if result.failed else []
        parts += [f"{result.calibration_failed} judge-calibration check(s)"] if result.calibration_failed else []
        raise Incomplete(f"{' and '.join(parts) or 'some work'} failed on server errors (teacher or judge) and "
                         f"are not in {result.out}; run the same command again to retry them")


def _dry_run(config: GenerateConfig) -> None:
    from rich.table import Table

    result = estimate(config, default_clients)
    table = Table(title="rnr generate --dry-run: requests and tokens (nothing was written)", title_justify="left")
    table.add_column("calls")
    table.add_column("requests", justify="right")
    table.add_column("prompt tokens / request", justify="right")
    table.add_column("completion tokens / request", justify="right")
    for kind in result.kinds:
        count = f"{kind.low:,}" if kind.low == kind.high else f"{kind.low:,}–{kind.high:,}"
        table.add_row(kind.name, count, f"{kind.prompt_tokens:,.0f}", f"{kind.completion_tokens:,.0f}")
    console.print(table)
    low, high = result.requests
    p_low, c_low = result.tokens("low")
    p_high, c_high = result.tokens("high")
    lines = [
        f"{result.system_prompts} system prompts, {result.conversations} conversations, {result.turns} turns to answer",
        result.judged_rules,
        f"requests: {low:,}–{high:,} (low: every reply follows its rules at once; high: every attempt used)",
        f"tokens: {p_low + c_low:,.0f}–{p_high + c_high:,.0f} ({p_low:,.0f}–{p_high:,.0f} prompt, "
        f"{c_low:,.0f}–{c_high:,.0f} completion)",
    ]
    cost = result.cost(config)
    prices = config.prices
    if cost is not None and prices is not None:
        lines.append(f"cost: {_usd(cost[0])}–{_usd(cost[1])} at ${prices[0]:g}/1M prompt and ${prices[1]:g}/1M "
                     "completion tokens (cached requests cost nothing)")
    else:
        lines.append("cost: pass --price-per-1m IN,OUT (USD per million tokens) for an estimate")
    lines.append(f"estimated from {result.sample_calls} real model call(s) ({result.sample_usage.total_tokens:,} tokens)")
    lines += [f"note: {note}" for note in result.notes]
    for line in lines:
        console.print(line, highlight=False, markup=False)


def _usd(amount: float) -> str:
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.4f}"


generate_command = command_from_config(
    GenerateConfig, _run, partial(load_yaml_mapping, paths=GenerateConfig.PATHS),
    short={"input": "-i", "out": "-o", "teacher": "-t"},
    doc="Generate role-and-rule training data from an instruction dataset (RoleNRules).\n\n"
        "Example: rnr generate --input alpaca.json --teacher openai:gpt-4o-mini --out rnr.jsonl --num-prompts 100\n\n"
        "Paths in a --config file are relative to the file.")


def register(app: typer.Typer) -> None:
    app.command("generate", cls=_GenerateCommand)(generate_command)
