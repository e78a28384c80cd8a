"""`LLM`: a backend plus the request cache, bounded concurrency, structured output, usage and
timing (`LLM.stats()`, a `CallStats`).

Transport-level retries (429/5xx/timeouts, honouring Retry-After, with exponential backoff and
jitter, and failing over between servers) belong to each backend (`openai_backend`). This layer
retries replies that arrived but cannot be used: empty choices, truncated or schema-invalid JSON.
"""

from __future__ import annotations

import asyncio
import re
import time
import weakref
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from rolenrules.errors import validation_problems
from rolenrules.llm.base import Backend, ChatRequest, ChatResult, InvalidReplyError, LLMError, Sampling
from rolenrules.llm.cache import RequestCache, request_key
from rolenrules.llm.stats import CallStats
from rolenrules.records import Message, Usage

T = TypeVar("T", bound=BaseModel)

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def as_messages(messages: Sequence[Message | dict[str, str]]) -> list[Message]:
    return [m if isinstance(m, Message) else Message(**m) for m in messages]


#: Built once per model class: pydantic takes ~0.4 ms to build a small nested schema, as much CPU
#: as the rest of a structured call (benchmarks/llm_transport.md). Weak keys let classes made at
#: run time go away.
_SCHEMAS: weakref.WeakKeyDictionary[type[BaseModel], dict[str, Any]] = weakref.WeakKeyDictionary()


def schema_for(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema sent as `response_format` (and turned into a grammar by local backends).
    Shared between calls: treat it as read-only."""
    schema = _SCHEMAS.get(model)
    if schema is None:
        schema = _SCHEMAS[model] = model.model_json_schema()
    return schema


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
    """Chat completions through one backend, with a cache, a concurrency bound, usage totals and
    timing (`stats()`)."""

    def __init__(self, backend: Backend, *, cache: RequestCache | None = None, concurrency: int = 8,
                 attempts: int = 3, sampling: Sampling | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.backend = backend
        self.cache = cache
        self.attempts = max(1, attempts)
        self.sampling = sampling or Sampling()
        self._concurrency = concurrency
        self._semaphores: dict[int, asyncio.Semaphore] = {}
        # Plain counters: a pydantic Usage per call cost as much as the cache lookup.
        self._requests = self._cached = self._failed = self._prompt_tokens = self._completion_tokens = 0
        self._active = 0
        self._since = self._cpu_since = 0.0
        self._wall = self._cpu = self._server = 0.0

    @property
    def identity(self) -> str:
        return self.backend.identity

    @property
    def usage(self) -> Usage:
        """Tokens and requests of this client so far (cache hits counted apart)."""
        return Usage(requests=self._requests, prompt_tokens=self._prompt_tokens,
                     completion_tokens=self._completion_tokens, cached_requests=self._cached)

    def record(self, usage: Usage) -> None:
        """Count a request sent straight to the backend (the pre-run check) in this client's totals."""
        self._requests += 1
        self._prompt_tokens += usage.prompt_tokens
        self._completion_tokens += usage.completion_tokens

    def stats(self) -> CallStats:
        """Throughput and where the time went, for this client's calls so far."""
        wall, cpu = self._wall, self._cpu
        if self._active:  # a call is in progress: count the open span too
            wall += time.perf_counter() - self._since
            cpu += time.process_time() - self._cpu_since
        return CallStats(requests=self._requests, cached=self._cached, failed=self._failed,
                         prompt_tokens=self._prompt_tokens, completion_tokens=self._completion_tokens,
                         wall_s=wall, server_s=self._server, cpu_s=cpu)

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

    def _enter(self) -> None:
        if not self._active:
            self._since, self._cpu_since = time.perf_counter(), time.process_time()
        self._active += 1

    def _leave(self) -> None:
        self._active -= 1
        if not self._active:
            self._wall += time.perf_counter() - self._since
            self._cpu += time.process_time() - self._cpu_since
            if self.cache is not None:
                self.cache.flush()  # nothing in flight: commit the batch now rather than risk it idling

    async def _complete(self, request: ChatRequest) -> tuple[ChatResult, str | None]:
        """The reply (from the cache or the backend) and the request's cache key."""
        key = None
        if self.cache is not None:
            key = request_key(self.identity, request)
            hit = self.cache.get(self.identity, request, key=key)
            if hit is not None:
                self._cached += 1
                return hit, key
        async with self._semaphore():
            start = time.perf_counter()
            try:
                result = await self.backend.complete(request)
            finally:
                self._server += time.perf_counter() - start
        # Let the call woken by the slot just freed send its request before this reply is processed
        # (checked, stored, the next request built): slots refill first, so a burst of replies does
        # not leave the server idle while the client works through it.
        await asyncio.sleep(0)
        self._requests += 1
        self._prompt_tokens += result.usage.prompt_tokens
        self._completion_tokens += result.usage.completion_tokens
        return result, key

    def _store(self, request: ChatRequest, result: ChatResult, key: str | None) -> None:
        if self.cache is not None and not result.cached:
            self.cache.put(self.identity, request, result, key=key)

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
        self._enter()
        try:
            last: InvalidReplyError | None = None
            for attempt in range(self.attempts):
                attempt_request = _reseed(request, attempt)
                try:
                    result, key = await self._complete(attempt_request)
                except InvalidReplyError as error:
                    last = error
                    continue
                if result.text.strip():
                    self._store(attempt_request, result, key)
                    return result
                last = InvalidReplyError("empty reply")
            assert last is not None
            raise last
        except LLMError:
            self._failed += 1
            raise
        finally:
            self._leave()

    async def structured(self, messages: Sequence[Message | dict[str, str]], model: type[T], *,
                         sampling: Sampling | None = None, **overrides: Any) -> tuple[T, ChatResult]:
        """A reply validated against the pydantic `model`; invalid or truncated replies are retried,
        then raised as InvalidReplyError (callers record it as a failure, never crash)."""
        request = self._request(messages, sampling, overrides, schema_for(model), model.__name__)
        self._enter()
        try:
            last: InvalidReplyError | None = None
            for attempt in range(self.attempts):
                attempt_request = _reseed(request, attempt)
                try:
                    result, key = await self._complete(attempt_request)
                    if result.finish_reason == "length":
                        raise InvalidReplyError("structured reply was truncated (max_tokens reached)")
                    parsed = parse_json_reply(result.text, model)
                except InvalidReplyError as error:
                    last = error
                    continue
                self._store(attempt_request, result, key)
                return parsed, result
            assert last is not None
            raise InvalidReplyError(f"{last} (after {self.attempts} attempts)")
        except LLMError:
            self._failed += 1
            raise
        finally:
            self._leave()

    async def aclose(self) -> None:
        if self.cache is not None:
            self.cache.flush()
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

