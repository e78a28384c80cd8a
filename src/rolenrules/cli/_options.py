"""Options shared by every command that talks to a model, and the client they build."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rolenrules.cli._console import err_console
from rolenrules.llm import LLM, BackendOptions, Sampling, make_llm, resolve_default_spec
from rolenrules.llm.spec import TOY_NOTICE

BaseUrl = Annotated[Optional[str], typer.Option("--base-url", help="OpenAI-compatible server URL (default: $OPENAI_BASE_URL), e.g. http://127.0.0.1:8000/v1.")]
Concurrency = Annotated[int, typer.Option("--concurrency", min=1, help="Requests in flight at once.")]
Timeout = Annotated[float, typer.Option("--timeout", min=1.0, help="Per-request timeout in seconds.")]
MaxRetries = Annotated[int, typer.Option("--max-retries", min=0, help="Retries on 429/5xx/timeouts (exponential backoff, Retry-After honoured).")]
CachePath = Annotated[Optional[Path], typer.Option("--cache", help="SQLite request cache file (shared across runs if you like).")]


def build_llm(spec: str | None, *, base_url: str | None = None, timeout: float = 120.0, max_retries: int = 4,
              concurrency: int = 8, cache: Path | None = None, sampling: Sampling | None = None,
              env_var: str = "RNR_TEACHER", quiet: bool = False) -> LLM:
    """A client for `spec`, or for the default model (env, then OpenAI env, then embedded SmolLM2)."""
    if not spec:
        spec, embedded = resolve_default_spec(env_var)
        if embedded and not quiet:
            err_console.print(f"[yellow]note:[/] {TOY_NOTICE}", highlight=False)
    options = BackendOptions(base_url=base_url, timeout=timeout, max_retries=max_retries)
    return make_llm(spec, options, cache=cache, concurrency=concurrency, sampling=sampling)
