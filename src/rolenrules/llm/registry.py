"""The registry of model backends: one entry per spec kind (`openai:`, `hf:`, `local:`, `vllm:`).

An entry says which class implements the kind (`module:Class`, imported only when a spec of that
kind is built, so `rnr --help` loads no torch, llama.cpp or vLLM), which `BackendOptions` the
class takes as keyword arguments, and the help text the CLI and error messages show. Spec
parsing, `make_backend`, the CLI help and the lm-eval wrapper all read `BACKENDS`; nothing else
lists the kinds. A new backend is one module with a class that follows `llm.base.Backend`, plus
one entry below (docs/extending.md).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Optional

from pydantic import BeforeValidator

from rolenrules.errors import ConfigError

if TYPE_CHECKING:
    from rolenrules.llm.base import Backend


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


#: A config field of server URLs: a list, `--base-url` repeated on the command line; a single value
#: is still accepted (YAML `base_url: http://...`). Items that are not URLs name files of URLs.
BaseUrls = Annotated[Optional[list[str]], BeforeValidator(_one_or_many)]
BASE_URLS_HELP = ("repeat it for several servers of the same model (requests go to the least busy; one that "
                  "keeps failing is benched a while), or name a file with one URL per line")


@dataclass(frozen=True)
class BackendOptions:
    """Settings that apply to some backends. Each backend declares the ones it takes (its entry's
    `accepts`) and receives only those, so a setting another backend needs (e.g. `--base-url` while
    the judge is `local:`) is ignored by declaration, not by special cases."""

    #: One OpenAI-compatible server URL, or several serving the same model (balanced, failed over);
    #: an entry that is not a URL names a file listing one URL per line.
    base_url: str | tuple[str, ...] | None = None
    api_key: str | None = None
    timeout: float = 120.0
    max_retries: int = 4
    #: `aiohttp` (direct, the default) or `sdk` (the openai SDK's client), see `llm.openai_backend`.
    transport: str = "aiohttp"
    batch_size: int = 8
    #: llama.cpp (`local:`): contexts decoding at once (default: one per core, at most 8).
    parallel: int | None = None
    #: vLLM engine (`vllm:`): GPUs one model is split over.
    tensor_parallel_size: int = 1
    #: vLLM engine: share of each GPU's memory for weights and KV cache.
    gpu_memory_utilization: float = 0.9
    #: vLLM engine: context length (prompt + reply); None is the model's own.
    max_model_len: int | None = None
    #: vLLM engine: weight dtype ("auto", "bfloat16", "float16", ...).
    dtype: str = "auto"


_OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(BackendOptions))


@dataclass(frozen=True)
class BackendEntry:
    """One spec kind: `kind:NAME` builds `target(NAME, **accepted options)`."""

    kind: str
    #: The implementing class as `module:Class`; imported on first use.
    target: str
    #: What runs, for help text.
    help: str
    #: The spec forms a user writes, e.g. ("local:smollm2", "local:FILE.gguf").
    forms: tuple[str, ...]
    #: `BackendOptions` fields passed to the class as keyword arguments.
    accepts: tuple[str, ...] = ()
    #: lm-evaluation-harness's `--model` that loads this kind in-process (`pretrained=NAME`), if any.
    lm_eval: str | None = None

    def __post_init__(self) -> None:
        unknown = set(self.accepts) - _OPTION_NAMES
        if unknown:
            raise ValueError(f"backend {self.kind!r} accepts unknown options {sorted(unknown)}")

    def build(self, name: str, options: BackendOptions) -> Backend:
        module, _, attr = self.target.partition(":")
        backend_class = getattr(importlib.import_module(module), attr)
        return backend_class(name, **{key: getattr(options, key) for key in self.accepts})  # type: ignore[no-any-return]


BACKENDS: dict[str, BackendEntry] = {}


def register_backend(entry: BackendEntry) -> BackendEntry:
    """Add (or replace) a spec kind; also the hook for backends defined outside this package."""
    BACKENDS[entry.kind] = entry
    return entry


register_backend(BackendEntry(
    "openai", "rolenrules.llm.openai_backend:OpenAIBackend", forms=("openai:NAME",),
    help="OpenAI or any compatible server (vLLM, SGLang, Ollama) at --base-url (repeat it for several servers)",
    accepts=("base_url", "api_key", "timeout", "max_retries", "transport")))
register_backend(BackendEntry(
    "hf", "rolenrules.llm.hf_backend:HFBackend", forms=("hf:ID_OR_PATH",),
    help="transformers in this process: a local folder, smollm2 (the embedded model), a .gguf file or a hub id",
    accepts=("batch_size",), lm_eval="hf"))
register_backend(BackendEntry(
    "local", "rolenrules.llm.local_backend:LocalBackend", forms=("local:smollm2", "local:FILE.gguf"),
    help="llama.cpp in this process on CPU: embedded SmolLM2-135M or a GGUF file (--parallel N at once)",
    accepts=("parallel",)))
register_backend(BackendEntry(
    "vllm", "rolenrules.llm.vllm_backend:VLLMBackend", forms=("vllm:NAME",),
    help="vLLM in this process (GPU; pip install 'rolenrules[vllm]')", lm_eval="vllm",
    accepts=("tensor_parallel_size", "gpu_memory_utilization", "max_model_len", "dtype")))


def backend_entry(kind: str) -> BackendEntry:
    entry = BACKENDS.get(kind)
    if entry is None:
        raise ConfigError(f"unknown model kind {kind!r}: registered kinds are {', '.join(BACKENDS)}")
    return entry


def spec_forms(kinds: Iterable[str] | None = None) -> str:
    """The spec forms of `kinds` (default: every registered kind) for help text:
    `openai:NAME, hf:ID_OR_PATH, local:smollm2, ...`."""
    chosen = BACKENDS if kinds is None else {k: BACKENDS[k] for k in kinds}
    return ", ".join(form for entry in chosen.values() for form in entry.forms)
