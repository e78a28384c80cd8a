"""Options shared by every command that talks to a model, and the client they build."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rolenrules.llm.registry import BASE_URLS_HELP
from rolenrules.llm.spec import build_llm

__all__ = ["BaseUrl", "CachePath", "MaxRetries", "Parallel", "Timeout", "build_llm"]

BaseUrl = Annotated[Optional[list[str]], typer.Option("--base-url", metavar="<str>", help=f"OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1; {BASE_URLS_HELP} (default: $OPENAI_BASE_URL).")]
Timeout = Annotated[float, typer.Option("--timeout", min=1.0, help="Per-request timeout in seconds.")]
MaxRetries = Annotated[int, typer.Option("--max-retries", min=0, help="Retries on 429/5xx/timeouts (exponential backoff, Retry-After honoured).")]
CachePath = Annotated[Optional[Path], typer.Option("--cache", help="SQLite request cache file (shared across runs if you like).")]
Parallel = Annotated[Optional[int], typer.Option("--parallel", min=1, help="local: models only: requests decoded at once, one llama.cpp context each (default: one per core, at most 8).")]
