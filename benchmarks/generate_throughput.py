"""End-to-end throughput and memory of `rnr generate` (issue 17: P1, P2, P4, P5), and distilabel beside it.

Every figure is a whole process: `rnr generate` (or the distilabel script) is started as a fresh
subprocess against the scripted zero-latency test server (`FakeOpenAIServer` with
`rolenrules.testing.scripted.teacher_reply`) running in another process on the same machine; calls
are counted at the server, time is the subprocess's wall time from spawn to exit, CPU and peak RSS
come from `wait4`.

    # P1: rnr vs distilabel, alternating (distilabel 1.5.3 set up in a throwaway venv first)
    python benchmarks/generate_throughput.py setup-distilabel /tmp/distilabel-venv
    python benchmarks/generate_throughput.py throughput --seeds ALPACA_2000.json --rounds 3 \
        --distilabel-python /tmp/distilabel-venv/bin/python
    # P2: 200 ms server latency, 256 in flight
    python benchmarks/generate_throughput.py throughput --seeds ALPACA_2000.json --latency 0.2 --concurrency 256
    # P4/P5: memory of a 1M-seed start and a 100k-seed run, and the re-run of the finished run
    python benchmarks/generate_throughput.py memory --make-seeds 1000000 --start-only
    python benchmarks/generate_throughput.py memory --make-seeds 100000

`--rnr-src` runs another checkout's rnr (its `src` on PYTHONPATH) beside this one, alternating, as
`rnr-before`; `--bare-requests N` adds a row of N requests from a bare aiohttp client with no rnr code
(the ceiling this harness allows any Python client). Each row gives the server's peak and mean requests
in flight and its CPU time; `RNR_BENCH_TIMELINE=FILE` makes the server log its in-flight count every
10 ms. `uptime`'s load average is printed before every measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

DISTILABEL_SCRIPT = r'''
import json, sys, time
from distilabel.models import OpenAILLM
from distilabel.pipeline import Pipeline
from distilabel.steps import LoadDataFromDicts
from distilabel.steps.tasks import TextGeneration

seeds_path, base_url, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = json.load(open(seeds_path))
data = [{"instruction": (r["instruction"] + ("\n\n" + r["input"] if r.get("input") else ""))} for r in rows]
with Pipeline(name="bench") as pipeline:
    load = LoadDataFromDicts(data=data, batch_size=batch)
    gen = TextGeneration(llm=OpenAILLM(model="any", base_url=base_url, api_key="x", max_retries=4, timeout=120),
                         input_batch_size=batch)
    load >> gen
out = pipeline.run(use_cache=False)
print("DISTILABEL_ROWS", len(out["default"]["train"]))
'''


# -- the server, in its own process -------------------------------------------------------------

def serve(latency: float) -> None:
    """Run the scripted test server; print its port; on each stdin line print and reset its counters."""
    from rolenrules.testing.fake_openai import FakeOpenAIServer
    from rolenrules.testing.scripted import teacher_reply

    server = FakeOpenAIServer(reply=teacher_reply(), latency=latency).start()
    print(server.port, flush=True)

    def forget() -> None:  # the server keeps every request body for tests; a benchmark needs none of them
        while True:
            time.sleep(1.0)
            server.log.clear()

    samples: list[int] = []  # requests in flight, every 10 ms while any are
    timeline = open(os.environ["RNR_BENCH_TIMELINE"], "w", buffering=1) if os.environ.get("RNR_BENCH_TIMELINE") else None

    def sample() -> None:
        while True:
            time.sleep(0.01)
            if server.in_flight:
                samples.append(server.in_flight)
                if timeline is not None:
                    timeline.write(f"{time.monotonic():.3f} {server.in_flight} {server.requests}\n")

    threading.Thread(target=forget, daemon=True).start()
    threading.Thread(target=sample, daemon=True).start()
    cpu = time.process_time()
    for _ in sys.stdin:
        taken, samples[:] = list(samples), []
        print(json.dumps({"requests": server.requests, "max_in_flight": server.max_in_flight,
                          "mean_in_flight": round(sum(taken) / len(taken), 1) if taken else None,
                          "server_cpu_s": round(time.process_time() - cpu, 2)}), flush=True)
        server.requests = server.max_in_flight = 0
        server.log.clear()
        cpu = time.process_time()


class Server:
    def __init__(self, latency: float) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "serve", "--latency", str(latency)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def counters(self) -> dict[str, int]:
        """The requests (and most in flight) since the last call."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


# -- measuring a subprocess ---------------------------------------------------------------------

def load() -> str:
    return os.getloadavg().__repr__()


def measure(command: list[str], env: dict[str, str], cwd: Path | None = None) -> dict[str, Any]:
    """Wall time, CPU time and peak RSS of one subprocess (its children excluded)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = b""
    assert proc.stdout is not None
    for chunk in iter(lambda: proc.stdout.read(65536), b""):  # type: ignore[union-attr]
        output += chunk
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,
            "rc": proc.returncode, "output": output.decode(errors="replace")}


def rnr_command(python: str, seeds: Path, out: Path, base_url: str, concurrency: int, k: int,
                extra: list[str]) -> list[str]:
    return [python, "-m", "rolenrules", "generate", "--input", str(seeds), "--out", str(out), "--teacher",
            "openai:any", "--base-url", base_url, "--k", str(k), "--concurrency", str(concurrency), "--quiet", *extra]


def rnr_env(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src)}


def report(name: str, result: dict[str, Any], counters: dict[str, int]) -> dict[str, Any]:
    calls = counters["requests"]
    row = {"name": name, "calls": calls, "max_in_flight": counters.get("max_in_flight"),
           "mean_in_flight": counters.get("mean_in_flight"), "server_cpu_s": counters.get("server_cpu_s"),
           "wall_s": round(result["wall_s"], 2),
           "calls_per_s": round(calls / result["wall_s"], 1), "cpu_ms_per_call": round(1000 * result["cpu_s"] / max(calls, 1), 3),
           "peak_rss_mb": round(result["peak_rss_mb"]), "rc": result["rc"], "load": load()}
    print(json.dumps(row), flush=True)
    if result["rc"] not in (0,):
        print(result["output"][-3000:], file=sys.stderr)
    return row


# -- the subcommands ----------------------------------------------------------------------------

def throughput(args: argparse.Namespace) -> None:
    server = Server(args.latency)
    rows: list[dict[str, Any]] = []
    try:
        for round_ in range(args.rounds):
            for name in args.order:
                print(f"round {round_ + 1} {name}: load {load()}", flush=True)
                server.counters()
                with tempfile.TemporaryDirectory(prefix="rnr-bench-") as tmp:
                    if name == "distilabel":
                        script = Path(tmp) / "distilabel_bench.py"
                        script.write_text(DISTILABEL_SCRIPT)
                        result = measure([args.distilabel_python, str(script), str(args.seeds), server.base_url,
                                          str(args.concurrency)],
                                         {**os.environ, "HF_HUB_OFFLINE": "1", "DISTILABEL_LOG_LEVEL": "WARNING"},
                                         cwd=Path(tmp))
                    elif name == "bare-aiohttp":
                        result = measure([sys.executable, __file__, "bare", "--base-url", server.base_url,
                                          "--requests", str(args.bare_requests), "--concurrency", str(args.concurrency)],
                                         dict(os.environ))
                    else:
                        src = Path(args.rnr_src) if name == "rnr-before" else ROOT / "src"
                        result = measure(rnr_command(args.rnr_python, args.seeds, Path(tmp) / "out.jsonl",
                                                     server.base_url, args.concurrency, args.k, args.extra),
                                         rnr_env(src))
                rows.append(report(name, result, server.counters()))
    finally:
        server.close()
    summary: dict[str, list[float]] = {}
    for row in rows:
        summary.setdefault(row["name"], []).append(row["calls_per_s"])
    for name, values in summary.items():
        values.sort()
        print(f"{name}: calls/s best {values[-1]:.1f}, median {values[len(values) // 2]:.1f} over {len(values)} rounds")


def make_seeds(n: int, path: Path) -> None:
    """n Alpaca-style seed rows as JSONL (distinct instructions of a few dozen words)."""
    rng = random.Random(0)
    words = ("explain describe list compare summarise write draft plan outline suggest the a of for with "
             "travel budget garden recipe email poem essay code bug test meeting report customer refund "
             "policy weather history science music health sport market").split()
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            text = " ".join(rng.choice(words) for _ in range(rng.randint(8, 40)))
            handle.write(json.dumps({"instruction": f"Task {i}: {text}.", "input": "", "output": "x " * 60}) + "\n")


def memory(args: argparse.Namespace) -> None:
    work = Path(args.workdir or tempfile.mkdtemp(prefix="rnr-mem-"))
    work.mkdir(parents=True, exist_ok=True)
    seeds = work / f"seeds-{args.make_seeds}.jsonl"
    if not seeds.exists():
        make_seeds(args.make_seeds, seeds)
    server = Server(args.latency)
    out = work / f"out-{args.make_seeds}.jsonl"
    try:
        server.counters()
        command = rnr_command(args.rnr_python, seeds, out, server.base_url, args.concurrency, args.k, args.extra)
        if args.start_only:
            # Planned and started: stopped after a few seconds of generation, peak RSS of the process so far.
            print(f"start-only run: load {load()}", flush=True)
            env = rnr_env(ROOT / "src")
            start = time.perf_counter()
            proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            seen = 0
            while time.perf_counter() - start < args.start_timeout:
                time.sleep(0.5)
                seen += server.counters()["requests"]
                if seen >= args.start_requests:
                    break
            started = time.perf_counter() - start
            rss = _rss_mb(proc.pid)
            proc.send_signal(signal.SIGINT)
            _, _, usage = os.wait4(proc.pid, 0)
            print(json.dumps({"name": "start-only", "seeds": args.make_seeds, "requests_seen": seen,
                              "seconds_to_requests": round(started, 1), "rss_mb_at_stop": rss,
                              "peak_rss_mb": round(usage.ru_maxrss / 1024), "load": load()}), flush=True)
            return
        for label in ("full run", "re-run of the finished run"):
            print(f"{label}: load {load()}", flush=True)
            result = measure(command, rnr_env(ROOT / "src"))
            report(label, result, server.counters())
    finally:
        server.close()
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024)
    except OSError:
        return None
    return None


def setup_distilabel(venv: Path) -> None:
    """distilabel 1.5.3 and the openai client in a throwaway venv (nothing of it enters rnr's environment)."""
    if not (venv / "bin" / "pip").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "distilabel==1.5.3", "openai",
                    "requests"], check=True)
    print(venv / "bin" / "python")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--latency", type=float, default=0.0)
    d = sub.add_parser("setup-distilabel")
    d.add_argument("venv", type=Path)
    for name in ("throughput", "memory"):
        p = sub.add_parser(name)
        p.add_argument("--latency", type=float, default=0.0)
        p.add_argument("--concurrency", type=int, default=64)
        p.add_argument("--k", type=int, default=5)
        p.add_argument("--rnr-python", default=sys.executable)
        p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more rnr generate options (last)")
    t = sub.choices["throughput"]
    t.add_argument("--seeds", type=Path, required=True)
    t.add_argument("--rounds", type=int, default=3)
    t.add_argument("--distilabel-python", default=None)
    t.add_argument("--rnr-src", default=None, help="another checkout's src/ to compare (runs as rnr-before)")
    t.add_argument("--bare-requests", type=int, default=0,
                   help="also run this many requests from a bare aiohttp client (the harness's ceiling)")
    b = sub.add_parser("bare")
    b.add_argument("--base-url", required=True)
    b.add_argument("--requests", type=int, required=True)
    b.add_argument("--concurrency", type=int, required=True)
    m = sub.choices["memory"]
    m.add_argument("--make-seeds", type=int, default=100_000)
    m.add_argument("--start-only", action="store_true")
    m.add_argument("--start-requests", type=int, default=2000, help="start-only: stop after this many requests")
    m.add_argument("--start-timeout", type=float, default=300)
    m.add_argument("--workdir", default=None)
    m.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.latency)
        return
    if args.command == "bare":  # the harness's ceiling: llm_transport's bare client, in its own process
        import asyncio

        from llm_transport import bare

        asyncio.run(bare(args.base_url, args.requests, args.concurrency))
        return
    if args.command == "setup-distilabel":
        setup_distilabel(args.venv)
        return
    if args.command == "throughput":
        args.order = (["rnr"] + (["rnr-before"] if args.rnr_src else []) + (["distilabel"] if args.distilabel_python else [])
                      + (["bare-aiohttp"] if args.bare_requests else []))
        throughput(args)
    else:
        memory(args)


if __name__ == "__main__":
    main()
