"""Training speed of `rnr train --model smollm2` on CPU: LoRA and full SFT, tokens per second.

Each configuration runs `rolenrules.train.build_trainer` (the real `rnr train` path: template fixes,
assistant-only loss, TRL SFTTrainer) in a fresh process for a few warm-up steps plus `--steps`
measured steps, and reports the tokens it trained on per second (TRL's `num_tokens`: every
non-padding token of the batch). Starting from `rnr train`'s defaults (fp32 on CPU, torch's thread
count, gradient checkpointing on, no packing, random batches — `rnr train`'s defaults before this
benchmark), one factor changes at a time:

* `bf16`    — bf16 autocast (`--precision bf16`; this CPU has avx512_bf16, no AMX)
* `t1`      — one torch thread instead of torch's default (one per physical core)
* `nogc`    — gradient checkpointing off
* `passive` — `OMP_WAIT_POLICY=PASSIVE`: OpenMP threads sleep at barriers instead of spinning
* `pack`    — sequence packing (`--packing`; see the .md: not a candidate on CPU)
* `glen`    — batches of similar lengths (`train_sampling_strategy="group_by_length"`): less padding

and any combination, e.g. `lora+bf16+nogc`. `rnr train`'s defaults chosen from these runs are
`passive+bf16+glen` (on a CPU with native bf16). Configurations run in the order given, then in reverse
(`--rounds 2`), so load drift on a shared machine hits all alike; the load average is recorded.

    .venv/bin/python benchmarks/train_speed.py                       # the default set (~15 min on 2 cores)
    .venv/bin/python benchmarks/train_speed.py --configs lora lora+bf16 --steps 4

Results are appended to `benchmarks/train_speed.md` (a dated block per run) unless `--no-write`.
Data: the first Alpaca records of `../shared/data` with a short system prompt each (RNR-like),
or a built-in set of conversations when that folder is absent.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPORT = HERE / "train_speed.md"
ALPACA = HERE.parents[1] / "shared" / "data" / "instructions" / "alpaca_data_first2000.json"
DEFAULT_CONFIGS = ["lora", "lora+bf16", "lora+t1", "lora+nogc", "lora+passive", "lora+pack", "lora+glen",
                   "full", "full+bf16", "full+t1", "full+nogc", "full+passive"]
SYSTEMS = ["You are Ava, a patient tutor. Answer in under 80 words.",
           "You are a concise assistant for Acme. Never use emojis.",
           "You are Leo, a friendly guide. Use plain English and end with a short summary."]


def write_data(path: Path, count: int) -> Path:
    rows = []
    if ALPACA.exists():
        for i, record in enumerate(json.loads(ALPACA.read_text(encoding="utf-8"))[:count]):
            user = record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")
            rows.append({"messages": [{"role": "system", "content": SYSTEMS[i % len(SYSTEMS)]},
                                      {"role": "user", "content": user},
                                      {"role": "assistant", "content": record["output"]}]})
    else:
        for i in range(count):
            rows.append({"messages": [{"role": "system", "content": SYSTEMS[i % len(SYSTEMS)]},
                                      {"role": "user", "content": f"Tell me fact number {i} about the sea."},
                                      {"role": "assistant", "content": "The sea covers most of the planet. " * 8}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _sft_args(mods: set[str]) -> dict[str, Any]:
    # Explicit either way, so a configuration means the same whatever rnr train's defaults are.
    args: dict[str, Any] = {"train_sampling_strategy": "group_by_length" if "glen" in mods else "random"}
    if "bf16" in mods:
        args["use_cpu"] = True  # transformers refuses bf16 without a GPU unless told to train on the CPU
    return args


def child(spec: str, data: str, steps: int, warmup: int, batch: int, max_length: int) -> None:
    """One configuration in this (fresh) process; prints one JSON line."""
    parts = spec.split("+")
    method, mods = parts[0], set(parts[1:])
    import torch

    if "t1" in mods:
        torch.set_num_threads(1)
    from transformers import TrainerCallback

    from rolenrules.train.config import TrainConfig
    from rolenrules.train.trainer import build_trainer

    marks: list[tuple[float, int, float]] = []

    class _Mark(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            if logs and "num_tokens" in logs:
                marks.append((time.perf_counter(), state.global_step, float(logs["num_tokens"])))

    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(model="smollm2", data=[data], out=Path(out) / "run", method=method,
                             max_steps=warmup + steps, batch_size=batch, grad_accum=1, max_length=max_length,
                             packing="pack" in mods, gradient_checkpointing="nogc" not in mods,
                             precision="bf16" if "bf16" in mods else "fp32", logging_steps=1, save_steps=10_000,
                             warmup=0, sft_args=_sft_args(mods))
        session = build_trainer(config, echo=lambda line: None)
        session.trainer.add_callback(_Mark())
        started_cpu = time.process_time()
        session.trainer.train()
        cpu = time.process_time() - started_cpu
    measured = [m for m in marks if m[1] > warmup]
    start = next(m for m in marks if m[1] == warmup)
    seconds = measured[-1][0] - start[0]
    tokens = measured[-1][2] - start[2]
    print(json.dumps({"config": spec, "steps": len(measured), "tokens": int(tokens), "seconds": round(seconds, 2),
                      "tok_s": round(tokens / seconds, 1), "s_per_step": round(seconds / len(measured), 2),
                      "torch_threads": torch.get_num_threads(), "cpu_s_all_steps": round(cpu, 1),
                      "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)")}))


def run_config(spec: str, data: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    if "passive" in spec.split("+"):
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    load = round(os.getloadavg()[0], 2)
    done = subprocess.run([sys.executable, __file__, "--child", spec, "--data", str(data), "--steps", str(args.steps),
                           "--warmup", str(args.warmup), "--batch", str(args.batch), "--max-length",
                           str(args.max_length)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return {"config": spec, "error": done.stderr.strip().splitlines()[-1][:300], "load_start": load}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(load_start=load, load_end=round(os.getloadavg()[0], 2))
    return result


def render(runs: list[dict[str, Any]], args: argparse.Namespace, started: str, loads: tuple[float, float]) -> str:
    by_config: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_config.setdefault(run["config"], []).append(run)
    busy = max(loads) > 1.5
    lines = [f"### Run {started}", "",
             f"Command: `python benchmarks/train_speed.py {' '.join(sys.argv[1:])}`. {args.steps} measured steps "
             f"after {args.warmup} warm-up, batch {args.batch}, max length {args.max_length}, grad accum 1. "
             f"Load average {loads[0]} at the start, {loads[1]} at the end"
             + (" — **busy machine: compare rows of this run with each other, not with other runs**." if busy else "."),
             "", "| config | tokens/s (per round) | median | vs baseline | s/step | torch threads | load (per round) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    medians: dict[str, float] = {}
    for spec, items in by_config.items():
        ok = [r for r in items if "tok_s" in r]
        if ok:
            medians[spec] = statistics.median(r["tok_s"] for r in ok)
    for spec, items in by_config.items():
        ok = [r for r in items if "tok_s" in r]
        if not ok:
            lines.append(f"| {spec} | failed: {items[0].get('error', '?')} | | | | | {items[0]['load_start']} |")
            continue
        # Baseline: the plain method if it ran, else the first configuration of that method.
        method = spec.split("+")[0]
        base_spec = method if method in medians else next((c for c in medians if c.split("+")[0] == method), None)
        base = medians.get(base_spec) if base_spec else None
        versus = f"{medians[spec] / base:.2f}x vs {base_spec}" if base else ""
        lines.append(f"| {spec} | {' / '.join(str(r['tok_s']) for r in ok)} | {medians[spec]} | {versus} | "
                     f"{round(statistics.median(r['s_per_step'] for r in ok), 2)} | {ok[0]['torch_threads']} | "
                     f"{' ; '.join(str(r['load_start']) + '→' + str(r['load_end']) for r in ok)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="*", default=DEFAULT_CONFIGS)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.data, args.steps, args.warmup, args.batch, args.max_length)
        return
    started = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    load_start = round(os.getloadavg()[0], 2)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        data = write_data(Path(tmp) / "data.jsonl", args.records)
        for index in range(args.rounds):
            for spec in (args.configs if index % 2 == 0 else list(reversed(args.configs))):
                runs.append(run_config(spec, data, args))
                print(json.dumps(runs[-1]), flush=True)
    block = render(runs, args, started, (load_start, round(os.getloadavg()[0], 2)))
    print(block)
    if not args.no_write:
        with REPORT.open("a", encoding="utf-8") as handle:
            handle.write("\n" + block)
        print(f"appended to {REPORT}")


if __name__ == "__main__":
    main()
