"""Helpers shared by the DPO and GRPO tests: the CLI in-process, weights, the log, `rnr eval` on OUT."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rolenrules.cli import main

#: Settings that keep tiny-model runs to a second or two on a CPU.
FAST = {"gradient_checkpointing": False, "precision": "fp32", "logging_steps": 1, "warmup": 0,
        "lr_scheduler": "constant", "grad_accum": 1}


def run_cli(*args: str) -> int:
    """`rnr ARGS` in this process; the exit code."""
    try:
        main(list(args))
    except SystemExit as done:
        return int(done.code or 0)
    return 0


def weights(model: Any) -> dict[str, Any]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def log_rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text(encoding="utf-8").splitlines()]


def evaluate_output(out: Path, bench: Path, tmp_path: Path) -> list[dict[str, Any]]:
    """`rnr eval --model hf:OUT` on the benchmark (verifiable rules only, no judge); its result rows."""
    eval_dir = tmp_path / "eval"
    assert run_cli("eval", "--model", f"hf:{out}", "--bench", str(bench), "--out", str(eval_dir),
                   "--no-role-adherence", "--max-tokens", "6", "--bootstrap", "0") == 0
    rows = [json.loads(line) for line in (eval_dir / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    # A tiny random model may well answer with its end-of-turn token at once: an empty reply, still scored.
    assert rows and all(r["error"] in (None, "empty reply") for r in rows)
    # Every verifiable rule got a verdict from the rule library.
    assert all(v["source"] == "verifier" and v["passed"] in (True, False) for r in rows for v in r["rules"])
    return rows
