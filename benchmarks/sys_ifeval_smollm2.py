"""Baseline figure: the embedded SmolLM2-135M-Instruct on sys-ifeval (IFEval constraints in the
system message), scored by the rule library. Writes benchmarks/sys_ifeval_smollm2.md.

    .venv/bin/python benchmarks/sys_ifeval_smollm2.py --limit 50 --max-tokens 256
    .venv/bin/python benchmarks/sys_ifeval_smollm2.py --limit 50 --max-tokens 256 --with-ifeval

It calls the CLI exactly as a user would (`rnr eval --task sys-ifeval --model local:smollm2 …`);
the run folder keeps results.jsonl/summary.json, and a re-run resumes from it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def run(task: str, args: argparse.Namespace) -> tuple[dict, float, list[str]]:
    out = Path(args.out) / task
    command = ["rnr", "eval", "--task", task, "--model", "local:smollm2", "--limit", str(args.limit),
               "--max-tokens", str(args.max_tokens), "--concurrency", "1", "--out", str(out)]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    subprocess.run([sys.executable, "-m", "rolenrules", *command[1:]], check=True, cwd=ROOT)
    summary = json.loads((ROOT / out / "summary.json").read_text())
    # `seconds` sums the evaluation time of every invocation that built the folder (model load
    # included, process start not), so a resumed run reports the time of the work it resumed.
    return summary, summary["seconds"], command


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def interval(est: dict) -> str:
    if est.get("low") is None:
        return pct(est.get("value"))
    return f"{pct(est['value'])} [{100 * est['low']:.1f}, {100 * est['high']:.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--out", default="runs/bench_sys_ifeval_smollm2", help="Run folders (relative to the repository root).")
    parser.add_argument("--data-dir", default=os.environ.get("RNR_DATA_DIR"),
                        help="A copy of the task data (default: the data bundled with rnr).")
    parser.add_argument("--with-ifeval", action="store_true", help="Also run the user-turn `ifeval` task for the gap.")
    args = parser.parse_args()

    tasks = ["sys-ifeval"] + (["ifeval"] if args.with_ifeval else [])
    rows, commands, timings, summaries = [], [], [], {}
    for task in tasks:
        summary, seconds, command = run(task, args)
        summaries[task] = summary
        fields = summary["ifeval"][task]
        rows.append(f"| `{task}` | {summary['n_examples']} | {interval(summary['pass_rate'])} | "
                    f"{interval(summary['rule_accuracy'])} | {pct(fields['prompt_level_loose'])} | "
                    f"{pct(fields['instruction_level_loose'])} | {summary['n_unscored_rules']} |")
        commands.append(" ".join(command))
        timings.append(f"`{task}`: {seconds / 60:.1f} min ({seconds / max(1, summary['n_examples']):.1f} s per example)")

    gap = []
    if "ifeval" in summaries:
        diff = summaries["sys-ifeval"]["pass_rate"]["value"] - summaries["ifeval"]["pass_rate"]["value"]
        gap = ["", f"Moving the constraints from the user turn into the system message changes the pass-rate by "
                   f"{100 * diff:+.1f} points on these prompts (two separate runs; at {args.limit} prompts the "
                   "intervals overlap widely)."]
    text = [
        "# Baseline: embedded SmolLM2-135M-Instruct on sys-ifeval",
        "",
        "IFEval's constraints moved into the **system** message (SystemCheck, Mu et al. 2025), answered by the",
        "embedded `local:smollm2` model (SmolLM2-135M-Instruct, GGUF, llama.cpp on CPU) with greedy decoding,",
        f"first {args.limit} prompts, at most {args.max_tokens} new tokens, scored by the rule library (strict,",
        "plus IFEval's loose mode). Pass-rate = IFEval's prompt-level strict accuracy; rule accuracy = its",
        "instruction-level strict accuracy; 95% bootstrap intervals over prompts.",
        "",
        "| task | prompts | pass-rate (strict) [95% CI] | rule accuracy (strict) [95% CI] | prompt loose | instruction loose | unscored rules |",
        "|---|---|---|---|---|---|---|",
        *rows,
        *gap,
        "",
        "A 135M-parameter model is a toy baseline: it shows the harness end to end offline, not a",
        f"meaningful level. The {args.max_tokens}-token cap cuts long answers short, which fails length",
        "rules such as 'at least 300 words' that a longer budget might pass.",
        "",
        "Command (from the repository root):",
        "",
        "```bash",
        *commands,
        "```",
        "",
        f"Time on {platform.machine()} with {os.cpu_count()} CPU cores (shared): " + "; ".join(timings) + ".",
        "",
        "Re-create: `.venv/bin/python benchmarks/sys_ifeval_smollm2.py --limit 50 --max-tokens 256"
        + (" --with-ifeval`." if args.with_ifeval else "`."),
        "",
    ]
    (HERE / "sys_ifeval_smollm2.md").write_text("\n".join(text), encoding="utf-8")
    print("\n".join(text))


if __name__ == "__main__":
    main()
