"""`openai:MODEL` — any OpenAI-compatible server (OpenAI, vLLM, SGLang, Ollama, llama.cpp server).

Uses the official SDK, whose retry loop already does what we need on 429/5xx/timeouts and
connection errors: exponential backoff with jitter, `Retry-After` honoured, a retry ceiling
(`max_retries`) and a per-request `timeout`. The transport is aiohttp: against a zero-latency
local server the SDK's default httpx transport was about 7x slower here (benchmarks/).
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit

import openai

from rolenrules.errors import ConfigError
from rolenrules.llm.base import ChatRequest, ChatResult, InvalidReplyError, LLMError
from rolenrules.llm.preflight import check_url
from rolenrules.records import Usage

#: Placeholder key for local servers that need none (the SDK insists on some value).
_NO_KEY = "sk-no-key-needed"


class OpenAIBackend:
    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 120.0, max_retries: int = 4, transport: str = "aiohttp") -> None:
        if not model:
            raise LLMError("openai: backend needs a model name, e.g. openai:gpt-4o-mini")
        self.model = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.identity = f"openai:{model}"
        if self.base_url is not None:
            try:
                check_url(self.base_url)
            except ValueError as error:
                raise ConfigError(f"{self.identity}: --base-url: {error}") from None
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key and (self.base_url is None or urlsplit(self.base_url).hostname == "api.openai.com"):
            # Found here, before any request: otherwise every call fails, each after its retries.
            raise ConfigError(f"{self.identity}: no API key for api.openai.com: set OPENAI_API_KEY, or give "
                              "--base-url for a local OpenAI-compatible server")
        key = key or _NO_KEY
        http_client: Any = None
        if transport == "aiohttp":
            http_client = openai.DefaultAioHttpClient(timeout=timeout)
        elif transport != "httpx":
            raise LLMError(f"unknown transport {transport!r} (use 'aiohttp' or 'httpx')")
        self._client = openai.AsyncOpenAI(api_key=key, base_url=self.base_url, timeout=timeout,
                                          max_retries=max_retries, http_client=http_client)

    @property
    def where(self) -> str:
        return self.base_url or "api.openai.com"

    async def complete(self, request: ChatRequest) -> ChatResult:
        return await self._complete(self._client, request)

    async def check(self, request: ChatRequest) -> ChatResult:
        """`complete` with one retry at most: the check before a run (`llm.preflight`) should fail in
        seconds when the server is down, not after the full backoff meant for a long run."""
        return await self._complete(self._client.with_options(max_retries=min(1, self._client.max_retries)), request)

    async def _complete(self, client: openai.AsyncOpenAI, request: ChatRequest) -> ChatResult:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": [m.model_dump() for m in request.messages],
            "temperature": request.sampling.temperature,
            "top_p": request.sampling.top_p,
            "max_tokens": request.sampling.max_tokens,
        }
        if request.sampling.seed is not None:
            kwargs["seed"] = request.sampling.seed
        if request.json_schema is not None:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.schema_name or "reply", "schema": request.json_schema},
            }
        try:
            response = await client.chat.completions.create(**kwargs)
        except openai.APIConnectionError as error:
            # The aiohttp transport reports a refused connection as a ConnectTimeout: look at the cause.
            connect_failed = "connect" in type(error.__cause__).__name__.lower() or not isinstance(
                error, openai.APITimeoutError)
            cause = "unreachable (connection failed)" if connect_failed else "timed out"
            raise LLMError(f"{self.identity}: server at {self.where} is {cause} "
                           f"(gave up after {client.max_retries} retries)") from None
        except openai.AuthenticationError:
            raise LLMError(f"{self.identity}: the server at {self.where} rejected the API key "
                           "(set OPENAI_API_KEY)") from None
        except openai.NotFoundError as error:
            raise LLMError(f"{self.identity}: not found at {self.where} ({_status_detail(error)}); "
                           "check the model name and --base-url (it usually ends in /v1)") from None
        except openai.APIStatusError as error:
            if error.status_code >= 500 or error.status_code == 429:
                raise LLMError(f"{self.identity}: server at {self.where} kept failing with HTTP "
                               f"{error.status_code} after {client.max_retries} retries") from None
            raise LLMError(f"{self.identity}: HTTP {error.status_code}: {_status_detail(error)}") from None
        except (openai.APIResponseValidationError, json.JSONDecodeError, ValueError, TypeError) as error:
            raise InvalidReplyError(f"{self.identity}: malformed response body ({type(error).__name__})") from None
        if not getattr(response, "choices", None):
            raise InvalidReplyError(f"{self.identity}: response had no choices")
        choice = response.choices[0]
        text = (choice.message.content if choice.message else None) or ""
        usage = Usage(requests=1)
        if response.usage is not None:
            usage = Usage(requests=1, prompt_tokens=response.usage.prompt_tokens or 0,
                          completion_tokens=response.usage.completion_tokens or 0)
        return ChatResult(text=text, finish_reason=choice.finish_reason, usage=usage)

    async def aclose(self) -> None:
        await self._client.close()


def _status_detail(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error")
        message = inner.get("message") if isinstance(inner, dict) else body.get("message")
        if message:
            return str(message)[:300]
    return str(error.message)[:300]
