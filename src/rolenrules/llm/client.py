"""`LLM`: a backend plus the request cache, bounded concurrency, structured output and usage.

Transport-level retries (429/5xx/timeouts, honouring Retry-After, with exponential backoff and
jitter) belong to each backend (the OpenAI SDK does them). This layer retries replies that
arrived but cannot be used: empty choices, truncated or schema-invalid JSON.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from rolenrules.errors import validation_problems
from rolenrules.llm.base import Backend, ChatRequest, ChatResult, InvalidReplyError, Sampling
from rolenrules.llm.cache import RequestCache
from rolenrules.records import Message, Usage

T = TypeVar("T", bound=BaseModel)

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def as_messages(messages: Sequence[Message | dict[str, str]]) -> list[Message]:
    return [m if isinstance(m, Message) else Message(**m) for m in messages]


def schema_for(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema sent as `response_format` (and turned into a grammar by local backends)."""
    return model.model_json_schema()


def parse_json_reply(text: str, model: type[T]) -> T:
    """Validate a structured reply. Tolerates a markdown fence or prose around one JSON object
    (servers without schema enforcement do that); anything else raises InvalidReplyError."""
    candidate = text.strip()
    fenced = _FENCE.match(candidate)
    if fenced:
        candidate = fenced.group(1)
    try:
        return model.model_validate_json(candidate)
    except ValidationError as first_error:
        start, end = candidate.find("{"), candidate.rfind("}")
        if 0 <= start < end:
            try:
                return model.model_validate_json(candidate[start : end + 1])
            except ValidationError:
                pass
        raise InvalidReplyError(f"reply does not match schema {model.__name__}: {_short(first_error)}") from None


def _short(error: ValidationError) -> str:
    field, message = validation_problems(error)[0]
    return f"{field or '<root>'}: {message}"


class LLM:
    """Chat completions through one backend, with a cache, a concurrency bound and usage totals."""

    def __init__(self, backend: Backend, *, cache: RequestCache | None = None, concurrency: int = 8,
                 attempts: int = 3, sampling: Sampling | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.backend = backend
        self.cache = cache
        self.attempts = max(1, attempts)
        self.sampling = sampling or Sampling()
        self.usage = Usage()
        self._concurrency = concurrency
        self._semaphores: dict[int, asyncio.Semaphore] = {}

    @property
    def identity(self) -> str:
        return self.backend.identity

    def sibling(self) -> LLM:
        """A client on the same backend, cache and concurrency bound, with its own usage totals
        (e.g. the judge when it is the teacher model)."""
        twin = LLM(self.backend, cache=self.cache, concurrency=self._concurrency, attempts=self.attempts,
                   sampling=self.sampling)
        twin._semaphores = self._semaphores
        return twin

    def _semaphore(self) -> asyncio.Semaphore:
        # One semaphore per event loop: the same LLM may serve several asyncio.run() calls.
        loop_id = id(asyncio.get_running_loop())
        if loop_id not in self._semaphores:
            self._semaphores[loop_id] = asyncio.Semaphore(self._concurrency)
        return self._semaphores[loop_id]

    async def _complete(self, request: ChatRequest) -> ChatResult:
        if self.cache is not None:
            hit = self.cache.get(self.identity, request)
            if hit is not None:
                self.usage = self.usage.add(Usage(cached_requests=1))
                return hit
        async with self._semaphore():
            result = await self.backend.complete(request)
        self.usage = self.usage.add(result.usage.model_copy(update={"requests": 1}))
        return result

    def _request(self, messages: Sequence[Message | dict[str, str]], sampling: Sampling | None,
                 overrides: dict[str, Any], schema: dict[str, Any] | None = None,
                 schema_name: str | None = None) -> ChatRequest:
        base = sampling or self.sampling
        if overrides:
            base = base.model_copy(update={k: v for k, v in overrides.items() if v is not None})
        return ChatRequest(messages=as_messages(messages), sampling=base, json_schema=schema, schema_name=schema_name)

    async def chat(self, messages: Sequence[Message | dict[str, str]], *, sampling: Sampling | None = None,
                   **overrides: Any) -> ChatResult:
        """A free-text reply. Empty replies are retried; after `attempts` the error is raised."""
        request = self._request(messages, sampling, overrides)
        last: InvalidReplyError | None = None
        for attempt in range(self.attempts):
            attempt_request = _reseed(request, attempt)
            try:
                result = await self._complete(attempt_request)
            except InvalidReplyError as error:
                last = error
                continue
            if result.text.strip():
                if self.cache is not None and not result.cached:
                    self.cache.put(self.identity, attempt_request, result)
                return result
            last = InvalidReplyError("empty reply")
        assert last is not None
        raise last

    async def structured(self, messages: Sequence[Message | dict[str, str]], model: type[T], *,
                         sampling: Sampling | None = None, **overrides: Any) -> tuple[T, ChatResult]:
        """A reply validated against the pydantic `model`; invalid or truncated replies are retried,
        then raised as InvalidReplyError (callers record it as a failure, never crash)."""
        request = self._request(messages, sampling, overrides, schema_for(model), model.__name__)
        last: InvalidReplyError | None = None
        for attempt in range(self.attempts):
            attempt_request = _reseed(request, attempt)
            try:
                result = await self._complete(attempt_request)
                if result.finish_reason == "length":
                    raise InvalidReplyError("structured reply was truncated (max_tokens reached)")
                parsed = parse_json_reply(result.text, model)
            except InvalidReplyError as error:
                last = error
                continue
            if self.cache is not None and not result.cached:
                self.cache.put(self.identity, attempt_request, result)
            return parsed, result
        assert last is not None
        raise InvalidReplyError(f"{last} (after {self.attempts} attempts)")

    async def aclose(self) -> None:
        await self.backend.aclose()

    def run(self, coro: Any) -> Any:
        """Run a coroutine of this client to completion from synchronous code, then close it."""
        async def _go() -> Any:
            try:
                return await coro
            finally:
                await self.aclose()
        return asyncio.run(_go())


def _reseed(request: ChatRequest, attempt: int) -> ChatRequest:
    """A retry after an unusable reply must not ask the identical question of a seeded or
    cached backend: shift the seed on later attempts (attempt 0 is the request as given)."""
    if attempt == 0:
        return request
    seed = (request.sampling.seed or 0) + 1000 * attempt
    return request.model_copy(update={"sampling": request.sampling.model_copy(update={"seed": seed})})

