"""A real-GPU check of the `vllm:` backend (`rolenrules.llm.vllm_backend.VLLMBackend`), in one go.

NOT RUN YET: written in a session without a GPU or vLLM. The test suite covers the backend's
adapter against an engine of ours (tests/llm/test_vllm_backend.py); this script is what shows the
same on vLLM itself. Run it where vLLM and a CUDA GPU are, on a model folder on local disk (nothing
is downloaded):

    python benchmarks/vllm_check.py --model /models/Qwen2.5-0.5B-Instruct --out benchmarks/vllm_check.json
    python benchmarks/vllm_check.py --tiny --out /tmp/vllm_check.json   # no weights at hand: a tiny random
                                                                        # Llama built here (mechanics only)

It writes its figures to `--out` (JSON) and a markdown table beside it (same name, `.md`), and prints
the table. It measures:

1. engine start: seconds from `VLLMBackend(...)` to ready, GPU memory in use after it (nvidia-smi);
2. batched: `--requests` chat requests sent at once through `LLM` (concurrency = all of them):
   wall time, requests/s, completion tokens/s, and the most requests in flight at the backend;
3. serial: the first `--serial` of the same requests one after another: requests/s, and the
   batched/serial ratio of requests/s (the point of the backend: it should be well above 1);
4. structured output: `--structured` role-plus-rules requests at once through `LLM.structured`
   (attempts=1, so every reply counts): parsed, truncated, failed, and which vLLM API was used
   (`structured_outputs` or `guided_decoding`);
5. seeds: one seeded request sent alone and twice inside a batch (vLLM's numerics are not promised
   batch-invariant, so "same text" is a finding either way);
6. close: seconds for `aclose()` and GPU memory in use after it.

A `--tiny` model is random: its text is noise and most structured replies hit max_tokens inside a
JSON string, so for it only the timings and the in-flight figures mean something.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from rolenrules.llm import LLM, ChatRequest, ChatResult, InvalidReplyError, LLMError, Sampling
from rolenrules.records import Message

TOPICS = ["tides", "bread", "volcanoes", "chess", "bees", "glaciers", "trains", "violins", "comets", "coffee",
          "deserts", "owls", "bridges", "maps", "salt", "kites"]


class Rule(BaseModel):
    text: str = Field(min_length=1, max_length=200)
    category: str = Field(min_length=1, max_length=30)


class RoleAndRules(BaseModel):
    role: str = Field(min_length=1, max_length=300)
    rules: list[Rule] = Field(min_length=1, max_length=5)


def chat_request(i: int, max_tokens: int, seed: int | None = None) -> ChatRequest:
    topic = TOPICS[i % len(TOPICS)]
    return ChatRequest(messages=[
        Message(role="system", content="You are a concise assistant."),
        Message(role="user", content=f"Write {2 + i % 4} sentences about {topic} (request {i}).")],
        sampling=Sampling(temperature=0.7, top_p=0.95, max_tokens=max_tokens, seed=1000 + i if seed is None else seed))


class Counting:
    """The backend, counting requests in flight (what reached the engine at once)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.identity = backend.identity
        self.in_flight = 0
        self.peak = 0

    async def complete(self, request: ChatRequest) -> ChatResult:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await self.backend.complete(request)
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        await self.backend.aclose()


def gpu_memory_mib() -> int | None:
    if shutil.which("nvidia-smi") is None:
        return None
    out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, check=False).stdout.split()
    return int(out[0]) if out and out[0].isdigit() else None


def gpu_name() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True,
                         check=False).stdout.strip().splitlines()
    return out[0] if out else None


def tiny_model(folder: Path) -> Path:
    from rolenrules.testing.tiny_model import build_tiny_model

    # hidden 256 over 4 heads: head size 64, which vLLM's attention kernels take.
    return build_tiny_model(folder, hidden_size=256, layers=2)


async def batched(llm: LLM, backend: Counting, n: int, max_tokens: int) -> dict[str, Any]:
    backend.peak = 0
    start = time.perf_counter()
    results = await asyncio.gather(*(llm.backend.complete(chat_request(i, max_tokens)) for i in range(n)),
                                   return_exceptions=True)
    wall = time.perf_counter() - start
    ok = [r for r in results if isinstance(r, ChatResult)]
    errors = sorted({f"{type(r).__name__}: {r}"[:200] for r in results if isinstance(r, BaseException)})
    tokens = sum(r.usage.completion_tokens for r in ok)
    return {"requests": n, "ok": len(ok), "errors": errors, "wall_s": round(wall, 3),
            "requests_per_s": round(len(ok) / wall, 2), "completion_tokens": tokens,
            "completion_tokens_per_s": round(tokens / wall, 1), "peak_in_flight": backend.peak,
            "finish_reasons": _count(r.finish_reason for r in ok)}


async def serial(llm: LLM, n: int, max_tokens: int) -> dict[str, Any]:
    start = time.perf_counter()
    tokens = 0
    for i in range(n):
        tokens += (await llm.backend.complete(chat_request(i, max_tokens))).usage.completion_tokens
    wall = time.perf_counter() - start
    return {"requests": n, "wall_s": round(wall, 3), "requests_per_s": round(n / wall, 2),
            "completion_tokens_per_s": round(tokens / wall, 1)}


async def structured(llm: LLM, n: int, max_tokens: int) -> dict[str, Any]:
    async def one(i: int) -> str:
        messages = [{"role": "system", "content": "You write system prompts for AI assistants. Reply with JSON only."},
                    {"role": "user", "content": f"Write a role and 3 rules for an assistant that explains {TOPICS[i % len(TOPICS)]}."}]
        try:
            await llm.structured(messages, RoleAndRules, temperature=0.7, max_tokens=max_tokens, seed=i)
            return "parsed"
        except InvalidReplyError as error:
            return "truncated" if "truncated" in str(error) else "invalid"
        except LLMError as error:
            return f"error: {str(error)[:160]}"

    start = time.perf_counter()
    outcomes = await asyncio.gather(*(one(i) for i in range(n)))
    return {"requests": n, "wall_s": round(time.perf_counter() - start, 3), "outcomes": _count(outcomes),
            "parsed_share": round(outcomes.count("parsed") / n, 3)}


async def seeds(llm: LLM, max_tokens: int) -> dict[str, Any]:
    probe = chat_request(0, max_tokens, seed=4242)
    alone = (await llm.backend.complete(probe)).text
    crowd = [chat_request(i, max_tokens) for i in range(1, 31)]
    results = await asyncio.gather(llm.backend.complete(probe), *(llm.backend.complete(r) for r in crowd),
                                   llm.backend.complete(probe))
    first, last = results[0].text, results[-1].text
    return {"same_seed_same_text_in_one_batch": first == last, "same_seed_alone_vs_in_batch": alone == first}


def _count(items: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[str(item)] = counts.get(str(item), 0) + 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--model", help="a local model folder (e.g. Qwen2.5-0.5B-Instruct)")
    where.add_argument("--tiny", action="store_true", help="build a tiny random Llama here (mechanics only)")
    parser.add_argument("--out", default="benchmarks/vllm_check.json", help="results file (JSON; a .md beside it)")
    parser.add_argument("--requests", type=int, default=64, help="requests sent at once")
    parser.add_argument("--serial", type=int, default=16, help="of those, how many to time one at a time")
    parser.add_argument("--structured", type=int, default=32, help="structured requests sent at once")
    parser.add_argument("--max-tokens", type=int, default=128, help="max tokens per chat reply")
    parser.add_argument("--structured-max-tokens", type=int, default=400)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.5)
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args(argv)

    out = Path(args.out)
    report: dict[str, Any] = {"command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
                              "python": platform.python_version(), "gpu": gpu_name(), "gpu_memory_mib_before": gpu_memory_mib()}
    try:
        import vllm
    except ImportError:
        report["error"] = "vLLM is not installed (pip install 'rolenrules[vllm]'); nothing was measured"
        return _finish(out, report, 2)
    report["vllm"] = getattr(vllm, "__version__", "?")

    from rolenrules.llm.vllm_backend import VLLMBackend

    scratch = tempfile.TemporaryDirectory()
    model = str(tiny_model(Path(scratch.name) / "tiny")) if args.tiny else args.model
    report["model"] = "tiny random llama (hidden 256, 2 layers)" if args.tiny else model
    start = time.perf_counter()
    try:
        backend = VLLMBackend(model, gpu_memory_utilization=args.gpu_memory_utilization,
                              max_model_len=args.max_model_len, dtype=args.dtype)
    except Exception as error:  # a start failure is the finding
        report["error"] = f"engine did not start: {error}"
        return _finish(out, report, 1)
    report["start_s"] = round(time.perf_counter() - start, 1)
    report["gpu_memory_mib_after_start"] = gpu_memory_mib()
    report["structured_api"] = backend._params.structured[0] if backend._params.structured else None  # noqa: SLF001
    counting = Counting(backend)
    llm = LLM(counting, concurrency=max(args.requests, args.structured, 32), attempts=1)

    async def run_all() -> None:
        try:
            await batched(llm, counting, 8, args.max_tokens)  # warm-up (CUDA graphs, caches)
            report["batched"] = await batched(llm, counting, args.requests, args.max_tokens)
            report["serial"] = await serial(llm, min(args.serial, args.requests), args.max_tokens)
            report["batched_over_serial_requests_per_s"] = round(
                report["batched"]["requests_per_s"] / report["serial"]["requests_per_s"], 2)
            report["structured"] = await structured(llm, args.structured, args.structured_max_tokens)
            report["seeds"] = await seeds(llm, args.max_tokens)
        finally:
            closing = time.perf_counter()
            await llm.aclose()
            report["close_s"] = round(time.perf_counter() - closing, 1)

    code = 0
    try:
        asyncio.run(run_all())
    except Exception as error:  # what got measured before it is still written
        report["error"] = f"{type(error).__name__}: {error}"[:500]
        code = 1
    report["gpu_memory_mib_after_close"] = gpu_memory_mib()
    scratch.cleanup()
    return _finish(out, report, code)


def _finish(out: Path, report: dict[str, Any], code: int) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    lines = ["| figure | value |", "| --- | --- |"]
    for key, value in report.items():
        if isinstance(value, dict):
            lines += [f"| {key}.{k} | {v} |" for k, v in value.items()]
        else:
            lines.append(f"| {key} | {value} |")
    table = "\n".join(lines) + "\n"
    out.with_suffix(".md").write_text(table)
    print(table)
    return code


if __name__ == "__main__":  # vLLM may start its engine processes with spawn, which re-imports this file
    sys.exit(main())
