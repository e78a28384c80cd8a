"""Model specs (`openai:gpt-4o-mini`, `hf:./my-model`, `local:smollm2`, `vllm:MODEL`) to backends,
and the default model when none is configured."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rolenrules.errors import ConfigError
from rolenrules.llm.base import Backend, Sampling
from rolenrules.llm.cache import RequestCache
from rolenrules.llm.client import LLM

KINDS = ("openai", "hf", "local", "vllm")
DEFAULT_LOCAL = "local:smollm2"
TOY_NOTICE = ("Using the embedded SmolLM2-135M model (offline, CPU): it makes toy-quality output. "
              "For real data point rnr at a teacher: --teacher openai:MODEL with OPENAI_API_KEY, or "
              "--base-url for a vLLM/SGLang/Ollama/llama.cpp server, or set RNR_TEACHER.")


@dataclass(frozen=True)
class BackendOptions:
    base_url: str | None = None
    api_key: str | None = None
    timeout: float = 120.0
    max_retries: int = 4
    transport: str = "aiohttp"
    batch_size: int = 8
    #: local: only — llama.cpp contexts decoding at once (default: one per core, at most 8).
    parallel: int | None = None


def parse_spec(spec: str) -> tuple[str, str]:
    kind, sep, name = spec.partition(":")
    if not sep or kind not in KINDS or not name:
        raise ConfigError(f"bad model spec {spec!r}: expected KIND:NAME with KIND one of {', '.join(KINDS)} "
                          "(e.g. openai:gpt-4o-mini, hf:Qwen/Qwen2.5-0.5B-Instruct, local:smollm2)")
    return kind, name


def resolve_default_spec(env_var: str = "RNR_TEACHER") -> tuple[str, bool]:
    """The model to use when none was given: `$env_var`, then `RNR_MODEL`, then an OpenAI-compatible
    server when `OPENAI_API_KEY` or `OPENAI_BASE_URL` is set, then the embedded model.
    Returns (spec, is_embedded_default)."""
    for var in (env_var, "RNR_MODEL"):
        if os.environ.get(var):
            return os.environ[var], False
    if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
        return "openai:" + os.environ.get("RNR_OPENAI_MODEL", "gpt-4o-mini"), False
    return DEFAULT_LOCAL, True


def make_backend(spec: str, options: BackendOptions | None = None) -> Backend:
    options = options or BackendOptions()
    kind, name = parse_spec(spec)
    if options.parallel is not None and kind != "local":
        raise ConfigError(f"--parallel sets the llama.cpp contexts of a local: model; {spec} is not one "
                          "(use --concurrency for requests in flight)")
    if kind == "openai":
        from rolenrules.llm.openai_backend import OpenAIBackend

        return OpenAIBackend(name, base_url=options.base_url, api_key=options.api_key, timeout=options.timeout,
                             max_retries=options.max_retries, transport=options.transport)
    if kind == "hf":
        from rolenrules.llm.hf_backend import HFBackend

        return HFBackend(name, batch_size=options.batch_size)
    if kind == "local":
        from rolenrules.llm.local_backend import LocalBackend

        return LocalBackend(name, parallel=options.parallel)
    from rolenrules.llm.vllm_backend import VLLMBackend

    return VLLMBackend(name)


def make_llm(spec: str, options: BackendOptions | None = None, *, cache: str | Path | RequestCache | None = None,
             concurrency: int = 8, attempts: int = 3, sampling: Sampling | None = None) -> LLM:
    """A ready client: backend from the spec, plus the request cache at `cache` (a path or an open cache)."""
    backend = make_backend(spec, options)
    if isinstance(cache, (str, Path)):
        cache = RequestCache(cache)
    return LLM(backend, cache=cache, concurrency=concurrency, attempts=attempts, sampling=sampling)


def build_llm(spec: str | None, *, base_url: str | None = None, timeout: float = 120.0, max_retries: int = 4,
              concurrency: int = 8, cache: str | Path | RequestCache | None = None, sampling: Sampling | None = None,
              env_var: str = "RNR_TEACHER", quiet: bool = False, parallel: int | None = None) -> LLM:
    """A client for `spec`, or for the default model (env, then OpenAI env, then embedded SmolLM2)."""
    if not spec:
        spec, embedded = resolve_default_spec(env_var)
        if embedded and not quiet:
            from rolenrules.console import err_console

            err_console.print(f"[yellow]note:[/] {TOY_NOTICE}", highlight=False)
    options = BackendOptions(base_url=base_url, timeout=timeout, max_retries=max_retries, parallel=parallel)
    return make_llm(spec, options, cache=cache, concurrency=concurrency, sampling=sampling)
