"""`openai:MODEL` — any OpenAI-compatible server (OpenAI, vLLM, SGLang, Ollama, llama.cpp server),
or several servers of one model (`--base-url` repeated), balanced and failed over (`_endpoints`).

Two transports, the same behaviour:

* `aiohttp` (default): POST the JSON body, built once per request, straight to
  `BASE/chat/completions` over one aiohttp session, with the openai SDK's retry rules (`_retry`:
  timeouts, connection errors, 408/409/429/5xx, `Retry-After`, exponential backoff with jitter)
  and timeout. The SDK's own path validates and transforms every request's parameters and wraps
  the transport in several layers; against a local zero-latency server it costs several times the
  CPU per call of this one (benchmarks/llm_transport.md), and CPU is what limits a large run.
* `sdk`: the official SDK's `chat.completions.create`, with its own retries per server; kept as
  the reference the fault tests hold the default to, and as a fallback for servers that need
  something only the SDK does.

Either way, a transport failure on one server is retried on another healthy server before it is
reported, and the request cache never sees which server answered (the backend's identity is
`openai:MODEL`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from rolenrules.errors import ConfigError
from rolenrules.llm._encode import json_string
from rolenrules.llm._endpoints import Endpoint, EndpointPool
from rolenrules.llm._retry import retry_delay, should_retry
from rolenrules.llm.base import ChatRequest, ChatResult, InvalidReplyError, LLMError
from rolenrules.llm.preflight import check_url
from rolenrules.records import Usage

log = logging.getLogger("rolenrules.llm")

#: Placeholder key for local servers that need none (OpenAI's SDK insists on some value; so do some servers).
_NO_KEY = "sk-no-key-needed"
_DEFAULT_URL = "https://api.openai.com/v1"
TRANSPORTS = ("aiohttp", "sdk")
_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def base_urls(value: str | Sequence[str] | None) -> list[str]:
    """The servers `--base-url` names: URLs, or files listing one URL per line (blank lines and
    `#` comments skipped); none given means `$OPENAI_BASE_URL`, else OpenAI's API."""
    values = [value] if isinstance(value, str) else list(value or [])
    urls: list[str] = []
    for item in values:
        item = item.strip()
        if not item:  # `--base-url ""` or an empty YAML value: the default
            continue
        if "://" in item:
            urls.append(_checked_url(item, "--base-url"))
            continue
        path = Path(item).expanduser()
        if not path.is_file():
            raise ConfigError(f"--base-url {item!r}: neither an http(s) URL nor a file of URLs")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if line:
                urls.append(_checked_url(line, f"{path}:{number}"))
        if not urls:
            raise ConfigError(f"{path}: no server URLs in the file")
    if not urls:
        urls = [_checked_url(os.environ.get("OPENAI_BASE_URL") or _DEFAULT_URL, "$OPENAI_BASE_URL")]
    return list(dict.fromkeys(urls))  # the same server twice would only skew the balance


def _checked_url(url: str, where: str) -> str:
    try:
        check_url(url)
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None
    return url.rstrip("/")


class _Failure(Exception):
    """One attempt's transport outcome that is not a usable response."""

    def __init__(self, kind: str, status: int = 0, headers: Mapping[str, str] | None = None, detail: str = "",
                 retryable: bool = True) -> None:
        super().__init__(kind)
        self.kind = kind  # "connect", "timeout", "status"
        self.status = status
        self.headers = headers
        self.detail = detail
        self.retryable = retryable

    @property
    def reason(self) -> str:
        return f"HTTP {self.status}" if self.kind == "status" else self.kind

    @property
    def server_fault(self) -> bool:
        """A failure that says something about the server's health (not about this request)."""
        return self.kind in ("connect", "timeout") or self.status >= 500


class OpenAIBackend:
    def __init__(self, model: str, *, base_url: str | Sequence[str] | None = None, api_key: str | None = None,
                 timeout: float = 120.0, max_retries: int = 4, transport: str = "aiohttp") -> None:
        if not model:
            raise LLMError("openai: backend needs a model name, e.g. openai:gpt-4o-mini")
        if transport not in TRANSPORTS:
            raise LLMError(f"unknown transport {transport!r} (use {' or '.join(map(repr, TRANSPORTS))})")
        self.model = model
        self.identity = f"openai:{model}"
        self.pool = EndpointPool(base_urls(base_url))
        self.timeout = timeout
        self.max_retries = max_retries
        self.transport = transport
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key and any(urlsplit(url).hostname == "api.openai.com" for url in self.base_urls):
            # Found here, before any request: otherwise every call fails, each after its retries.
            raise ConfigError(f"{self.identity}: no API key for api.openai.com: set OPENAI_API_KEY, or give "
                              "--base-url for a local OpenAI-compatible server")
        self._key = key or _NO_KEY
        self._headers = {"Authorization": f"Bearer {self._key}", "Content-Type": "application/json",
                         "Accept": "application/json", "User-Agent": "rolenrules"}
        for header, var in (("OpenAI-Organization", "OPENAI_ORG_ID"), ("OpenAI-Project", "OPENAI_PROJECT_ID")):
            if os.environ.get(var):
                self._headers[header] = os.environ[var]
        # Connections per event loop: the same backend may serve several asyncio.run() calls.
        self._loops: dict[int, _LoopClients] = {}

    @property
    def base_urls(self) -> list[str]:
        return [e.url for e in self.pool.endpoints]

    @property
    def where(self) -> str:
        urls = self.base_urls
        return urls[0] if len(urls) == 1 else f"{len(urls)} servers ({', '.join(urls)})"

    # -- requests ----------------------------------------------------------------------------
    def _body(self, request: ChatRequest) -> bytes:
        """The JSON body, built once per request (retries and other servers reuse it)."""
        sampling = request.sampling
        payload: dict[str, Any] = {
            "model": self.model,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
        }
        if sampling.seed is not None:
            payload["seed"] = sampling.seed
        if request.json_schema is not None:
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.schema_name or "reply", "schema": request.json_schema},
            }
        # Messages last, spliced in from cached string literals (a long system prompt repeats across requests).
        messages = ",".join(f'{{"role":{json_string(m.role)},"content":{json_string(m.content)}}}'
                            for m in request.messages)
        head = _compact(payload)
        return f'{head[:-1]},"messages":[{messages}]}}'.encode()

    async def complete(self, request: ChatRequest) -> ChatResult:
        return await self._complete(request, self.max_retries)

    async def check(self, request: ChatRequest) -> ChatResult:
        """`complete` with one retry at most: the check before a run (`llm.preflight`) should fail in
        seconds when the server is down, not after the full backoff meant for a long run."""
        return await self._complete(request, min(1, self.max_retries))

    async def _complete(self, request: ChatRequest, max_retries: int) -> ChatResult:
        body = self._body(request)
        # The SDK transport retries inside each call; ours retries here.
        retries_left = max_retries if self.transport == "aiohttp" else 0
        retries_taken = 0
        failed_on: list[Endpoint] = []
        while True:
            endpoint = self.pool.pick(failed_on)
            try:
                data = await self._attempt(endpoint, body)
            except _Failure as failure:
                if failure.server_fault:
                    self.pool.failed(endpoint, failure.reason)
                    if endpoint not in failed_on:
                        failed_on.append(endpoint)
                    if failure.retryable and self.pool.untried(failed_on):
                        # Fail over at once, retries untouched: one dead server must not sink the request.
                        log.debug("%s: %s on %s; trying another server", self.identity, failure.reason, endpoint.url)
                        continue
                if not failure.retryable or retries_left <= 0:
                    raise self._error(failure, failed_on or [endpoint], retries_taken) from None
                delay = retry_delay(retries_taken, failure.headers)
                # Debug, not info: a long run retries often, and the summary counts the failures that stayed.
                log.debug("%s: retrying in %.2f s (retry %d of %d) after %s", self.identity, delay, retries_taken + 1,
                         max_retries, failure.reason)
                retries_left -= 1
                retries_taken += 1
                await asyncio.sleep(delay)
                continue
            self.pool.succeeded(endpoint)
            return self._result(data)

    async def _attempt(self, endpoint: Endpoint, body: bytes) -> Any:
        endpoint.in_flight += 1
        try:
            if self.transport == "aiohttp":
                return await self._post(endpoint, body)
            return await self._sdk_post(endpoint, body)
        finally:
            endpoint.in_flight -= 1

    async def _clients(self) -> _LoopClients:
        loop = asyncio.get_running_loop()
        clients = self._loops.get(id(loop))
        if clients is None or clients.loop is not loop:
            for key in [k for k, c in self._loops.items() if c.loop.is_closed()]:
                del self._loops[key]  # its connections were closed when that loop shut down
            clients = self._loops[id(loop)] = await _LoopClients.open(loop)
        return clients

    def _new_session(self) -> aiohttp.ClientSession:
        # SDK defaults: up to 1,000 connections, kept alive; one total timeout per attempt.
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000, limit_per_host=0),
                                     headers=self._headers, timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def _post(self, endpoint: Endpoint, body: bytes) -> Any:
        """One attempt on one server: the decoded JSON of a 200 reply, or a _Failure."""
        try:
            clients = self._loops.get(id(asyncio.get_running_loop())) or await self._clients()
            session = clients.session or clients.keep("session", self._new_session())
            async with session.post(endpoint.url + "/chat/completions", data=body) as response:
                raw = await response.read()
                status, headers = response.status, response.headers
        except asyncio.TimeoutError:
            raise _Failure("timeout") from None
        except (aiohttp.ClientError, OSError) as error:
            # A server that drops a connection mid-reply (a crash, a restart) counts as a connection failure.
            raise _Failure("connect", detail=type(error).__name__) from None
        if status >= 400:
            raise _Failure("status", status, headers, _error_detail(raw), retryable=should_retry(status, headers))
        if status >= 300:
            raise _Failure("status", status, headers, f"unexpected redirect ({status})", retryable=False)
        try:
            return json.loads(raw)
        except ValueError:
            raise InvalidReplyError(f"{self.identity}: malformed response body (JSONDecodeError)") from None

    async def _sdk_post(self, endpoint: Endpoint, body: bytes) -> Any:
        """One call through the openai SDK (which retries by itself) on one server."""
        import openai

        clients = await self._clients()
        client = clients.get(endpoint.url) or clients.keep(endpoint.url, openai.AsyncOpenAI(
            api_key=self._key, base_url=endpoint.url, timeout=self.timeout, max_retries=self.max_retries,
            http_client=openai.DefaultAioHttpClient(timeout=self.timeout)))
        try:
            response = await client.chat.completions.create(**json.loads(body))
        except openai.APIConnectionError as error:
            # The SDK's aiohttp transport reports a refused connection as a ConnectTimeout: look at the cause.
            refused = ("connect" in type(error.__cause__).__name__.lower()
                       or not isinstance(error, openai.APITimeoutError))
            raise _Failure("connect" if refused else "timeout") from None
        except openai.APIStatusError as error:
            headers = error.response.headers
            raise _Failure("status", error.status_code, headers, _sdk_detail(error),
                           retryable=should_retry(error.status_code, headers)) from None
        except (openai.APIResponseValidationError, json.JSONDecodeError, ValueError, TypeError) as error:
            raise InvalidReplyError(f"{self.identity}: malformed response body ({type(error).__name__})") from None
        if not isinstance(response, openai.BaseModel):
            raise InvalidReplyError(f"{self.identity}: malformed response body (not JSON)")
        return response.model_dump()

    def _result(self, data: Any) -> ChatResult:
        try:
            choices = data.get("choices")
            if not choices:
                raise InvalidReplyError(f"{self.identity}: response had no choices")
            choice = choices[0]
            message = choice.get("message") or {}
            text = message.get("content") or ""
            if not isinstance(text, str):
                raise TypeError("content is not a string")
            usage = Usage(requests=1)
            reported = data.get("usage")
            if reported:
                usage = Usage(requests=1, prompt_tokens=reported.get("prompt_tokens") or 0,
                              completion_tokens=reported.get("completion_tokens") or 0)
            return ChatResult(text=text, finish_reason=choice.get("finish_reason"), usage=usage)
        except (AttributeError, TypeError, ValueError, IndexError) as error:
            if isinstance(error, InvalidReplyError):
                raise
            raise InvalidReplyError(f"{self.identity}: malformed response body ({type(error).__name__})") from None

    def _error(self, failure: _Failure, tried: list[Endpoint], retries_taken: int) -> LLMError:
        where = tried[0].url if len(tried) == 1 else f"{len(tried)} servers ({', '.join(e.url for e in tried)})"
        if self.transport != "aiohttp":
            retries_taken = self.max_retries  # the SDK retried inside the call
        retries = f"{retries_taken} {'retry' if retries_taken == 1 else 'retries'}"
        if failure.kind in ("connect", "timeout"):
            cause = "unreachable (connection failed)" if failure.kind == "connect" else "timed out"
            return LLMError(f"{self.identity}: server at {where} is {cause} (gave up after {retries})")
        status = failure.status
        if status == 401:
            return LLMError(f"{self.identity}: the server at {where} rejected the API key (set OPENAI_API_KEY)")
        if status == 404:
            return LLMError(f"{self.identity}: not found at {where} ({failure.detail}); check the model name and "
                            "--base-url (it usually ends in /v1)")
        if failure.retryable:  # retried until the retries ran out
            return LLMError(f"{self.identity}: server at {where} kept failing with HTTP {status} after {retries}")
        return LLMError(f"{self.identity}: HTTP {status} from {where}: {failure.detail}")

    async def aclose(self) -> None:
        """Close this event loop's connections (those of a loop that has ended were closed with it)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        clients = self._loops.pop(id(loop), None)
        if clients is not None and clients.loop is loop:
            await clients.close()


class _LoopClients:
    """The HTTP clients one event loop uses, closed when `aclose` is called in that loop or, failing
    that, when the loop shuts down: `asyncio.run` finalises pending async generators before it
    closes the loop, and the generator held here closes the clients in its `finally`. (A
    generation run calls, then closes its clients in a second `asyncio.run`.)"""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.session: Any = None
        self._items: dict[str, Any] = {}
        self._guard: Any = None

    @classmethod
    async def open(cls, loop: asyncio.AbstractEventLoop) -> _LoopClients:
        clients = cls(loop)
        clients._guard = clients._hold()
        await clients._guard.__anext__()
        return clients

    async def _hold(self) -> Any:
        try:
            yield
        finally:
            await self._close_items()

    def get(self, name: str) -> Any:
        return self._items.get(name)

    def keep(self, name: str, client: Any) -> Any:
        self._items[name] = client
        if name == "session":
            self.session = client
        return client

    async def _close_items(self) -> None:
        items, self._items, self.session = list(self._items.values()), {}, None
        for client in items:
            await client.close()

    async def close(self) -> None:
        await self._guard.aclose()


def _error_detail(raw: bytes) -> str:
    """The server's error message (OpenAI's `{"error": {"message": ...}}` or a bare `message`)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return raw[:300].decode("utf-8", "replace")
    if isinstance(body, dict):
        inner = body.get("error")
        message = inner.get("message") if isinstance(inner, dict) else inner if isinstance(inner, str) else None
        message = message or body.get("message") or body.get("detail")
        if message:
            return str(message)[:300]
    return raw[:300].decode("utf-8", "replace")


def _sdk_detail(error: Any) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error")
        message = inner.get("message") if isinstance(inner, dict) else body.get("message")
        if message:
            return str(message)[:300]
    return str(error.message)[:300]
