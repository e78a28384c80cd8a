"""GGUF models in llama.cpp: a pool of contexts per file, prompts rendered with the file's own chat template.

A `Llama` object is not thread-safe and holds one sequence, so parallel requests each need their own:
a `LoadedModel` is a pool of independent `Llama` instances over the same file, created on demand
up to its capacity. The weights are memory-mapped, so the instances share them (each adds its KV
cache and compute buffers, about 110 MB at 4096 tokens of context for SmolLM2-135M); llama.cpp
releases the GIL while it decodes, so one Python thread per instance decodes in parallel.
Pools are cached by (path, n_ctx, n_threads), so tests and CLI commands share one load.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rolenrules.errors import ConfigError
from rolenrules.llm.base import LLMError

_GGUF_MAGIC = b"GGUF"
_CHATML_SYSTEM_OPEN = "<|im_start|>system\n"
_CHATML_CLOSE = "<|im_end|>\n"


@dataclass
class LoadedModel:
    """A GGUF file in llama.cpp: up to `capacity` independent contexts, handed out by `acquire()`.

    `llama` is the first instance; its vocabulary, metadata and tokenizer are read-only and safe to
    use from any thread. Decoding needs an instance of one's own: `with model.acquire() as llama`.
    """

    path: Path
    llama: Any
    formatter: Any
    load_seconds: float
    n_ctx: int
    n_threads: int | None
    capacity: int = 1
    closing_tokens: Any = None  # numpy bool mask over the vocabulary, built on first use
    _free: list[Any] = field(default_factory=list)
    _instances: list[Any] = field(default_factory=list)
    _creating: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _mask_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._instances.append(self.llama)
        self._free.append(self.llama)

    @property
    def context_tokens(self) -> int:
        # llama.cpp may round the context up; llama-cpp-python's token buffer keeps the size asked for.
        return min(self.n_ctx, int(self.llama.n_ctx()))

    @property
    def instances(self) -> int:
        return len(self._instances)

    def reserve(self, parallel: int) -> None:
        """Allow up to `parallel` contexts (never fewer than already allowed); they are made on demand."""
        with self._cond:
            self.capacity = max(self.capacity, parallel)
            self._cond.notify_all()

    @contextmanager
    def acquire(self) -> Iterator[Any]:
        """A `Llama` instance for this thread alone: a free one, a new one while under capacity,
        or the next one released."""
        with self._cond:
            while not self._free and len(self._instances) + self._creating >= self.capacity:
                self._cond.wait()
            llama = self._free.pop() if self._free else None
            if llama is None:
                self._creating += 1
        if llama is None:
            try:
                llama = _new_llama(self.path, n_ctx=self.n_ctx, n_threads=self.n_threads)
            except (ValueError, RuntimeError, OSError) as error:  # e.g. no memory for another KV cache
                raise LLMError(f"{self.path.name}: llama.cpp cannot make context {len(self._instances) + 1}: "
                               f"{str(error).splitlines()[0][:200]} (use a lower --parallel)") from None
            finally:
                with self._cond:
                    self._creating -= 1
                    if llama is not None:
                        self._instances.append(llama)
                    self._cond.notify_all()
        try:
            yield llama
        finally:
            with self._cond:
                self._free.append(llama)
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            for llama in self._instances:
                llama.close()
            self._instances.clear()
            self._free.clear()


_MODELS: dict[tuple[Path, int, int | None], LoadedModel] = {}
_MODELS_LOCK = threading.Lock()


@atexit.register
def _close_models() -> None:
    # Free the models while the interpreter is whole: llama-cpp-python's own __del__ runs during
    # shutdown, after the C bindings are gone, and prints a TypeError for every cached model.
    with _MODELS_LOCK:
        for model in _MODELS.values():
            model.close()
        _MODELS.clear()


def check_gguf_file(path: Path, spec: str) -> None:
    if not path.is_file():
        raise ConfigError(f"{spec}: no such GGUF file: {path}")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != _GGUF_MAGIC:
        raise ConfigError(f"{spec}: {path} is not a GGUF model file (it does not start with 'GGUF')")


def load_model(path: Path, *, n_ctx: int, n_threads: int | None, spec: str, parallel: int = 1) -> LoadedModel:
    """The llama.cpp model at `path` with room for `parallel` contexts, loaded on first use and
    cached for the process (one context is made now, the others when requests need them)."""
    key = (path, n_ctx, n_threads)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = _load(path, n_ctx=n_ctx, n_threads=n_threads, spec=spec)
        model = _MODELS[key]
    model.reserve(parallel)
    return model


def _new_llama(path: Path, *, n_ctx: int, n_threads: int | None) -> Any:
    from llama_cpp import Llama

    # The same thread count for prompt and decode: llama-cpp-python's default of every core for
    # the prompt spins on busy cores (see local_backend.default_threads).
    return Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads, verbose=False)


def _load(path: Path, *, n_ctx: int, n_threads: int | None, spec: str) -> LoadedModel:
    try:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    except ImportError as error:
        raise ConfigError(f"{spec}: the local: backend needs llama-cpp-python: pip install llama-cpp-python "
                          f"({error})") from None
    check_gguf_file(path, spec)
    started = time.perf_counter()
    try:
        llama = _new_llama(path, n_ctx=n_ctx, n_threads=n_threads)
    except (ValueError, RuntimeError, OSError) as error:
        raise ConfigError(f"{spec}: llama.cpp cannot load {path}: {str(error).splitlines()[0][:300]}") from None
    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        raise ConfigError(f"{spec}: {path} has no chat template (tokenizer.chat_template); "
                          "local: needs an instruction-tuned GGUF with a chat template")
    eos_id, bos_id = llama.token_eos(), llama.token_bos()
    formatter = Jinja2ChatFormatter(
        template=template,
        eos_token=llama._model.token_get_text(eos_id) if eos_id != -1 else "",
        bos_token=llama._model.token_get_text(bos_id) if bos_id != -1 else "",
        add_generation_prompt=True,
        stop_token_ids=[eos_id],
    )
    return LoadedModel(path=path, llama=llama, formatter=formatter, load_seconds=time.perf_counter() - started,
                       n_ctx=n_ctx, n_threads=n_threads)


def render_prompt(model: LoadedModel, messages: list[dict[str, str]], *,
                  keep_template_system: bool = False) -> tuple[str, list[str]]:
    """(prompt text, stop strings) for `messages` through the GGUF's chat template.

    A system message of ours takes the place of the template's default, which the template
    itself arranges (SmolLM2: only when the first message is not `system`). With no system message,
    a ChatML template like SmolLM2's still writes its default ("You are a helpful AI assistant named
    SmolLM, ...") unless `keep_template_system`: we drop that block, so the model sees the
    conversation we sent and nothing else (and on SmolLM2-135M Q4_1 answers simple questions
    better without it; benchmarks/local_engine.md).
    """
    rendered = model.formatter(messages=messages)
    prompt: str = rendered.prompt
    if not keep_template_system and not any(m["role"] == "system" for m in messages):
        prompt = _drop_injected_chatml_system(prompt, model.formatter.bos_token)
    stop = rendered.stop if isinstance(rendered.stop, list) else [rendered.stop] if rendered.stop else []
    return prompt, stop


def _drop_injected_chatml_system(prompt: str, bos: str) -> str:
    head = bos if bos and prompt.startswith(bos + _CHATML_SYSTEM_OPEN) else ""
    body = prompt[len(head):]
    if not body.startswith(_CHATML_SYSTEM_OPEN):
        return prompt
    end = body.find(_CHATML_CLOSE)
    if end < 0:
        return prompt
    return head + body[end + len(_CHATML_CLOSE):]


def grammar_compiles(model: LoadedModel, gbnf: str, root: str = "root") -> bool:
    """Whether llama.cpp accepts the grammar. Checked before use: llama-cpp-python adds a
    grammar sampler without checking it, and an invalid one crashes the process."""
    import llama_cpp

    sampler = llama_cpp.llama_sampler_init_grammar(model.llama._model.vocab, gbnf.encode("utf-8"),
                                                   root.encode("utf-8"))
    if not sampler:
        return False
    llama_cpp.llama_sampler_free(sampler)
    return True


#: Characters that only close JSON (string, array, object), possibly with spaces.
_CLOSERS = frozenset('"]} ')
#: Added to the logits of closing tokens once the budget runs low: enough to beat anything else
#: the grammar allows (logits of this model span about 30), finite so the grammar still decides.
_CLOSING_BOOST = 20.0


def closing_token_mask(model: LoadedModel) -> Any:
    """Vocabulary mask of tokens made only of JSON closers (`"`, `]`, `}`, spaces)."""
    with model._mask_lock:
        if model.closing_tokens is None:
            import numpy as np

            llama = model.llama
            mask = np.zeros(llama.n_vocab(), dtype=bool)
            for token in range(llama.n_vocab()):
                text = llama.detokenize([token]).decode("utf-8", errors="replace")
                mask[token] = bool(text.strip()) and set(text) <= _CLOSERS
            model.closing_tokens = mask
    return model.closing_tokens


def json_closing_processor(model: LoadedModel, budget: int, reserve: int) -> Any:
    """A llama-cpp-python logits processor that, in the last `reserve` tokens of `budget`,
    pushes the grammar towards closing the JSON (end the string, the list, the object).

    A grammar keeps every prefix valid but cannot make a 135M model stop: it may write list items
    or repeat a sentence inside a string until `max_tokens`. Without this, 5 of 12 seeded
    role-plus-rules replies at 400 tokens were truncated; with it, 12 of 12 closed (the last
    string cut short instead). Before the reserve the logits are untouched.
    """
    mask = closing_token_mask(model)
    start: list[int] = []

    def process(input_ids: Any, scores: Any) -> Any:
        if not start:
            start.append(len(input_ids))  # first call: the prompt is all there is
        if budget - (len(input_ids) - start[0]) > reserve:
            return scores
        boosted = scores.copy()
        boosted[mask] += _CLOSING_BOOST
        return boosted

    return process
