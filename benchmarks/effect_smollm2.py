"""The RNR effect on SmolLM2-135M (benchmarks/effect_smollm2.md): keep the evaluation outputs of the
experiment, and re-score them without running any model.

    # after `rnr run examples/smollm2-rnr.yaml --param seeds=...` finished:
    python benchmarks/effect_smollm2.py collect runs/smollm2-rnr
    # anyone, from the committed files only (seeds: optional, see below):
    python benchmarks/effect_smollm2.py rescore [--seeds alpaca_data_first2000.json]

`collect` copies each evaluation's `results.jsonl` (responses included), `summary.json` and `run.json`
into `benchmarks/effect_smollm2/` — `rnr-test/` (the held-out RNR test part), `sys-ifeval/`,
`ifeval/`, one `eval-MODEL` folder per model — plus `results.md` and the reports' markdown. The user
turns of the RNR test part are Alpaca instructions (CC BY-NC 4.0), which this Apache-2.0 repository
does not carry: they are replaced by a pointer to their row of the seed file (`[alpaca row N]`); the
system prompts (a built-in role plus rule-library rules), the rules and the model's responses stay.

`rescore` checks every stored response again with the rule library (strict, as `rnr eval` does),
says whether each verdict matches the stored one, and recomputes the results table: pass-rate with
its Wilson interval per model, and each arm against the base (Newcombe's paired interval, McNemar's
exact p). One rule type reads the user turn: `safety:no_prompt_leak` does not count the prompt's
word n-grams that the user typed. With `--seeds` (your copy of the seed file) the user turns are
restored first; without it those verdicts are taken as stored, and the script says how many.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent / "effect_smollm2"
MODELS = ("base", "sft", "dpo", "sft-lr1e-4")
#: name here -> where `rnr run` (or `hard-bench` + rnr eval, for rnr-hard) put it under the workdir.
EVALUATIONS = {"rnr-test": None, "rnr-hard": "hard", "sys-ifeval": "sys-ifeval", "ifeval": "ifeval"}
#: Evaluations whose user turns are Alpaca rows, not stored here.
REDACTED = {"rnr-test", "rnr-hard"}
_POINTER = re.compile(r"^\[alpaca row (\d+)\]")


def _folder(workdir: Path, task: str | None, model: str) -> Path:
    if task is None:
        return workdir / f"eval-{model}"
    return workdir / task / f"eval-{model}" if task == "hard" else workdir / "tasks" / task / f"eval-{model}"


def _redact(line: str) -> str:
    record = json.loads(line)
    metadata = record.get("metadata") or {}
    row = (metadata.get("origin") or metadata.get("source") or {}).get("row")  # rnr-test: origin; rnr-hard: source
    for message in record["messages"]:
        if message["role"] == "user":
            message["content"] = f"[alpaca row {row}] (not stored: Alpaca is CC BY-NC 4.0)"
    return json.dumps(record, ensure_ascii=False)


def collect(workdir: Path) -> None:
    for name, task in EVALUATIONS.items():
        for model in MODELS:
            source = _folder(workdir, task, model)
            if not (source / "summary.json").exists():
                print(f"skipped {source}: no summary.json")
                continue
            target = HERE / name / f"eval-{model}"
            target.mkdir(parents=True, exist_ok=True)
            for file in ("summary.json", "run.json"):
                shutil.copyfile(source / file, target / file)
            lines = (source / "results.jsonl").read_text(encoding="utf-8").splitlines()
            if name in REDACTED:
                lines = [_redact(line) for line in lines if line.strip()]
            (target / "results.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    shutil.copyfile(workdir / "results.md", HERE / "results.md")
    shutil.copyfile(workdir / "report.md", HERE / "rnr-test" / "report.md")
    for task in ("sys-ifeval", "ifeval"):
        report = workdir / "tasks" / task / "report.md"
        if report.exists():
            shutil.copyfile(report, HERE / task / "report.md")
    print(f"wrote {HERE}")


def hard_bench(workdir: Path) -> None:
    """`bench.hard.jsonl`: one example per rejected conversation whose system prompt got no kept
    conversation at all, so none of it is in the training data. The benchmark `rnr run` holds out
    comes from the kept data: system prompts under which the teacher (the same model) followed every
    rule in at least one of its samples, so the base passes most of it. These are the rules it failed."""
    import sqlite3

    from rolenrules.records import SystemPrompt

    kept = {json.loads(line)["system_prompt"]["id"] for line in (workdir / "generated.jsonl").open(encoding="utf-8")}
    db = sqlite3.connect(workdir / "generated.jsonl.rnr-run" / "run.sqlite")
    prompts = {}
    for (payload,) in db.execute("SELECT payload FROM prompts"):
        record = json.loads(payload)
        if "rules" in record:
            prompts[record["id"]] = SystemPrompt.model_validate(record)
    rows = []
    for line in (workdir / "generated.jsonl.rejects.jsonl").open(encoding="utf-8"):
        reject = json.loads(line)
        sp = prompts.get(reject.get("system_prompt_id") or "")
        if reject["stage"] != "response" or sp is None or sp.id in kept:
            continue
        rows.append({"id": reject["id"], "messages": [{"role": "system", "content": sp.render()},
                                                       {"role": "user", "content": reject["user_turns"][0]}],
                     "system_prompt": sp.model_dump(mode="json"), "verdicts": [],
                     "metadata": {"task": "rnr-hard", "system_prompt_id": sp.id, "source": reject["source"]}})
    out = workdir / "bench.hard.jsonl"
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} examples under {len({r['system_prompt']['id'] for r in rows})} system prompts → {out}")


def _seed_turns(seeds: Path | None) -> dict[int, str]:
    if seeds is None:
        return {}
    from rolenrules.io import read_examples

    return {i: e.user_turns[0] for i, e in enumerate(read_examples(str(seeds)))}


def rescore(seeds: Path | None) -> None:
    from rolenrules.evaluate.metrics import compare, proportion
    from rolenrules.evaluate.results import read_results
    from rolenrules.rules import CheckContext, check_rule, rule_from_type

    turns = _seed_turns(seeds)
    rows = []
    for name in EVALUATIONS:
        runs: dict[str, list[Any]] = {}
        for model in MODELS:
            path = HERE / name / f"eval-{model}" / "results.jsonl"
            if not path.exists():
                continue
            results, checked, differ, kept_as_stored = [], 0, 0, 0
            for result in read_results(path):
                system = next((m.content for m in result.messages if m.role == "system"), None)
                users = [m.content for m in result.messages if m.role == "user"]
                restored = [turns.get(int(m.group(1)), u) if (m := _POINTER.match(u)) else u for u in users]
                context = CheckContext(system_prompt=system, user_turns=restored)
                rules = []
                for scored in result.rules:
                    # The one check that reads the user turn, when it could not be restored.
                    needs_user = scored.type == "safety:no_prompt_leak" and any(_POINTER.match(u) for u in restored)
                    if scored.kind != "verifiable" or scored.type is None or needs_user:
                        kept_as_stored += 1
                        rules.append(scored)
                        continue
                    rule = rule_from_type(scored.type, scored.params)
                    verdict = check_rule(rule, result.response, context=context).passed
                    checked += 1
                    differ += verdict != scored.passed
                    rules.append(scored.model_copy(update={"passed": verdict}))
                status = type(result).status_of(rules)
                results.append(result.model_copy(update={"rules": rules, "passed": status == "pass",
                                                          "status": status}))
            runs[model] = results
            passed = sum(r.passed for r in results)
            rate = proportion(passed, len(results))
            note = f"{checked} verdicts re-checked, {differ} differ from the stored ones"
            note += f", {kept_as_stored} taken as stored (no_prompt_leak without --seeds)" if kept_as_stored else ""
            row = [name, model, str(len(results)), f"{100 * rate.value:.1f}% [{100 * rate.low:.1f}, {100 * rate.high:.1f}]"]
            if model != "base" and "base" in runs:
                c = compare(runs["base"], results)
                p = c["pass_rate"]
                row += [f"{100 * p['diff']:+.1f} pts [{100 * p['low']:+.1f}, {100 * p['high']:+.1f}]",
                        f"{c['mcnemar']['p_value']:.3g}"]
            else:
                row += ["", ""]
            rows.append(row + [note])
    header = ["evaluation", "model", "n", "pass-rate [95% CI]", "vs base (paired) [95% CI]", "McNemar p", "re-check"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    c = commands.add_parser("collect", help="copy an experiment's evaluation outputs here")
    c.add_argument("workdir", type=Path)
    h = commands.add_parser("hard-bench", help="write bench.hard.jsonl: the system prompts no kept conversation had")
    h.add_argument("workdir", type=Path)
    r = commands.add_parser("rescore", help="re-check the stored responses and recompute the table")
    r.add_argument("--seeds", type=Path, help="the seed file, to restore the RNR test's user turns")
    args = parser.parse_args()
    if args.command == "collect":
        collect(args.workdir)
    elif args.command == "hard-bench":
        hard_bench(args.workdir)
    else:
        rescore(args.seeds)


if __name__ == "__main__":
    main()
