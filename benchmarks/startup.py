"""Start-up time of `rnr` as a fresh process (issue 17, P7).

    .venv/bin/python benchmarks/startup.py [--repeats 7] [--compare OLD_SRC]

Times, in fresh processes, `rnr --help` and `rnr ifeval score` on the 270 GPT-4 responses of
`tests/data/gpt4_dev.jsonl` (written to a temporary folder), and lists which heavy modules
`rnr --help` imports. With `--compare OLD_SRC` (a `src/` folder of another checkout, e.g. made
with `git archive REV src | tar -x -C /tmp/old`) each repeat runs the old tree and then this one,
alternating, so both see the same machine load. Reports best and median wall seconds and the
load average (`os.getloadavg`) before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS = ROOT / "tests" / "data" / "gpt4_dev.jsonl"
HEAVY = ("numpy", "scipy", "openai", "torch", "transformers", "nltk", "datasets", "pyarrow", "aiohttp")


def _run(src: Path, args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rolenrules", *args], env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _heavy_imports(src: Path) -> list[str]:
    probe = ("import sys\nfrom rolenrules.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             f"print('HEAVY:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", probe], env=env, check=True, capture_output=True, text=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("HEAVY:"))
    return [m for m in line.removeprefix("HEAVY:").split(",") if m]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--compare", type=Path, help="another checkout's src/ folder, timed alternately")
    args = parser.parse_args()
    trees = {"this tree": ROOT / "src"}
    if args.compare:
        trees = {"old tree": args.compare.resolve(), **trees}
    load_before = os.getloadavg()
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        commands = {"rnr --help": ["--help"],
                    "rnr ifeval score (270 rows)": ["ifeval", "score", str(ROWS), "--out", str(Path(tmp) / "out")]}
        for name, src in trees.items():  # warm the file cache and .pyc files once
            for cmd in commands.values():
                _run(src, cmd)
        for _ in range(args.repeats):
            for name, src in trees.items():
                for label, cmd in commands.items():
                    times.setdefault((name, label), []).append(_run(src, cmd))
    load_after = os.getloadavg()
    print(f"python {sys.version.split()[0]}, {args.repeats} repeats, load average before "
          f"{'/'.join(f'{x:.2f}' for x in load_before)}, after {'/'.join(f'{x:.2f}' for x in load_after)}")
    print(f"| tree | command | best (s) | median (s) |\n| --- | --- | ---: | ---: |")
    for (name, label), values in times.items():
        print(f"| {name} | {label} | {min(values):.3f} | {statistics.median(values):.3f} |")
    for name, src in trees.items():
        print(f"{name}: `rnr --help` imports {', '.join(_heavy_imports(src)) or 'none'} of {', '.join(HEAVY)}")


if __name__ == "__main__":
    main()
