"""Time IFEval scoring (strict + loose) on the published GPT-4 responses.

    .venv/bin/python benchmarks/ifeval_speed.py [--repeats 5] [--no-cli]

Only the 270-response dev half ships with responses (`../shared/data/ifeval/gpt4_dev.jsonl`), so
540 is timed as the 270 scored twice, with the memo caches cleared before each pass: the second
pass does the same work a second, unseen half would (no cache hits). Reported:

* `setup`: imports and model loading (Punkt parameters, langdetect profiles, NLTK), once per process;
* `ours`: `score_rows` on 270 and on 270 x 2, best of `--repeats` (memo caches cleared before
  every pass; wall and process CPU time, the latter less disturbed by other load), alternating
  repeat by repeat with the reference;
* `reference`: the same checks done the way the official checker does them, on the same machine
  and in the same run: all eight loose variants tried without de-duplication or memoisation,
  langdetect's own `detect` (seeded), NLTK's Punkt and Treebank tokenizers as shipped;
* `cli`: wall time of `rnr ifeval score` on the 270 rows in a fresh process (startup included).

Every pass is checked against the official verdicts (must be 838/838).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "data" / "ifeval" / "gpt4_dev.jsonl"


def _agreement(rows: list[dict], verdicts: list[dict]) -> tuple[int, int]:
    pairs = [(a, b) for row, v in zip(rows, verdicts) for m in ("strict", "loose") for a, b in zip(row[m], v[m])]
    return sum(a == b for a, b in pairs), len(pairs)


Timing = tuple[float, float, tuple[int, int]]  # wall, CPU, agreement of one timed repeat


def _once_ours(rows: list[dict], passes: int) -> Timing:
    from rolenrules.rules import _text
    from rolenrules.rules.ifeval_accuracy import score_rows

    wall = cpu = 0.0
    for _ in range(passes):
        _text.clear_caches()
        start, start_cpu = time.perf_counter(), time.process_time()
        verdicts = score_rows(rows)
        wall += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
    return wall, cpu, _agreement(rows, verdicts)


def _reference_scorer():  # noqa: ANN202 - returns a closure
    """Our rule checks, fed the way the official checker feeds its own: no memo caches, no
    de-duplicated loose variants, the unmodified NLTK tokenizers and langdetect."""
    import collections

    import punkt
    from nltk.tokenize.destructive import NLTKWordTokenizer
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    from rolenrules.rules import _text
    from rolenrules.rules.base import CheckContext
    from rolenrules.rules.registry import REGISTRY

    model = punkt.load_model("english")
    params = PunktParameters()
    params.abbrev_types, params.collocations = set(model.abbrev_types), set(model.collocations)
    params.sent_starters = set(model.sent_starters)
    params.ortho_context = collections.defaultdict(int, model.ortho_context)
    splitter, treebank = PunktSentenceTokenizer(params), NLTKWordTokenizer()

    patched = {
        "_sentences": lambda text: tuple(splitter.tokenize(text)),
        "_word_tokens": lambda text: tuple(t for s in splitter.tokenize(text) for t in treebank.tokenize(s)),
        "detect_language": _text.detect_language_reference,
    }
    context = CheckContext()

    def score(rows: list[dict]) -> list[dict]:
        saved = {name: getattr(_text, name) for name in patched}
        for name, function in patched.items():
            setattr(_text, name, function)
        try:
            out = []
            for row in rows:
                response = row["response"]
                lines = response.split("\n")
                first, last, both = ("\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(),
                                     "\n".join(lines[1:-1]).strip())
                variants = [response, response.replace("*", ""), first, last, both, first.replace("*", ""),
                            last.replace("*", ""), both.replace("*", "")]
                strict, loose = [], []
                for type_id, kwargs in zip(row["instruction_id_list"], row["kwargs"]):
                    rule_type = REGISTRY[type_id]
                    parsed = rule_type.parse({k: v for k, v in kwargs.items() if v is not None})
                    strict.append(bool(response.strip() and rule_type.test(parsed, response, context)))
                    loose.append(any(v.strip() and rule_type.test(parsed, v, context) for v in variants))
                out.append({"strict": strict, "loose": loose})
            return out
        finally:
            for name, function in saved.items():
                setattr(_text, name, function)

    return score


def _once_reference(score, rows: list[dict], passes: int) -> Timing:  # noqa: ANN001 - the closure above
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(passes):
        verdicts = score(rows)
    return time.perf_counter() - start, time.process_time() - start_cpu, _agreement(rows, verdicts)


def _time_cli() -> float:
    rnr = Path(sys.executable).with_name("rnr")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([str(rnr), "ifeval", "score", str(DEV), "--out", tmp], check=True, capture_output=True,
                       env={**os.environ, "COLUMNS": "100"})
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="Timed repetitions (best and median reported).")
    parser.add_argument("--no-cli", action="store_true", help="Skip the end-to-end CLI timing.")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines() if line.strip()]

    start = time.perf_counter()
    from rolenrules.rules import _text
    from rolenrules.rules.ifeval_accuracy import score_rows  # noqa: F401 - timed import

    _text.warm_up(language=True, tokens=True)
    setup = time.perf_counter() - start

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; python {sys.version.split()[0]}")
    print(f"setup (imports + Punkt, langdetect profiles, NLTK): {setup:.2f} s\n")
    print("| work | responses | wall best (s) | wall median (s) | CPU best (s) | agreement |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    results = {}
    reference = _reference_scorer()
    for passes in (1, 2):
        # Ours and the reference alternate repeat by repeat, so load changes hit both alike.
        timings: dict[str, list[Timing]] = {"ours": [], "reference": []}
        for _ in range(args.repeats):
            timings["ours"].append(_once_ours(rows, passes))
            timings["reference"].append(_once_reference(reference, rows, passes))
        for label, runs in timings.items():
            walls, cpus = [w for w, _, _ in runs], [c for _, c, _ in runs]
            agree, total = min(a for _, _, (a, _) in runs), runs[0][2][1]  # the worst repeat
            results[(label, passes)] = (min(walls), min(cpus))
            print(f"| {label} | {270 * passes} | {min(walls):.3f} | {statistics.median(walls):.3f} | "
                  f"{min(cpus):.3f} | {agree}/{total} |")
    wall = results[("reference", 2)][0] / results[("ours", 2)][0]
    cpu = results[("reference", 2)][1] / results[("ours", 2)][1]
    print(f"\nspeed-up on 540, best vs best: {wall:.1f}x wall, {cpu:.1f}x CPU")
    if not args.no_cli:
        print(f"`rnr ifeval score` on 270, fresh process: {_time_cli():.2f} s wall")


if __name__ == "__main__":
    main()
