"""The embedded model's engines: `local:smollm2` (llama.cpp) in parallel, and `hf:smollm2` (transformers).

One command reruns the measurements and writes them into `benchmarks/local_engine.md` (each section
that ran replaces its block there, and the parallel figures add a line to the history table):

    .venv/bin/python benchmarks/local_engine.py                    # parallel, prototypes, hf, parity (~5 min)
    .venv/bin/python benchmarks/local_engine.py --sections parallel # just single stream vs N in flight
    .venv/bin/python benchmarks/local_engine.py --no-write          # print, leave the .md alone

Sections:

* `parallel` — `LocalBackend` with `parallel=N` (default: one context per core): aggregate tokens/s
  with 2N requests in flight against the same requests one at a time, **alternating** in the same
  run (single, parallel, parallel, single, ...) so a shared machine's load hits both alike; the
  ratio is the figure (target P6: >= 1.7x on 2 cores). Replies are also compared (same seeds).
* `prototypes` — the two ways to decode several sequences at once with llama.cpp, minimal versions:
  a pool of contexts (one thread each, what `LocalBackend` does) and multi-sequence batches in one
  context through `llama_batch` (1 and 2 threads), each against its own single stream.
* `hf` — `hf:smollm2`: time and RSS to load the converted folder (in a fresh process), and
  `generate` throughput at batch 1/8/32 (every row decodes exactly `--hf-tokens`).
* `parity` — greedy replies of `hf:smollm2` and `local:smollm2` to the same prompts (short factual
  questions, and instructions under system prompts with rules): exact agreement, shared prefix.
* `structured`, `quality` — grammar-constrained output and the template's default system prompt
  (earlier measurements in the .md; opt-in).

Every figure comes with the load average (`uptime`) before and after its section.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

# As `rnr` does (rolenrules/cli/__init__.py): OpenMP threads sleep at barriers rather than spin.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pydantic import BaseModel, Field  # noqa: E402

from rolenrules.llm import LLM, ChatRequest, Sampling  # noqa: E402
from rolenrules.llm.local_backend import LocalBackend, default_parallel, resolve_model_path  # noqa: E402
from rolenrules.records import Message  # noqa: E402

HERE = Path(__file__).resolve().parent
REPORT = HERE / "local_engine.md"
SECTIONS = ("parallel", "prototypes", "hf", "parity", "structured", "quality")
HISTORY = "<!-- history rows (appended by benchmarks/local_engine.py) -->"

STORY_TOPICS = ["a dragon who learns to cook", "a lighthouse keeper", "a lost robot", "a river in winter",
                "two rival bakers", "a city under the sea", "a clockmaker's apprentice", "the last train home"]
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
SYSTEM_TASKS = [
    ("You are Ava, a travel assistant. Rules:\n1. Answer in one sentence.\n2. Never use emojis.",
     "Suggest a city to visit in spring."),
    ("You are a pirate tutor. Rules:\n1. Speak like a pirate.\n2. Keep answers under 30 words.",
     "Explain what a noun is."),
    ("You are a billing assistant for Acme. Rules:\n1. Only answer billing questions.\n2. Be polite.",
     "How do I update my credit card?"),
    ("You are Chef Leo. Rules:\n1. Reply in a numbered list.\n2. Mention one spice.",
     "How do I make tomato soup?"),
    ("You are a poet. Rules:\n1. Answer with a haiku.", "Describe the sea."),
    ("You are a math helper. Rules:\n1. Show the result first.\n2. Use no more than two sentences.",
     "What is 12 times 7?"),
    ("You are a support bot. Rules:\n1. Start with 'Hello!'.\n2. End with a question.",
     "My app crashes when I open it."),
    ("You are a history teacher. Rules:\n1. Answer in English.\n2. Mention a year.",
     "Who was Julius Caesar?"),
]


class RuleDraft(BaseModel):
    text: str = Field(min_length=1)
    category: Literal["format", "length", "style", "language", "content", "scope", "safety", "persona", "other"]


class RoleAndRules(BaseModel):
    role: str = Field(min_length=1)
    rules: list[RuleDraft] = Field(min_length=1)


def _msgs(user: str, system: str | None = None) -> list[Message]:
    return ([Message(role="system", content=system)] if system else []) + [Message(role="user", content=user)]


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _waits() -> dict[str, int]:
    """Per thread of this process: nanoseconds spent runnable but waiting for a CPU (Linux schedstat)."""
    waits = {}
    for stat in Path(f"/proc/{os.getpid()}/task").glob("*/schedstat"):
        try:
            waits[stat.parent.name] = int(stat.read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return waits


class _Clock:
    def __enter__(self) -> _Clock:
        self.wall, self.cpu, self._waits = time.perf_counter(), time.process_time(), _waits()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        self.cpu_wait = sum(max(0, w - self._waits.get(tid, 0)) for tid, w in _waits().items()) / 1e9


def _rate(tokens: int, clock: _Clock) -> dict[str, float]:
    # cores: CPU time of this process over wall time. cpu_wait_s: time this process's threads were
    # ready to run but no core was free — other processes' load, not contention inside rnr (a decode
    # step holds the GIL for ~2% of its time).
    return {"tokens": tokens, "seconds": round(clock.wall, 2), "tok_s": round(tokens / clock.wall, 1),
            "tok_per_cpu_s": round(tokens / max(clock.cpu, 1e-9), 1), "cores": round(clock.cpu / clock.wall, 2),
            "cpu_wait_s": round(clock.cpu_wait, 2)}


def _story_requests(count: int, max_tokens: int, offset: int = 0) -> list[ChatRequest]:
    return [ChatRequest(messages=_msgs(f"Write a long story about {STORY_TOPICS[(offset + i) % len(STORY_TOPICS)]}."),
                        sampling=Sampling(temperature=0.7, max_tokens=max_tokens, seed=offset + i))
            for i in range(count)]


# --- parallel: LocalBackend, single stream vs N in flight ----------------------------------------

def bench_parallel(parallel: int, max_tokens: int, rounds: int) -> dict[str, Any]:
    backend = LocalBackend("smollm2", parallel=parallel)
    out: dict[str, Any] = {"parallel": parallel, "threads_per_context": backend.model.n_threads,
                           "requests_in_flight": 2 * parallel, "max_tokens": max_tokens, "rounds": []}
    backend.complete_sync(ChatRequest(messages=_msgs("Hi"), sampling=Sampling(max_tokens=4, seed=0)))  # warm-up

    async def in_flight(requests: list[ChatRequest]) -> list[Any]:
        return list(await asyncio.gather(*(backend.complete(r) for r in requests)))

    same = True
    for index in range(rounds):
        requests = _story_requests(2 * parallel, max_tokens, offset=index * 2 * parallel)
        measured: dict[str, Any] = {"load_start": _load()}
        order = ("single", "parallel") if index % 2 == 0 else ("parallel", "single")
        replies: dict[str, list[str]] = {}
        for mode in order:
            with _Clock() as clock:
                results = ([backend.complete_sync(r) for r in requests] if mode == "single"
                           else asyncio.run(in_flight(requests)))
            measured[mode] = _rate(sum(r.usage.completion_tokens for r in results), clock)
            replies[mode] = [r.text for r in results]
        same = same and replies["single"] == replies["parallel"]
        measured["ratio"] = round(measured["parallel"]["tok_s"] / measured["single"]["tok_s"], 2)
        measured["load_end"] = _load()
        out["rounds"].append(measured)
        print(json.dumps({"parallel_round": index, **measured}), flush=True)
    asyncio.run(backend.aclose())
    out["contexts_made"] = backend.model.instances
    out["same_replies_as_serial"] = same
    for mode in ("single", "parallel"):
        out[f"{mode}_tok_s"] = round(statistics.median(r[mode]["tok_s"] for r in out["rounds"]), 1)
    out["ratio_median"] = round(statistics.median(r["ratio"] for r in out["rounds"]), 2)
    # Rounds where neither mode waited for a core more than 10% of its thread time: what the engine
    # does when it has the cores, as opposed to what a busy machine leaves it.
    quiet = [r for r in out["rounds"]
             if r["single"]["cpu_wait_s"] <= 0.1 * r["single"]["seconds"]
             and r["parallel"]["cpu_wait_s"] <= 0.1 * r["parallel"]["seconds"] * parallel]
    out["uncontended_rounds"] = len(quiet)
    out["ratio_uncontended"] = round(statistics.median(r["ratio"] for r in quiet), 2) if quiet else None
    # Tokens per CPU-second in flight over single stream: 1.0 means running N at once costs nothing extra.
    out["cpu_efficiency"] = round(statistics.median(r["parallel"]["tok_per_cpu_s"] / r["single"]["tok_per_cpu_s"]
                                                    for r in out["rounds"]), 2)
    return out


# --- prototypes: a pool of contexts vs multi-sequence batches in one context ----------------------

PROMPT = "<|im_start|>user\nWrite a long story about a dragon who learns to cook.<|im_end|>\n<|im_start|>assistant\n"


def _proto_pool(sequences: int, max_tokens: int) -> dict[str, Any]:
    """`sequences` Llama instances (1 thread each) over the same mmapped file, one Python thread each."""
    from concurrent.futures import ThreadPoolExecutor

    from llama_cpp import Llama

    path = str(resolve_model_path("smollm2"))
    pool = [Llama(model_path=path, n_ctx=1024, n_threads=1, n_threads_batch=1, verbose=False)
            for _ in range(sequences)]

    def one(llama: Any, seed: int) -> int:
        llama.reset()
        out = llama.create_completion(PROMPT, max_tokens=max_tokens, temperature=0.7, top_k=0, min_p=0.0,
                                      top_p=1.0, seed=seed)
        return int(out["usage"]["completion_tokens"])

    one(pool[0], 0)
    with _Clock() as single:
        tokens_single = sum(one(pool[0], seed) for seed in range(sequences))
    with ThreadPoolExecutor(sequences) as executor, _Clock() as together:
        tokens_together = sum(executor.map(one, pool, range(sequences)))
    for llama in pool:
        llama.close()
    return {"single": _rate(tokens_single, single), "together": _rate(tokens_together, together)}


def _proto_batch(sequences: int, max_tokens: int, threads: int) -> dict[str, Any]:
    """One context with `sequences` sequence ids: each step decodes one token of every sequence in
    one `llama_decode` call (llama.cpp's batch API), each sequence with its own sampler chain."""
    import llama_cpp
    from llama_cpp import Llama

    llama = Llama(model_path=str(resolve_model_path("smollm2")), n_ctx=512, n_threads=threads,
                  n_threads_batch=threads, verbose=False)
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = params.n_batch = 512 * sequences
    params.n_seq_max, params.n_threads, params.n_threads_batch = sequences, threads, threads
    params.kv_unified = False  # sequences share no prefix: separate KV streams attend faster
    ctx = llama_cpp.llama_init_from_model(llama._model.model, params)
    prompt = llama.tokenize(PROMPT.encode(), add_bos=False, special=True)
    batch = llama_cpp.llama_batch_init(512 * sequences, 0, 1)

    def put(index: int, token: int, position: int, seq: int, logits: bool) -> None:
        batch.token[index], batch.pos[index], batch.n_seq_id[index] = token, position, 1
        batch.seq_id[index][0], batch.logits[index] = seq, logits

    def run(count: int) -> int:
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
        batch.n_tokens = 0
        last = {}
        for seq in range(count):
            for position, token in enumerate(prompt):
                put(batch.n_tokens, token, position, seq, position == len(prompt) - 1)
                batch.n_tokens += 1
            last[seq] = batch.n_tokens - 1
        assert llama_cpp.llama_decode(ctx, batch) == 0
        samplers = []
        for seq in range(count):
            chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_temp(0.7))
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_dist(seq))
            samplers.append(chain)
        decoded = 0
        for step in range(max_tokens):
            batch.n_tokens = 0
            for seq in range(count):
                token = llama_cpp.llama_sampler_sample(samplers[seq], ctx, last[seq])
                put(batch.n_tokens, token, len(prompt) + step, seq, True)
                last[seq] = batch.n_tokens
                batch.n_tokens += 1
                decoded += 1
            assert llama_cpp.llama_decode(ctx, batch) == 0
        for chain in samplers:
            llama_cpp.llama_sampler_free(chain)
        return decoded

    run(1)
    with _Clock() as single:
        tokens_single = sum(run(1) for _ in range(sequences))
    with _Clock() as together:
        tokens_together = run(sequences)
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    llama.close()
    return {"single": _rate(tokens_single, single), "together": _rate(tokens_together, together)}


def bench_prototypes(sequences: int, max_tokens: int) -> list[dict[str, Any]]:
    variants = [("pool of contexts, 1 thread each", lambda: _proto_pool(sequences, max_tokens)),
                ("one context, multi-sequence batch, 1 thread", lambda: _proto_batch(sequences, max_tokens, 1)),
                ("one context, multi-sequence batch, 2 threads", lambda: _proto_batch(sequences, max_tokens, 2))]
    rows = []
    for name, run in variants:
        start = _load()
        measured = run()
        rows.append({"variant": name, "sequences": sequences, **measured,
                     "ratio": round(measured["together"]["tok_s"] / measured["single"]["tok_s"], 2),
                     "load_start": start, "load_end": _load()})
        print(json.dumps(rows[-1]), flush=True)
    return rows


# --- hf:smollm2 ------------------------------------------------------------------------------------

def _child_hf_load() -> None:
    """Run in a fresh process: import time, load time and RSS of hf:smollm2 from the cached folder."""
    started = time.perf_counter()
    # transformers imports model code lazily: import it here so "load" is the folder's load alone.
    import transformers.models.llama.modeling_llama  # noqa: F401
    from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast  # noqa: F401

    imported = time.perf_counter()
    from rolenrules.llm.hf_backend import load_hf_model

    load_hf_model("smollm2")
    loaded = time.perf_counter()
    status = Path("/proc/self/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) // 1024  # type: ignore[union-attr]
    print(json.dumps({"import_s": round(imported - started, 2), "load_s": round(loaded - imported, 2), "rss_mb": rss}))


def bench_hf(batches: list[int], max_tokens: int, threads: list[int]) -> dict[str, Any]:
    from rolenrules.llm.hf_models import pretrained_source

    with _Clock() as convert:
        folder = Path(pretrained_source("smollm2").ref)  # converts on first use
    marker = json.loads((folder / "rnr_source.json").read_text())
    out: dict[str, Any] = {"folder": str(folder), "conversion_s": marker.get("seconds"),
                           "resolve_s": round(convert.wall, 2), "load_start": _load()}
    child = subprocess.run([sys.executable, __file__, "--child-hf-load"], capture_output=True, text=True, check=True)
    out["fresh_process"] = json.loads(child.stdout.strip().splitlines()[-1])
    print(json.dumps(out), flush=True)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": f"Write a long story about {t}."}],
                                             tokenize=False, add_generation_prompt=True) for t in STORY_TOPICS]

    def run(size: int) -> dict[str, float]:
        enc = tokenizer([prompts[i % len(prompts)] for i in range(size)], return_tensors="pt", padding=True,
                        add_special_tokens=False)
        torch.manual_seed(0)
        with _Clock() as clock, torch.no_grad():
            # min_new_tokens: every row decodes exactly max_tokens, so the count is exact.
            model.generate(**enc, max_new_tokens=max_tokens, min_new_tokens=max_tokens, do_sample=True,
                           temperature=0.7, top_p=1.0, top_k=0, pad_token_id=tokenizer.pad_token_id)
        return _rate(size * max_tokens, clock)

    out["decode"] = []
    for count in threads:
        torch.set_num_threads(count)
        run(1)  # warm-up
        for size in batches:
            start = _load()
            out["decode"].append({"torch_threads": count, "batch": size, **run(size), "load_start": start,
                                  "load_end": _load()})
            print(json.dumps(out["decode"][-1]), flush=True)
    out["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY", "(unset)")
    return out


# --- parity: hf:smollm2 vs local:smollm2, greedy -----------------------------------------------------

def bench_parity(max_tokens: int) -> dict[str, Any]:
    from rolenrules.llm import make_llm

    prompts = ([(None, q) for q, _ in QA] + list(SYSTEM_TASKS))
    local = make_llm("local:smollm2", sampling=Sampling(temperature=0.0, max_tokens=max_tokens))
    hf = make_llm("hf:smollm2", sampling=Sampling(temperature=0.0, max_tokens=max_tokens))

    async def answers(llm: LLM) -> list[str]:
        results = await asyncio.gather(*(llm.chat(_msgs(user, system)) for system, user in prompts))
        return [r.text for r in results]

    start = _load()
    with _Clock() as local_clock:
        local_texts = local.run(answers(local))
    with _Clock() as hf_clock:
        hf_texts = hf.run(answers(hf))
    tokenizer = hf.backend.tokenizer
    rows = []
    for (system, user), a, b in zip(prompts, local_texts, hf_texts):
        ta, tb = tokenizer(a, add_special_tokens=False)["input_ids"], tokenizer(b, add_special_tokens=False)["input_ids"]
        shared = next((i for i, (x, y) in enumerate(zip(ta, tb)) if x != y), min(len(ta), len(tb)))
        rows.append({"system": system is not None, "user": user, "same": a == b, "shared_prefix_tokens": shared,
                     "local_tokens": len(ta), "hf_tokens": len(tb), "local": a, "hf": b})
    correct = {name: sum(bool(re.search(pattern, texts[i].lower())) for i, (_, pattern) in enumerate(QA))
               for name, texts in (("local", local_texts), ("hf", hf_texts))}
    out = {"prompts": len(rows), "max_tokens": max_tokens, "identical": sum(r["same"] for r in rows),
           "identical_qa": sum(r["same"] for r in rows if not r["system"]),
           "identical_system": sum(r["same"] for r in rows if r["system"]),
           "first_token_same": sum(r["shared_prefix_tokens"] > 0 for r in rows),
           "median_shared_prefix_tokens": statistics.median(r["shared_prefix_tokens"] for r in rows),
           "qa_correct": correct, "qa_questions": len(QA),
           "local_s": round(local_clock.wall, 1), "hf_s": round(hf_clock.wall, 1),
           "load_start": start, "load_end": _load(), "rows": rows}
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}), flush=True)
    return out


# --- structured output and quality (earlier measurements, opt-in) -----------------------------------

def bench_structured(calls: int, max_tokens: int) -> dict[str, Any]:
    backend = LocalBackend("smollm2")
    sampling = Sampling(temperature=0.7, max_tokens=max_tokens)
    llm = LLM(backend, concurrency=backend.parallel * 2, attempts=3, sampling=sampling)

    async def all_calls() -> int:
        async def one(seed: int) -> int:
            try:
                await llm.structured(_msgs(STRUCT_USER, STRUCT_SYSTEM), RoleAndRules, seed=seed)
                return 1
            except Exception:  # noqa: BLE001 - counted as a failure, which is what is measured
                return 0
        return sum(await asyncio.gather(*(one(seed) for seed in range(calls))))

    start = _load()
    with _Clock() as clock:
        valid = asyncio.run(all_calls())
    return {"calls": calls, "valid_through_llm_structured": valid, "seconds": round(clock.wall, 1),
            "tokens": llm.usage.completion_tokens, "load_start": start, "load_end": _load()}


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


# --- the report ----------------------------------------------------------------------------------------

def _marks(section: str) -> tuple[str, str]:
    return (f"<!-- {section}: begin (written by benchmarks/local_engine.py) -->", f"<!-- {section}: end -->")


def render(results: dict[str, Any]) -> dict[str, str]:
    """Markdown per section that ran, each headed by the run's date, machine, load and command."""
    busy = max(results["load_start"], results["load_end"]) > 1.5
    header = [f"#### Run {results['started']}", "",
             f"Machine: {results['machine']}; llama-cpp-python {results['versions'].get('llama_cpp_python')}, "
             f"torch {results['versions'].get('torch')}, transformers {results['versions'].get('transformers')}. "
             f"Load average (1 min) {results['load_start']} at the start, {results['load_end']} at the end"
             f"{' — **the machine was busy: absolute tok/s are low, ratios still compare like with like**' if busy else ''}.",
             f"Command: `{results['command']}`", ""]
    blocks: dict[str, list[str]] = {}
    if "parallel" in results:
        lines = blocks.setdefault("parallel", [])
        p = results["parallel"]
        lines += [f"**`local:smollm2`, single stream vs {p['requests_in_flight']} requests in flight** "
                  f"(`parallel={p['parallel']}`, {p['threads_per_context']} thread per context, "
                  f"{p['max_tokens']} new tokens per request, temperature 0.7, seeded; rounds alternate the order):", "",
                  "| round | load at start | single stream (tok/s) | in flight (tok/s) | ratio | cores used (single / in flight) | waited for a core, s (single / in flight) |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for i, r in enumerate(p["rounds"]):
            lines.append(f"| {i + 1} | {r['load_start']} | {r['single']['tok_s']} | {r['parallel']['tok_s']} | "
                         f"{r['ratio']}x | {r['single']['cores']} / {r['parallel']['cores']} | "
                         f"{r['single']['cpu_wait_s']} / {r['parallel']['cpu_wait_s']} |")
        lines += [f"| **median** | | **{p['single_tok_s']}** | **{p['parallel_tok_s']}** | **{p['ratio_median']}x** | | |", "",
                  "(cores used: this process's CPU time over wall time; with every context busy on an idle machine "
                  f"it is {p['parallel']}. Waited for a core: time its threads were ready to run while other "
                  "processes held the cores (Linux schedstat).)", "",
                  f"Rounds where neither mode waited for a core more than 10% of the time: {p['uncontended_rounds']} of "
                  f"{len(p['rounds'])}, median ratio in those: **{_times(p['ratio_uncontended'])}**. Tokens per "
                  f"CPU-second in flight relative to single stream: {p['cpu_efficiency']} (1.0 = running "
                  f"{p['parallel']} at once costs no extra CPU per token).", "",
                  f"Replies in flight identical to the serial ones (same seeds): **{p['same_replies_as_serial']}**; "
                  f"contexts made: {p['contexts_made']}.", ""]
    if "prototypes" in results:
        lines = blocks.setdefault("prototypes", [])
        lines += ["**Prototypes: several sequences at once in llama.cpp** (each against its own single stream, "
                  f"{results['prototypes'][0]['sequences']} sequences):", "",
                  "| variant | single stream (tok/s) | together (tok/s) | ratio | cores used together | load |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for r in results["prototypes"]:
            lines.append(f"| {r['variant']} | {r['single']['tok_s']} | {r['together']['tok_s']} | {r['ratio']}x | "
                         f"{r['together']['cores']} | {r['load_start']} → {r['load_end']} |")
        lines.append("")
    if "hf" in results:
        lines = blocks.setdefault("hf", [])
        h = results["hf"]
        fresh = h["fresh_process"]
        lines += [f"**`hf:smollm2`** (converted folder, float32): conversion {h['conversion_s']} s once; a fresh "
                  f"process loads it in {fresh['load_s']} s (after {fresh['import_s']} s importing torch, "
                  f"transformers and its Llama code), RSS {fresh['rss_mb']} MB. Decode, `generate` with every row decoding exactly "
                  f"{results['args']['hf_tokens']} tokens (OMP_WAIT_POLICY {h['omp_wait_policy']}):", "",
                  "| torch threads | batch | tok/s | tok per CPU-s | load |", "| --- | --- | --- | --- | --- |"]
        for r in h["decode"]:
            lines.append(f"| {r['torch_threads']} | {r['batch']} | {r['tok_s']} | {r['tok_per_cpu_s']} | "
                         f"{r['load_start']} → {r['load_end']} |")
        lines.append("")
    if "parity" in results:
        lines = blocks.setdefault("parity", [])
        q = results["parity"]
        lines += [f"**Parity, greedy, {q['max_tokens']} tokens**: `hf:smollm2` and `local:smollm2` gave identical "
                  f"replies to **{q['identical']} of {q['prompts']}** prompts ({q['identical_qa']} of {len(QA)} short "
                  f"questions, {q['identical_system']} of {len(SYSTEM_TASKS)} instructions under a system prompt); "
                  f"the first token agreed on {q['first_token_same']}; median shared prefix "
                  f"{q['median_shared_prefix_tokens']} tokens. Short questions answered right: local "
                  f"{q['qa_correct']['local']}/{len(QA)}, hf {q['qa_correct']['hf']}/{len(QA)}. "
                  f"Wall time for all prompts: local {q['local_s']} s, hf {q['hf_s']} s.", "",
                  "First diverging replies:", ""]
        for r in [r for r in q["rows"] if not r["same"]][:4]:
            cut = next((i for i, (x, y) in enumerate(zip(r["local"], r["hf"])) if x != y),
                       min(len(r["local"]), len(r["hf"])))
            lines.append(f"* {r['user']!r} — same for {r['shared_prefix_tokens']} tokens, then local "
                         f"…{r['local'][cut:cut + 60]!r} / hf …{r['hf'][cut:cut + 60]!r}")
        lines.append("")
    for key in ("structured", "quality"):
        if key in results:
            blocks[key] = [f"**{key}**: `{json.dumps(results[key])}`", ""]
    return {key: "\n".join(header + lines).rstrip() for key, lines in blocks.items()}


def _times(ratio: float | None) -> str:
    return f"{ratio}x" if ratio is not None else "n/a"


def history_row(results: dict[str, Any]) -> str | None:
    if "parallel" not in results:
        return None
    p = results["parallel"]
    return (f"| {results['started']} | {results['load_start']} → {results['load_end']} | {p['parallel']} | "
            f"{p['single_tok_s']} | {p['parallel_tok_s']} | {p['ratio_median']}x | "
            f"{_times(p['ratio_uncontended'])} ({p['uncontended_rounds']}/{len(p['rounds'])}) |")


def write_report(results: dict[str, Any]) -> None:
    """Replace each section that ran in local_engine.md (between its markers; appended at the end
    when the markers are missing), and add the parallel figures to the history table."""
    text = REPORT.read_text(encoding="utf-8")
    for section, body in render(results).items():
        begin, end = _marks(section)
        block = f"{begin}\n\n{body}\n\n{end}"
        if begin in text and end in text:
            text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
    row = history_row(results)
    if row and HISTORY in text:
        text = text.replace(HISTORY, row + "\n" + HISTORY, 1)  # oldest first
    REPORT.write_text(text, encoding="utf-8")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("llama_cpp_python", "torch", "transformers"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", nargs="*", default=["parallel", "prototypes", "hf", "parity"],
                        choices=["parallel", "prototypes", "hf", "parity", "structured", "quality"])
    parser.add_argument("--parallel", type=int, default=default_parallel(), help="contexts (default: one per core)")
    parser.add_argument("--max-tokens", type=int, default=128, help="new tokens per request (parallel, prototypes)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating single/parallel rounds")
    parser.add_argument("--hf-batches", type=int, nargs="*", default=[1, 8, 32])
    parser.add_argument("--hf-threads", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--hf-tokens", type=int, default=64)
    parser.add_argument("--parity-tokens", type=int, default=48)
    parser.add_argument("--calls", type=int, default=20, help="structured calls")
    parser.add_argument("--no-write", action="store_true", help="print only; leave local_engine.md as it is")
    parser.add_argument("--child-hf-load", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_hf_load:
        _child_hf_load()
        return
    results: dict[str, Any] = {
        "started": dt.datetime.now().strftime("%Y-%m-%d %H:%M"), "versions": _versions(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "command": "python benchmarks/local_engine.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "load_start": _load(), "args": vars(args)}
    if "parallel" in args.sections:
        results["parallel"] = bench_parallel(args.parallel, args.max_tokens, args.rounds)
    if "prototypes" in args.sections:
        results["prototypes"] = bench_prototypes(args.parallel, args.max_tokens)
    if "hf" in args.sections:
        results["hf"] = bench_hf(args.hf_batches, args.hf_tokens, args.hf_threads)
    if "parity" in args.sections:
        results["parity"] = bench_parity(args.parity_tokens)
    if "structured" in args.sections:
        results["structured"] = bench_structured(args.calls, 400)
    if "quality" in args.sections:
        results["quality"] = bench_quality()
    results["load_end"] = _load()
    if not args.no_write:
        write_report(results)
        print(f"wrote {REPORT}", flush=True)
    print("\n\n".join(render(results).values()))


if __name__ == "__main__":
    main()
