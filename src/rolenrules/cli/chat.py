"""`rnr chat`: one prompt, one reply — the quickest check of a teacher before a long run."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from rolenrules.cli._console import console, err_console
from rolenrules.cli._options import BaseUrl, CachePath, MaxRetries, Parallel, Timeout, build_llm
from rolenrules.console import setup_logging
from rolenrules.llm import Sampling, spec_forms
from rolenrules.records import Message


def chat(
    prompt: Annotated[str, typer.Argument(help="The user message.")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help=f"Model spec: {spec_forms()} (default: $RNR_MODEL, an OpenAI env, or local:smollm2).")] = None,
    system: Annotated[Optional[str], typer.Option("--system", "-s", help="System prompt.")] = None,
    base_url: BaseUrl = None,
    temperature: Annotated[float, typer.Option(min=0.0)] = 0.7,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0)] = 1.0,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1)] = 512,
    seed: Annotated[Optional[int], typer.Option()] = None,
    timeout: Timeout = 60.0,
    max_retries: MaxRetries = 4,
    cache: CachePath = None,
    parallel: Parallel = None,
    usage: Annotated[bool, typer.Option("--usage", help="Print token usage to stderr.")] = False,
) -> None:
    """Send one prompt (with an optional system prompt) and print the reply."""
    sampling = Sampling(temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed)
    setup_logging()
    llm = build_llm(model, base_url=base_url, timeout=timeout, max_retries=max_retries, cache=cache,
                    sampling=sampling, env_var="RNR_MODEL", flag="--model", parallel=parallel)
    messages = ([Message(role="system", content=system)] if system else []) + [Message(role="user", content=prompt)]
    result = llm.run(llm.chat(messages))
    console.print(result.text, markup=False, highlight=False)
    if usage:
        u = result.usage
        err_console.print(f"{llm.identity}: {u.prompt_tokens} prompt + {u.completion_tokens} completion tokens"
                          f"{' (cached)' if result.cached else ''}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
