"""Client overhead of the openai: backend against a zero-latency local server.

Compares the OpenAI SDK's default httpx transport, the SDK with aiohttp
(`openai.DefaultAioHttpClient`), both through rolenrules' own LLM layer, and a bare
aiohttp client (the floor). The server runs in a separate process so the client's cost is
what is measured.

    .venv/bin/python benchmarks/llm_transport.py [--requests 2000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time

from rolenrules.llm import BackendOptions, make_llm


def _serve(port_queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from rolenrules.testing.fake_openai import FakeOpenAIServer

    server = FakeOpenAIServer(reply=lambda body: "ok").start()
    port_queue.put(server.port)
    while True:
        time.sleep(3600)


async def _sdk(base_url: str, transport: str, n: int, concurrency: int) -> float:
    llm = make_llm("openai:bench", BackendOptions(base_url=base_url, transport=transport), concurrency=concurrency)
    start = time.perf_counter()
    await asyncio.gather(*(llm.chat([{"role": "user", "content": f"q{i}"}]) for i in range(n)))
    elapsed = time.perf_counter() - start
    await llm.aclose()
    return n / elapsed


async def _sdk_bare(base_url: str, n: int, concurrency: int) -> float:
    """The SDK with aiohttp and nothing of ours around it: what our layer costs on top."""
    import openai

    client = openai.AsyncOpenAI(api_key="x", base_url=base_url, http_client=openai.DefaultAioHttpClient())
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with semaphore:
            await client.chat.completions.create(model="bench", messages=[{"role": "user", "content": f"q{i}"}])

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    rate = n / (time.perf_counter() - start)
    await client.close()
    return rate


async def _raw_aiohttp(base_url: str, n: int, concurrency: int) -> float:
    import aiohttp

    semaphore = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:
        async def one(i: int) -> None:
            async with semaphore:
                async with session.post(f"{base_url}/chat/completions",
                                        json={"model": "bench", "messages": [{"role": "user", "content": f"q{i}"}]}) as r:
                    await r.json()

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    proc = multiprocessing.Process(target=_serve, args=(queue,), daemon=True)
    proc.start()
    base_url = f"http://127.0.0.1:{queue.get(timeout=30)}/v1"
    try:
        rows = [
            ("openai SDK, httpx (default)", asyncio.run(_sdk(base_url, "httpx", args.requests, args.concurrency))),
            ("openai SDK, aiohttp (rnr default)", asyncio.run(_sdk(base_url, "aiohttp", args.requests, args.concurrency))),
            ("openai SDK, aiohttp, no rnr layer", asyncio.run(_sdk_bare(base_url, args.requests, args.concurrency))),
            ("bare aiohttp (floor)", asyncio.run(_raw_aiohttp(base_url, args.requests, args.concurrency))),
        ]
    finally:
        proc.terminate()
    print(f"{args.requests} requests, concurrency {args.concurrency}")
    for name, rate in rows:
        print(f"{name:36s} {rate:8.0f} req/s")


if __name__ == "__main__":
    main()
