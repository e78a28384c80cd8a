"""`rnr bench build`, `rnr eval`, `rnr report`, `rnr compare`, `rnr standard`: measure rule following."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from rolenrules.cli._console import console, err_console
from rolenrules.cli._model_options import command_from_config
from rolenrules.cli._options import build_llm
from rolenrules.config_file import load_yaml_mapping
from rolenrules.console import setup_logging
from rolenrules.errors import ConfigError, validate_config
from rolenrules.evaluate.config import AlpacaEvalCommandConfig, EvalCommandConfig, LmEvalCommandConfig
from rolenrules.cli.rules import load_plugins

bench_app = typer.Typer(help="Benchmarks of held-out system prompts.", no_args_is_help=True)
standard_app = typer.Typer(help="Standard benchmarks (lm-evaluation-harness, AlpacaEval) on the same model.",
                           no_args_is_help=True)

Resamples = Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples for the paired rule-accuracy interval (0: none); single-run intervals are Wilson.")]

#: --max-tokens for an embedded (local:) model, which decodes a few dozen tokens a second on CPU. IFEval
#: answers need a few hundred tokens: the published GPT-4 replies to the 270 IFEval dev prompts
#: are 275 SmolLM2 tokens at the median, 512 covers 84% of them (599 at p90); 1,024 would double
#: the worst case of a reply that runs on.
LOCAL_MAX_TOKENS = 512
DEFAULT_MAX_TOKENS = 1024
#: local:smollm2 on a 2-core x86_64 machine: 8.1-10.9 s per sys-ifeval/ifeval example at 256 tokens
#: (benchmarks/sys_ifeval_smollm2.md), i.e. ~25-30 tok/s end to end; a reply that runs to the cap
#: costs max_tokens / this.
LOCAL_TOKENS_PER_SECOND = 28.0


@bench_app.command("build")
def bench_build(
    source: Annotated[str, typer.Option("--from", help="Generated data: the --out file of `rnr generate` (JSONL/Parquet/datasets folder of rnr records).")],
    out: Annotated[Path, typer.Option("--out", help="Benchmark file to write (.jsonl); BENCH.exclude.txt is written beside it.")],
    size: Annotated[int, typer.Option("--size", min=1, help="Number of benchmark examples.")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the selection.")] = 0,
    per_prompt: Annotated[int, typer.Option("--per-prompt", min=1, help="At most this many examples per held-out system prompt.")] = 1,
) -> None:
    """Build a benchmark held out by system prompt, balanced over rule counts and categories."""
    from rolenrules.evaluate.bench import build_bench
    from rolenrules.heldout import exclude_path
    from rolenrules.io import read_examples

    stats = build_bench(read_examples(source), out, size=size, seed=seed, per_prompt=per_prompt)
    err_console.print(f"wrote {stats.examples} examples under {stats.system_prompts} held-out system prompts "
                      f"(of {stats.candidate_prompts}) to {out}; exclusions in {exclude_path(out)}", highlight=False)
    if stats.examples < size:
        err_console.print(f"[yellow]note:[/] only {stats.examples} of the {size} asked for: the data has "
                          f"{stats.candidate_prompts} usable system prompts (raise --per-prompt to take more of each)",
                          highlight=False)
    if stats.system_prompts * 2 > stats.candidate_prompts:
        left = stats.candidate_prompts - stats.system_prompts
        err_console.print(f"[yellow]note:[/] held out {stats.system_prompts} of {stats.candidate_prompts} system "
                          f"prompts: training keeps only {left}; use a smaller --size or generate more prompts",
                          highlight=False)
    err_console.print(f"rules per example: {json.dumps(stats.as_dict()['rule_counts'])}; "
                      f"categories: {json.dumps(stats.as_dict()['categories'])}", highlight=False, markup=False)
    for reason, count in stats.skipped.items():
        err_console.print(f"  skipped {count}: {reason}", highlight=False, markup=False)


def _eval(values: dict[str, Any]) -> None:
    import os

    from rolenrules.evaluate.report import load_runs, render_markdown
    from rolenrules.evaluate.results import read_results
    from rolenrules.evaluate.runner import CACHE, RESULTS, run_eval
    from rolenrules.evaluate.subset import seeded_subset
    from rolenrules.evaluate.tasks import load_task, parse_task_arg
    from rolenrules.judge import Judge
    from rolenrules.llm import resolve_default_spec

    config = validate_config(EvalCommandConfig, values, "rnr eval", flags=True)
    if (config.bench is None) == (not config.task):
        raise ConfigError("give either --bench FILE or --task NAME")
    setup_logging()
    load_plugins(config.rules_plugin)
    if config.bench is not None:
        from rolenrules.evaluate.bench import load_bench

        examples = seeded_subset(load_bench(config.bench, limit=config.limit), config.sample, config.sample_seed)
        name = str(config.bench)
    else:
        tasks = dict(parse_task_arg(t) for t in dict.fromkeys(config.task or []))
        examples = [e for t, source in tasks.items()
                    for e in seeded_subset(load_task(t, config.data_dir, source=source, limit=config.limit),
                                           config.sample, config.sample_seed)]
        name = "+".join(tasks)
    if config.sample is not None:
        name += f" (seeded subset: --sample {config.sample} --sample-seed {config.sample_seed})"
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    spec = config.model or resolve_default_spec("RNR_MODEL")[0]
    if config.max_tokens is None:
        config = config.model_copy(update={
            "max_tokens": LOCAL_MAX_TOKENS if spec.startswith("local:") else DEFAULT_MAX_TOKENS})
    llm = build_llm(config.model, base_url=config.base_url, timeout=config.timeout, max_retries=config.max_retries,
                    concurrency=config.concurrency, cache=out / CACHE, sampling=config.sampling, env_var="RNR_MODEL",
                    flag="--model", parallel=config.parallel if spec.startswith("local:") else None,
                    batch_size=config.batch_size)
    judge_spec = config.judge or os.environ.get("RNR_JUDGE")
    judge_obj = None
    if judge_spec:
        judge_llm = build_llm(judge_spec, base_url=config.judge_base_url or config.base_url, timeout=config.timeout,
                              max_retries=config.max_retries, concurrency=config.concurrency, cache=out / CACHE,
                              quiet=True, parallel=config.parallel if judge_spec.startswith("local:") else None)
        judge_obj = Judge(judge_llm, votes=config.judge_votes)
    answered = {r.id for r in read_results(out / RESULTS)}
    estimate = None if config.rescore else local_estimate(spec, sum(e.id not in answered for e in examples),
                                                          config.max_tokens)
    if estimate:
        err_console.print(f"[yellow]note:[/] {estimate}", highlight=False)
    with _progress() as advance:
        run_eval(examples, out, model=llm, judge=judge_obj, config=config.run_config(), bench_name=name,
                 progress=advance)
    console.print(render_markdown(load_runs([out])), markup=False, highlight=False)
    for role, client in (("model", llm), ("judge", judge_obj.llm if judge_obj else None)):
        stats = client.stats() if client is not None else None
        if client is not None and stats is not None and stats.requests + stats.cached:
            err_console.print(f"{role} {client.identity}: {stats.summary()}", highlight=False, markup=False,
                              emoji=False)
    err_console.print(f"wrote {out}/summary.json and {out}/results.jsonl", highlight=False)


eval_command = command_from_config(
    EvalCommandConfig, _eval, load_yaml_mapping, short={"model": "-m"},
    doc="Run a model on a benchmark, score every rule, and write metrics with confidence intervals.\n\n"
        "Example: rnr eval --bench bench.jsonl --model hf:./trained --judge openai:gpt-4o-mini --out runs/tuned")


class _progress:
    """Progress as a callback (done, total): on a terminal a rich bar with rate and ETA; otherwise
    a log line after the first example and then every LOG_EVERY seconds (CI, nohup, files)."""

    LOG_EVERY = 10.0

    def __enter__(self):  # type: ignore[no-untyped-def]
        import time

        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.clock = time.monotonic
        self.bar: Progress | None = None
        if err_console.is_terminal:
            self.bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                TimeRemainingColumn(), console=err_console, transient=True)
            self.bar.__enter__()
            self.task = self.bar.add_task("evaluating", total=None, rate="")
        self.start: float | None = None
        self.initial = 0
        self.last_log = 0.0
        return self.update

    def update(self, done: int, total: int) -> None:
        now = self.clock()
        if self.start is None:  # the first call reports what a resumed run already had: not this run's speed
            self.start, self.initial = now, done
            if self.bar is not None:
                self.bar.reset(self.task, total=total, completed=done)
            else:
                err_console.print(f"evaluating: {total - done} examples to answer ({done} already done)",
                                  highlight=False)
            return
        made = done - self.initial
        elapsed = max(now - self.start, 1e-9)
        rate = made / elapsed
        text = f"{rate * 60:.1f} ex/min" if rate * 60 >= 1 else f"{elapsed / max(made, 1):.0f} s/ex"
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total, rate=text)
            return
        if made == 1 or done == total or now - self.last_log >= self.LOG_EVERY:
            self.last_log = now
            eta = (total - done) / rate if rate > 0 else float("inf")
            err_console.print(f"evaluating: {done}/{total} ({text}, {_duration(elapsed)} elapsed, "
                              f"ETA {_duration(eta)})", highlight=False)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def local_estimate(spec: str, examples: int, max_tokens: int) -> str | None:
    """One line with the worst-case duration of an embedded-model run, said before it starts."""
    if not spec.startswith("local:") or examples == 0:
        return None
    seconds = examples * max_tokens / LOCAL_TOKENS_PER_SECOND
    return (f"{spec} decodes roughly {LOCAL_TOKENS_PER_SECOND:.0f} tokens/s on a 2-core CPU: {examples} example"
            f"{'s' if examples != 1 else ''} to answer × up to {max_tokens} tokens ≈ up to {_duration(seconds)}, "
            "longer on a busy machine (--limit and --max-tokens shorten it)")


def report(
    runs: Annotated[list[Path], typer.Argument(metavar="DIR...", help="Run folders written by `rnr eval`; later runs are compared with the first.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="HTML report to write (self-contained). Default: DIR/report.html for one run; FIRST/report-vs-OTHERS.html for several.")] = None,
    markdown: Annotated[Optional[Path], typer.Option("--markdown", help="Also write the markdown summary here.")] = None,
    extra: Annotated[Optional[list[Path]], typer.Option("--extra", help="lm-eval results_*.json or AlpacaEval leaderboard.csv (or a folder of them) to show beside (repeatable).")] = None,
    max_failures: Annotated[int, typer.Option("--max-failures", min=0, help="Failed (and flipped) examples listed per run.")] = 200,
    resamples: Resamples = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed of the paired comparisons.")] = 0,
) -> None:
    """Compare runs side by side: an HTML page and a markdown summary (printed)."""
    from rolenrules.evaluate.report import default_report_path, write_report

    out = out or default_report_path(runs)
    text = write_report(runs, out, markdown=markdown, extras=extra or [], max_failures=max_failures,
                        resamples=resamples, seed=seed)
    console.print(text, markup=False, highlight=False)
    err_console.print(f"wrote {out}", highlight=False)


def compare(
    run_a: Annotated[Path, typer.Argument(metavar="DIR_A", help="Baseline run folder.")],
    run_b: Annotated[Path, typer.Argument(metavar="DIR_B", help="Run folder to compare with it (may be DIR_A again, with --task-a/--task-b).")],
    task_a: Annotated[Optional[str], typer.Option("--task-a", help="Only this task of DIR_A (e.g. ifeval of an ifeval+sys-ifeval run).")] = None,
    task_b: Annotated[Optional[str], typer.Option("--task-b", help="Only this task of DIR_B (e.g. sys-ifeval).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON (with the flipped examples).")] = False,
    resamples: Resamples = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the paired bootstrap (rule accuracy).")] = 0,
) -> None:
    """Paired comparison of two runs (B − A): examples matched by id, or by IFEval key between
    ifeval and sys-ifeval; pass-rate difference with Newcombe's interval, McNemar, flipped examples."""
    from rolenrules.evaluate.report import comparison_json, comparison_table, flip_table

    result = comparison_json(run_a, run_b, resamples=resamples, seed=seed, task_a=task_a, task_b=task_b)
    if result["n_paired"] == 0:
        raise ConfigError(f"{run_a} and {run_b} share no examples (matched by example id or IFEval key); "
                          "compare runs of the same benchmark, or ifeval with sys-ifeval")
    from rich.markup import escape

    for warning in result["warnings"]:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    if as_json:
        console.print_json(json.dumps(result, default=str))
        return
    console.print(comparison_table([result]), markup=False, highlight=False)
    console.print(f"\npaired {result['n_paired']} examples on {result['paired_on_label']}; "
                  f"{result['only_in_a']} only in A, {result['only_in_b']} only in B", markup=False, highlight=False)
    flips = flip_table([result])
    if flips:
        console.print("\n" + flips, markup=False, highlight=False)


def _lm_eval(values: dict[str, Any]) -> None:
    import shlex

    from rolenrules.evaluate.standard import STANDARD_DIR, lm_eval_command, run_tool
    from rolenrules.llm import resolve_default_spec

    config = validate_config(LmEvalCommandConfig, values, "rnr standard lm-eval", flags=True)
    spec = config.model or resolve_default_spec("RNR_MODEL")[0]
    command = lm_eval_command(spec, [t for t in config.tasks.split(",") if t], config.out / STANDARD_DIR / "lm_eval",
                              base_url=config.base_url, endpoint=config.endpoint, tokenizer=config.tokenizer,
                              limit=config.limit, chat_template=config.chat_template)
    if config.dry_run:
        console.print(shlex.join(command), markup=False, highlight=False)
        return
    run_tool(command, "lm-eval")


def _alpaca_eval(values: dict[str, Any]) -> None:
    from rolenrules.evaluate.standard import (
        STANDARD_DIR, alpaca_eval_command, read_alpaca_instructions, run_tool, write_alpaca_outputs,
    )
    from rolenrules.llm import Sampling

    config = validate_config(AlpacaEvalCommandConfig, values, "rnr standard alpaca-eval", flags=True)
    rows = read_alpaca_instructions(config.instructions, config.limit)
    sampling = Sampling(temperature=0.0, max_tokens=config.max_tokens, seed=0)
    setup_logging()
    llm = build_llm(config.model, base_url=config.base_url, concurrency=config.concurrency, sampling=sampling,
                    env_var="RNR_MODEL", flag="--model", cache=config.out / "cache.sqlite")
    folder = config.out / STANDARD_DIR / "alpaca_eval"
    outputs = write_alpaca_outputs(llm, rows, folder / "model_outputs.json", generator=llm.identity,
                                   sampling=sampling, system=config.system)
    err_console.print(f"wrote {len(rows)} outputs to {outputs}", highlight=False)
    if not config.generate_only:
        run_tool(alpaca_eval_command(outputs, folder, annotators_config=config.annotators_config), "alpaca-eval")


standard_app.command("lm-eval")(command_from_config(
    LmEvalCommandConfig, _lm_eval, load_yaml_mapping, short={"model": "-m"},
    doc="Run lm-evaluation-harness on the same model; `rnr report OUT` shows its results."))
standard_app.command("alpaca-eval")(command_from_config(
    AlpacaEvalCommandConfig, _alpaca_eval, load_yaml_mapping, short={"model": "-m"},
    doc="Answer AlpacaEval's instructions with the model, then call `alpaca_eval evaluate`."))


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
    app.command("eval")(eval_command)
    app.command("report")(report)
    app.command("compare")(compare)
    app.add_typer(standard_app, name="standard")
