"""`rnr bench build`, `rnr eval`, `rnr report`, `rnr compare`, `rnr standard`: measure rule following."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from rolenrules.cli._console import console, err_console
from rolenrules.cli._options import BaseUrl, Concurrency, MaxRetries, Parallel, Timeout, build_llm
from rolenrules.errors import ConfigError

bench_app = typer.Typer(help="Benchmarks of held-out system prompts.", no_args_is_help=True)
standard_app = typer.Typer(help="Standard benchmarks (lm-evaluation-harness, AlpacaEval) on the same model.",
                           no_args_is_help=True)

DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="Folder holding ifeval/ and systemcheck/ (default: $RNR_DATA_DIR, else ../shared/data).")]
Resamples = Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples for the 95% intervals (0: none).")]


@bench_app.command("build")
def bench_build(
    source: Annotated[str, typer.Option("--from", help="Generated data: the --out file of `rnr generate` (JSONL/Parquet/datasets folder of rnr records).")],
    out: Annotated[Path, typer.Option("--out", help="Benchmark file to write (.jsonl); BENCH.exclude.txt is written beside it.")],
    size: Annotated[int, typer.Option("--size", min=1, help="Number of benchmark examples.")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the selection.")] = 0,
    per_prompt: Annotated[int, typer.Option("--per-prompt", min=1, help="At most this many examples per held-out system prompt.")] = 1,
) -> None:
    """Build a benchmark held out by system prompt, balanced over rule counts and categories."""
    from rolenrules.evaluate.bench import build_bench, exclude_path
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


def eval_command(
    out: Annotated[Path, typer.Option("--out", help="Run folder: results.jsonl, summary.json, run.json, cache.sqlite.")],
    bench: Annotated[Optional[Path], typer.Option("--bench", help="Benchmark file (see docs/benchmark_format.md).")] = None,
    task: Annotated[Optional[list[str]], typer.Option("--task", help="Built-in task: ifeval, sys-ifeval, realguardrails, distractors (repeatable).")] = None,
    data_dir: DataDir = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model under test: openai:NAME, hf:PATH, local:smollm2, vllm:NAME (default: $RNR_MODEL, an OpenAI env, or local:smollm2).")] = None,
    base_url: BaseUrl = None,
    judge: Annotated[Optional[str], typer.Option("--judge", help="Judge model spec (default: $RNR_JUDGE). Needed for judged rules and role adherence.")] = None,
    judge_base_url: Annotated[Optional[str], typer.Option("--judge-base-url", help="OpenAI-compatible URL of the judge (default: --base-url).")] = None,
    judge_votes: Annotated[int, typer.Option("--judge-votes", min=1, help="Ask the judge n times; the majority decides (ties are unscored).")] = 1,
    calibrate_judge: Annotated[bool, typer.Option("--calibrate-judge", help="Also judge the verifiable rules and report agreement with the exact checks.")] = False,
    role_adherence: Annotated[bool, typer.Option("--role-adherence/--no-role-adherence", help="Judge whether replies stay in role (where there is a role).")] = True,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Evaluate only the first N examples (of each task).")] = None,
    temperature: Annotated[float, typer.Option(min=0.0, help="Sampling temperature of the model under test.")] = 0.0,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="Longest response of the model under test.")] = 1024,
    seed: Annotated[int, typer.Option("--seed", help="Sampling seed, and the bootstrap seed.")] = 0,
    concurrency: Concurrency = 8,
    parallel: Parallel = None,
    timeout: Timeout = 120.0,
    max_retries: MaxRetries = 4,
    resamples: Resamples = 2000,
    rescore: Annotated[bool, typer.Option("--rescore", help="Re-score the responses already in --out (e.g. with another judge) without generating.")] = False,
) -> None:
    """Run a model on a benchmark, score every rule, and write metrics with confidence intervals."""
    import os

    from rolenrules.evaluate.report import load_runs, render_markdown
    from rolenrules.evaluate.runner import CACHE, EvalConfig, run_eval
    from rolenrules.evaluate.tasks import load_task
    from rolenrules.judge import Judge
    from rolenrules.llm import Sampling

    if (bench is None) == (not task):
        raise ConfigError("give either --bench FILE or --task NAME")
    if bench is not None:
        from rolenrules.evaluate.bench import load_bench

        examples, name = load_bench(bench, limit=limit), str(bench)
    else:
        examples = [e for t in dict.fromkeys(task or []) for e in load_task(t, data_dir, limit=limit)]
        name = "+".join(dict.fromkeys(task or []))
    out.mkdir(parents=True, exist_ok=True)
    sampling = Sampling(temperature=temperature, max_tokens=max_tokens, seed=seed)
    llm = build_llm(model, base_url=base_url, timeout=timeout, max_retries=max_retries, concurrency=concurrency,
                    cache=out / CACHE, sampling=sampling, env_var="RNR_MODEL", parallel=parallel)
    judge_spec = judge or os.environ.get("RNR_JUDGE")
    judge_obj = None
    if judge_spec:
        judge_llm = build_llm(judge_spec, base_url=judge_base_url or base_url, timeout=timeout,
                              max_retries=max_retries, concurrency=concurrency, cache=out / CACHE, quiet=True,
                              parallel=parallel if judge_spec.startswith("local:") else None)
        judge_obj = Judge(judge_llm, votes=judge_votes)
    config = EvalConfig(sampling=sampling, concurrency=concurrency, role_adherence=role_adherence,
                        calibrate_judge=calibrate_judge, resamples=resamples, seed=seed, rescore=rescore)
    with _progress() as advance:
        run_eval(examples, out, model=llm, judge=judge_obj, config=config, bench_name=name, progress=advance)
    console.print(render_markdown(load_runs([out])), markup=False, highlight=False)
    err_console.print(f"wrote {out}/summary.json and {out}/results.jsonl", highlight=False)


class _progress:
    """A rich progress bar on stderr, as a callback (done, total)."""

    def __enter__(self):  # type: ignore[no-untyped-def]
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=err_console, transient=True)
        self.bar.__enter__()
        self.task = self.bar.add_task("evaluating", total=None)
        return lambda done, total: self.bar.update(self.task, completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)


def report(
    runs: Annotated[list[Path], typer.Argument(metavar="DIR...", help="Run folders written by `rnr eval`.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="HTML report to write (self-contained).")] = None,
    markdown: Annotated[Optional[Path], typer.Option("--markdown", help="Also write the markdown summary here.")] = None,
    extra: Annotated[Optional[list[Path]], typer.Option("--extra", help="lm-eval results_*.json or AlpacaEval leaderboard.csv (or a folder of them) to show beside (repeatable).")] = None,
    max_failures: Annotated[int, typer.Option("--max-failures", min=0, help="Failed examples listed per run.")] = 200,
    resamples: Resamples = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed of the paired comparisons.")] = 0,
) -> None:
    """Compare runs side by side: an HTML page (--out) and a markdown summary (printed)."""
    from rolenrules.evaluate.report import write_report

    text = write_report(runs, out, markdown=markdown, extras=extra or [], max_failures=max_failures,
                        resamples=resamples, seed=seed)
    console.print(text, markup=False, highlight=False)
    if out is not None:
        err_console.print(f"wrote {out}", highlight=False)


def compare(
    run_a: Annotated[Path, typer.Argument(metavar="DIR_A", help="Baseline run folder.")],
    run_b: Annotated[Path, typer.Argument(metavar="DIR_B", help="Run folder to compare with it.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
    resamples: Resamples = 2000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Paired comparison of two runs on the same benchmark (B − A, bootstrap CI, McNemar)."""
    from rolenrules.evaluate.report import _md_table, comparison_json, comparison_row

    result = comparison_json(run_a, run_b, resamples=resamples, seed=seed)
    if result["n_paired"] == 0:
        raise ConfigError(f"{run_a} and {run_b} share no examples (compare runs of the same benchmark)")
    if as_json:
        console.print_json(json.dumps(result))
        return
    console.print(_md_table(["A", "B", "paired", "pass-rate diff [95% CI]", "rule accuracy diff [95% CI]",
                             "McNemar p"], [comparison_row(result)]), markup=False, highlight=False)


@standard_app.command("lm-eval")
def standard_lm_eval(
    out: Annotated[Path, typer.Option("--out", help="Run folder; results go to OUT/standard/lm_eval/.")],
    tasks: Annotated[str, typer.Option("--tasks", help="lm-eval tasks, comma-separated (e.g. mmlu,gsm8k).")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model spec: openai:NAME (with --base-url), hf:PATH or vllm:NAME.")] = None,
    base_url: BaseUrl = None,
    endpoint: Annotated[str, typer.Option("--endpoint", help="For openai: specs: chat (generative tasks) or completions (loglikelihood tasks such as MMLU).")] = "chat",
    tokenizer: Annotated[Optional[str], typer.Option("--tokenizer", help="Hugging Face tokenizer for --endpoint completions.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Examples per task (for a quick check).")] = None,
    chat_template: Annotated[bool, typer.Option("--chat-template/--no-chat-template", help="Pass --apply_chat_template.")] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the lm_eval command instead of running it.")] = False,
) -> None:
    """Run lm-evaluation-harness on the same model; `rnr report OUT` shows its results."""
    import shlex

    from rolenrules.evaluate.standard import STANDARD_DIR, lm_eval_command, run_tool
    from rolenrules.llm import resolve_default_spec

    spec = model or resolve_default_spec("RNR_MODEL")[0]
    command = lm_eval_command(spec, [t for t in tasks.split(",") if t], out / STANDARD_DIR / "lm_eval",
                              base_url=base_url, endpoint=endpoint, tokenizer=tokenizer, limit=limit,
                              chat_template=chat_template)
    if dry_run:
        console.print(shlex.join(command), markup=False, highlight=False)
        return
    run_tool(command, "lm-eval")


@standard_app.command("alpaca-eval")
def standard_alpaca_eval(
    out: Annotated[Path, typer.Option("--out", help="Run folder; outputs go to OUT/standard/alpaca_eval/.")],
    instructions: Annotated[Path, typer.Option("--instructions", help="AlpacaEval's evaluation set (JSON array with `instruction`).")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model spec (any backend).")] = None,
    base_url: BaseUrl = None,
    system: Annotated[Optional[str], typer.Option("--system", help="System prompt to answer under.")] = None,
    annotators_config: Annotated[Optional[str], typer.Option("--annotators-config", help="AlpacaEval annotator (default: the tool's).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1)] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1)] = 2048,
    concurrency: Concurrency = 8,
    generate_only: Annotated[bool, typer.Option("--generate-only", help="Write model_outputs.json and stop (run alpaca_eval yourself).")] = False,
) -> None:
    """Answer AlpacaEval's instructions with the model, then call `alpaca_eval evaluate`."""
    from rolenrules.evaluate.standard import (
        STANDARD_DIR, alpaca_eval_command, read_alpaca_instructions, run_tool, write_alpaca_outputs,
    )
    from rolenrules.llm import Sampling

    rows = read_alpaca_instructions(instructions, limit)
    sampling = Sampling(temperature=0.0, max_tokens=max_tokens, seed=0)
    llm = build_llm(model, base_url=base_url, concurrency=concurrency, sampling=sampling, env_var="RNR_MODEL",
                    cache=out / "cache.sqlite")
    folder = out / STANDARD_DIR / "alpaca_eval"
    outputs = write_alpaca_outputs(llm, rows, folder / "model_outputs.json", generator=llm.identity,
                                   sampling=sampling, system=system)
    err_console.print(f"wrote {len(rows)} outputs to {outputs}", highlight=False)
    if not generate_only:
        run_tool(alpaca_eval_command(outputs, folder, annotators_config=annotators_config), "alpaca-eval")


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
    app.command("eval")(eval_command)
    app.command("report")(report)
    app.command("compare")(compare)
    app.add_typer(standard_app, name="standard")
