"""Evaluation: benchmarks, running a model under test, metrics with intervals, reports.

    stats = build_bench(read_examples("generated.jsonl"), "bench.jsonl", size=200, seed=0)
    run_eval("bench.jsonl", "runs/base", model=make_llm("openai:m", ...), judge=Judge(make_llm(...)))
    write_report(["runs/base", "runs/tuned"], "report.html")
"""

from rolenrules.evaluate.bench import (
    BenchStats, bench_rules, build_bench, load_bench,
)
from rolenrules.evaluate.metrics import Estimate, compare, ratio_ci, summarise
from rolenrules.evaluate.report import write_report
from rolenrules.evaluate.results import EvalResult, ScoredRule, read_results
from rolenrules.evaluate.runner import EvalConfig, EvalIncomplete, load_summary, run_eval, write_summary
from rolenrules.evaluate.tasks import TASKS, load_task, resolve_data_dir

__all__ = [
    "TASKS", "BenchStats", "Estimate", "EvalConfig", "EvalIncomplete", "EvalResult", "ScoredRule", "bench_rules",
    "build_bench", "compare", "load_bench", "load_summary", "load_task", "ratio_ci", "read_results", "resolve_data_dir", "run_eval", "summarise",
    "write_report", "write_summary",
]
