"""Model specs (`openai:gpt-4o-mini`, `hf:./my-model`, `local:smollm2`, `vllm:MODEL`) to backends,
and the default model when none is configured. The kinds are the backend registry's
(`llm.registry.BACKENDS`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from rolenrules.errors import ConfigError
from rolenrules.llm.base import Backend, Sampling
from rolenrules.llm.cache import RequestCache
from rolenrules.llm.client import LLM
from rolenrules.llm.registry import BACKENDS, BackendOptions, spec_forms

__all__ = ["DEFAULT_LOCAL", "BackendOptions", "build_llm", "make_backend", "make_llm", "parse_spec",
           "resolve_default_spec", "toy_notice"]

log = logging.getLogger("rolenrules.llm")

DEFAULT_LOCAL = "local:smollm2"


def parse_spec(spec: str) -> tuple[str, str]:
    """`KIND:NAME` -> (kind, name), KIND a registered backend kind."""
    kind, sep, name = spec.partition(":")
    if not sep or kind not in BACKENDS or not name:
        raise ConfigError(f"bad model spec {spec!r}: expected KIND:NAME with KIND one of {', '.join(BACKENDS)} "
                          f"({spec_forms()})")
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


def toy_notice(flag: str, env_var: str) -> str:
    """What to say when the embedded model stands in for one the user did not name; `flag` and
    `env_var` are how this command names its model (`--teacher`/`RNR_TEACHER`, `--model`/`RNR_MODEL`)."""
    return ("using the embedded SmolLM2-135M model (offline, CPU): it makes toy-quality output. For real "
            f"output pass {flag} openai:MODEL with OPENAI_API_KEY, or --base-url for a vLLM/SGLang/Ollama/"
            f"llama.cpp server, or set {env_var}.")


def make_backend(spec: str, options: BackendOptions | None = None) -> Backend:
    """The backend a spec names, given the options its registry entry accepts."""
    kind, name = parse_spec(spec)
    entry = BACKENDS[kind]
    options = options or BackendOptions()
    if options.parallel is not None and "parallel" not in entry.accepts:
        raise ConfigError(f"--parallel sets the llama.cpp contexts of a local: model; {spec} is not one "
                          "(use --concurrency for requests in flight)")
    return entry.build(name, options)


def make_llm(spec: str, options: BackendOptions | None = None, *, cache: str | Path | RequestCache | None = None,
             concurrency: int = 8, attempts: int = 3, sampling: Sampling | None = None) -> LLM:
    """A ready client: backend from the spec, plus the request cache at `cache` (a path or an open cache)."""
    backend = make_backend(spec, options)
    if isinstance(cache, (str, Path)):
        cache = RequestCache(cache)
    return LLM(backend, cache=cache, concurrency=concurrency, attempts=attempts, sampling=sampling)


def build_llm(spec: str | None, *, base_url: str | Sequence[str] | None = None, timeout: float = 120.0,
              max_retries: int = 4, concurrency: int = 8, cache: str | Path | RequestCache | None = None,
              sampling: Sampling | None = None, env_var: str = "RNR_TEACHER", flag: str = "--teacher",
              quiet: bool = False, parallel: int | None = None, batch_size: int | None = None) -> LLM:
    """A client for `spec`, or for the default model (env, then OpenAI env, then embedded SmolLM2).
    `base_url` is one server or several of the same model (URLs, or files of URLs); `batch_size`
    applies to `hf:` models only (else a ConfigError).
    Falling back to the embedded model logs a warning naming `flag` and `env_var` (unless `quiet`)."""
    if not spec:
        spec, embedded = resolve_default_spec(env_var)
        if embedded and not quiet:
            log.warning("note: %s", toy_notice(flag, env_var))
    urls = base_url if base_url is None or isinstance(base_url, str) else tuple(base_url) or None
    if batch_size is not None and "batch_size" not in BACKENDS[parse_spec(spec)[0]].accepts:
        raise ConfigError(f"--batch-size sets the batch of an hf: model; {spec} is not one "
                          "(use --concurrency for requests in flight)")
    options = BackendOptions(base_url=urls, timeout=timeout, max_retries=max_retries, parallel=parallel,
                             **({"batch_size": batch_size} if batch_size is not None else {}))
    return make_llm(spec, options, cache=cache, concurrency=concurrency, sampling=sampling)
