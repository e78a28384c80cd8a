"""Evaluation: benchmarks, running a model under test, metrics with intervals, reports.

    stats = build_bench(read_examples("generated.jsonl"), "bench.jsonl", size=200, seed=0)
    run_eval("bench.jsonl", "runs/base", model=make_llm("openai:m", ...), judge=Judge(make_llm(...)))
    write_report(["runs/base", "runs/tuned"], "report.html")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rolenrules.evaluate.bench import (
        BenchStats, bench_rules, build_bench, load_bench,
    )
    from rolenrules.evaluate.metrics import Estimate, compare, ratio_ci, summarise
    from rolenrules.evaluate.report import write_report
    from rolenrules.evaluate.results import EvalResult, ScoredRule, read_results
    from rolenrules.evaluate.runner import EvalConfig, EvalIncomplete, load_summary, run_eval, write_summary
    from rolenrules.evaluate.tasks import TASKS, load_task, resolve_data_dir

#: Public name -> its module. Imported on first use: the CLI reads the task registry for its help
#: text, and should not pay for numpy and the report templates on every command.
_EXPORTS = {
    **dict.fromkeys(["BenchStats", "bench_rules", "build_bench", "load_bench"], "bench"),
    **dict.fromkeys(["Estimate", "compare", "ratio_ci", "summarise"], "metrics"),
    "write_report": "report",
    **dict.fromkeys(["EvalResult", "ScoredRule", "read_results"], "results"),
    **dict.fromkeys(["EvalConfig", "EvalIncomplete", "load_summary", "run_eval", "write_summary"], "runner"),
    **dict.fromkeys(["TASKS", "load_task", "resolve_data_dir"], "tasks"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
