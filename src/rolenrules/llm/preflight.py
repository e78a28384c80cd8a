"""A check of each model before a run fans out: one cheap request, so a dead or misconfigured
server fails in seconds with one line instead of after minutes of retries on every unit of work."""

from __future__ import annotations

from urllib.parse import urlsplit

from rolenrules.llm.base import ChatRequest, InvalidReplyError, LLMError, Sampling
from rolenrules.llm.client import LLM
from rolenrules.records import Message

def check_url(value: str) -> None:
    """An OpenAI-compatible server URL is http(s)://HOST[:PORT][/path]; anything else raises ValueError
    at once, before a run folder is made or a request retried against it."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not a server URL (expected e.g. http://127.0.0.1:8000/v1)")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ValueError(f"{value!r} has a malformed port") from None


_PING = ChatRequest(messages=[Message(role="user", content="Reply with the word OK.")],
                    sampling=Sampling(temperature=0.0, max_tokens=4, seed=0))


async def preflight(*models: tuple[str, LLM]) -> None:
    """Send one short request to each distinct backend of these (name, client) pairs, bypassing the
    request cache (a cached answer proves nothing about the server). A reply that arrived but is
    unusable still shows the server is there; a failure raises `LLMError` naming the model's role.
    The request is counted in the client's usage."""
    seen: set[int] = set()
    for name, llm in models:
        if id(llm.backend) in seen:
            continue
        seen.add(id(llm.backend))
        # A backend may offer a quicker `check` (the OpenAI one retries once instead of --max-retries times).
        check = getattr(llm.backend, "check", None) or llm.backend.complete
        try:
            result = await check(_PING)
        except InvalidReplyError:
            continue
        except LLMError as error:
            raise LLMError(f"the {name} ({llm.identity}) failed its check request before the run: {error}") from None
        llm.record(result.usage)
