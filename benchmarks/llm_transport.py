"""Client cost of the `openai:` backend against a zero-latency local server in another process.

A stream of calls through rnr's `LLM` (half structured output with a nested pydantic model, half
free text under a 1.6 KB system prompt shared by 5 calls, as a generation run sends them; request
cache on), with the candidate request paths alternated round by round in one run:

* `sdk create`: the openai SDK's `chat.completions.create` (the path before issue 17; `transport="sdk"`);
* `sdk post`: the SDK's low-level `post()` with a prepared JSON body (skips the per-call parameter
  transform, keeps the SDK's retry loop and response handling);
* `direct`: one aiohttp session, body built once, the SDK's retry rules (`transport="aiohttp"`, the default);
* `bare aiohttp`: the same requests posted with no LLM layer, no cache, no retries (the floor).

Reported per candidate: calls/s (wall; best and median of the rounds) and client CPU ms per call
(process time, less disturbed by other load on a shared machine).

`--compare OLD_SRC` instead runs the `LLM` stream in fresh processes against another checkout's
`src/` (e.g. `git archive REV src | tar -x -C /tmp/old`) and this one, alternating: calls/s
before and after, each with its own defaults.

    .venv/bin/python benchmarks/llm_transport.py [--requests 3000] [--concurrency 64] [--rounds 5]
    .venv/bin/python benchmarks/llm_transport.py --compare /tmp/old/src [--latency 0.2 --concurrency 256]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SYSTEM = "You are Ava, a meticulous travel planner for families. Keep every answer under 120 words. " * 18


def _serve(port_queue: Any, latency: float) -> None:
    from rolenrules.testing.fake_openai import FakeOpenAIServer

    server = FakeOpenAIServer(latency=latency).start()
    port_queue.put(server.port)
    while True:
        time.sleep(3600)


def _models() -> Any:
    from pydantic import BaseModel

    class Rule(BaseModel):
        text: str
        category: str
        verifiable: bool

    class Persona(BaseModel):
        role: str
        rules: list[Rule]

    return Persona


async def _stream(llm: Any, n: int, start: int = 0) -> None:
    persona = _models()

    async def one(i: int) -> None:
        if i % 2:
            await llm.structured([{"role": "user", "content": f"Write a role and rules for task {i}."}], persona)
        else:
            await llm.chat([{"role": "system", "content": SYSTEM + str(i // 10)},
                            {"role": "user", "content": f"Question number {i}?"}])

    await asyncio.gather(*(one(i) for i in range(start, start + n)))


def _llm(base_url: str, concurrency: int, cache: str, backend_class: Any = None, **options: Any) -> Any:
    from rolenrules.llm import LLM, BackendOptions, RequestCache, make_llm

    if backend_class is None:
        return make_llm("openai:bench", BackendOptions(base_url=base_url, **options), cache=cache,
                        concurrency=concurrency)
    return LLM(backend_class("bench", base_url=base_url, **options), cache=RequestCache(cache), concurrency=concurrency)


def _sdk_post_backend() -> Any:
    """The SDK's low-level post() with the prepared body, inside our retry/failover loop."""
    from rolenrules.llm.openai_backend import OpenAIBackend

    class SdkPost(OpenAIBackend):
        async def _sdk_post(self, endpoint: Any, body: bytes) -> Any:
            import openai

            clients = await self._clients()
            client = clients.get(endpoint.url) or clients.keep(endpoint.url, openai.AsyncOpenAI(
                api_key="x", base_url=endpoint.url, timeout=self.timeout, max_retries=self.max_retries,
                http_client=openai.DefaultAioHttpClient(timeout=self.timeout)))
            return await client.post("/chat/completions", content=body, cast_to=object, options={
                "headers": {"Content-Type": "application/json"}, "security": {"bearer_auth": True}})

    return SdkPost


async def bare(base_url: str, n: int, concurrency: int) -> None:
    """`n` chat requests posted from one aiohttp session, `concurrency` at a time, with no rnr code (no
    LLM layer, cache or retries): the floor of a client's cost, and the ceiling a harness allows."""
    import aiohttp

    semaphore = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one(i: int) -> None:
            body = {"model": "bench", "messages": [{"role": "system", "content": SYSTEM + str(i // 10)},
                                                   {"role": "user", "content": f"Question number {i}?"}]}
            async with semaphore:
                async with session.post(f"{base_url}/chat/completions", data=json.dumps(body).encode(),
                                        headers={"Content-Type": "application/json"}) as response:
                    json.loads(await response.read())

        await asyncio.gather(*(one(i) for i in range(n)))


def _measure(run: Any) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def _candidates(base_url: str, args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    n, c = args.requests, args.concurrency

    def through_llm(**kw: Any) -> Any:
        def run() -> None:
            llm = _llm(base_url, c, tempfile.mktemp(dir=tmp, suffix=".sqlite"), **kw)

            async def go() -> None:
                await _stream(llm, 100, start=10**6)  # connections, schemas, first-call setup: not timed
                wall, cpu = time.perf_counter(), time.process_time()
                await _stream(llm, n)
                run.result = (time.perf_counter() - wall, time.process_time() - cpu)  # type: ignore[attr-defined]
                await llm.aclose()

            asyncio.run(go())
        return run

    return {
        "sdk create (transport=sdk)": through_llm(transport="sdk"),
        "sdk post(), prepared body": through_llm(backend_class=_sdk_post_backend(), transport="sdk"),
        "direct aiohttp (default)": through_llm(transport="aiohttp"),
        "bare aiohttp, no LLM layer": "bare",
    }


def _worker(args: argparse.Namespace) -> None:
    """One timed LLM stream in this process (for --compare): prints a JSON line."""
    from rolenrules.llm import BackendOptions, make_llm

    with tempfile.TemporaryDirectory() as tmp:
        llm = make_llm("openai:bench", BackendOptions(base_url=args.worker), cache=os.path.join(tmp, "c.sqlite"),
                       concurrency=args.concurrency)

        async def go() -> dict[str, float]:
            await _stream(llm, 100, start=10**6)
            wall, cpu = time.perf_counter(), time.process_time()
            await _stream(llm, args.requests)
            result = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
            if hasattr(llm, "stats"):  # LLM.stats() exists from issue 17 on: the per-call latency it saw
                result["latency"] = llm.stats().latency_s
            await llm.aclose()
            return result

        print(json.dumps(asyncio.run(go())))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.0, help="server latency in seconds")
    parser.add_argument("--compare", type=Path, help="another checkout's src/ folder: before/after, alternating")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker(args)
    queue: Any = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve, args=(queue, args.latency), daemon=True)
    server.start()
    base_url = f"http://127.0.0.1:{queue.get(timeout=30)}/v1"
    load_before = os.getloadavg()
    results: dict[str, list[tuple[float, float]]] = {}
    latencies: dict[str, list[float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if args.compare:
                trees = {"before (OLD_SRC)": args.compare.resolve(), "after (this tree)": ROOT / "src"}
                for _ in range(args.rounds):
                    for name, src in trees.items():
                        out = subprocess.run([sys.executable, __file__, "--worker", base_url, "--requests",
                                              str(args.requests), "--concurrency", str(args.concurrency)],
                                             env={**os.environ, "PYTHONPATH": str(src)}, check=True,
                                             capture_output=True, text=True).stdout
                        row = json.loads(out.strip().splitlines()[-1])
                        results.setdefault(name, []).append((row["wall"], row["cpu"]))
                        if row.get("latency"):
                            latencies.setdefault(name, []).append(row["latency"])
            else:
                candidates = _candidates(base_url, args, tmp)
                for _ in range(args.rounds):
                    for name, run in candidates.items():
                        if run == "bare":
                            results.setdefault(name, []).append(_measure(
                                lambda: asyncio.run(bare(base_url, args.requests, args.concurrency))))
                        else:
                            run()
                            results.setdefault(name, []).append(run.result)
    finally:
        server.terminate()
    load_after = os.getloadavg()
    limit = f", Little's-law limit {args.concurrency / args.latency:,.0f} calls/s" if args.latency else ""
    print(f"{args.requests} calls per round, {args.concurrency} in flight, server latency {args.latency} s{limit}, "
          f"{args.rounds} rounds; load average before {'/'.join(f'{x:.2f}' for x in load_before)}, after "
          f"{'/'.join(f'{x:.2f}' for x in load_after)}")
    print("| path | calls/s best | calls/s median | client CPU ms/call (best) |\n| --- | ---: | ---: | ---: |")
    for name, rows in results.items():
        rates = [args.requests / wall for wall, _ in rows]
        print(f"| {name} | {max(rates):,.0f} | {statistics.median(rates):,.0f} | "
              f"{min(cpu for _, cpu in rows) / args.requests * 1000:.3f} |")
    for name, values in latencies.items():
        print(f"{name}: mean time per request inside the backend (LLM.stats), median of rounds "
              f"{statistics.median(values) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
