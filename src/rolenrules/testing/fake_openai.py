"""A local OpenAI-compatible chat server for tests, benchmarks and dry runs.

It speaks `POST /v1/chat/completions` (and `GET /v1/models`) on 127.0.0.1, answers from a
script (a function of the request), adds latency, and injects faults (`FAULTS`): 429 with
Retry-After, 500, stalls, malformed JSON bodies, empty choices, client errors — drawn at random
or in a fixed sequence. The real client code talks to it over HTTP, exactly as it would to vLLM
or OpenAI. `stop()` closes the port and drops the connections in flight, as a crashed server would.

    with FakeOpenAIServer(reply=lambda req: "hello", faults=Faults(rate=0.3)) as server:
        ...  # server.base_url == "http://127.0.0.1:PORT/v1"; server.requests counts calls
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Reply = Callable[[dict[str, Any]], "str | dict[str, Any]"]


#: The fault kinds: HTTP 429 with `Retry-After: retry_after`; 429 asking for a 300 s wait (more than
#: any client should wait); 500; 500 with `x-should-retry: false`; 400, 401 and 404 with an OpenAI
#: error body; a stall of `stall_seconds`; a truncated JSON body; a reply with no choices.
FAULTS = ("429", "429-long", "500", "500-no-retry", "400", "401", "404", "stall", "malformed", "empty")


@dataclass
class Faults:
    """Fault injection: the first requests get the kinds in `sequence` (None: a good reply), in
    order; after that each request fails with probability `rate`, the kind drawn by `weights`."""

    rate: float = 0.0
    weights: dict[str, float] = field(default_factory=lambda: {"429": 1, "500": 1})
    retry_after: float = 0.05
    stall_seconds: float = 30.0
    seed: int = 0
    sequence: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        unknown = {k for k in [*self.weights, *self.sequence] if k is not None and k not in FAULTS}
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(FAULTS)}")


def schema_instance(schema: dict[str, Any], root: dict[str, Any] | None = None, path: str = "") -> Any:
    """A deterministic value that validates against a (pydantic-generated) JSON schema."""
    root = root or schema
    if "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        return schema_instance(root.get("$defs", {})[name], root, path)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return schema_instance(options[0], root, path)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema and schema.get("type") != "object":
        return schema["default"]
    kind = schema.get("type", "object")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: schema_instance(v, root, f"{path}.{k}") for k, v in props.items()}
    if kind == "array":
        count = max(1, schema.get("minItems", 1))
        return [schema_instance(schema.get("items", {}), root, f"{path}[{i}]") for i in range(count)]
    if kind == "string":
        text = f"text for {path.strip('.') or 'value'}"
        return text.ljust(schema.get("minLength", 0), "x")
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 0.5))
    if kind == "boolean":
        return True
    return None


def default_reply(request: dict[str, Any]) -> str | dict[str, Any]:
    fmt = request.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return json.dumps(schema_instance(fmt["json_schema"]["schema"]))
    users = [m["content"] for m in request.get("messages", []) if m.get("role") == "user"]
    return f"Reply to: {users[-1] if users else ''}"


class FakeOpenAIServer:
    def __init__(self, reply: Reply | None = None, *, latency: float = 0.0, faults: Faults | None = None,
                 model: str = "fake-model") -> None:
        self.reply = reply or default_reply
        self.latency = latency
        self.faults = faults or Faults()
        self.model = model
        self.requests = 0  # chat requests received, faulty ones included
        self.log: list[dict[str, Any]] = []  # request bodies that got a good reply
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests handled at once (to check client concurrency bounds)
        self._rng = random.Random(self.faults.seed)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeOpenAIServer:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_post("/v1/chat/completions", self._chat)
            app.router.add_get("/v1/models", self._models)
            # A short shutdown: stop() must drop requests in flight (a stall, a crash), not wait for them.
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="fake-openai", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake OpenAI server did not start")
        return self

    def stop(self) -> None:
        """Close the port and drop what is in flight (safe to call twice, and from any thread)."""
        loop, self._loop = self._loop, None
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- handlers ----------------------------------------------------------------------------
    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    def _draw_fault(self) -> str | None:
        with self._lock:
            self.requests += 1
            if self.requests <= len(self.faults.sequence):
                return self.faults.sequence[self.requests - 1]
            if self.faults.rate <= 0 or self._rng.random() >= self.faults.rate:
                return None
            kinds = list(self.faults.weights)
            return self._rng.choices(kinds, weights=[self.faults.weights[k] for k in kinds])[0]

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        fault = self._draw_fault()
        if self.latency:
            await asyncio.sleep(self.latency)
        if fault in ("429", "429-long"):
            wait = self.faults.retry_after if fault == "429" else 300
            return web.json_response({"error": {"message": "rate limited", "type": "rate_limit"}}, status=429,
                                     headers={"Retry-After": str(wait)})
        if fault in ("500", "500-no-retry"):
            headers = {"x-should-retry": "false"} if fault == "500-no-retry" else None
            return web.json_response({"error": {"message": "internal error"}}, status=500, headers=headers)
        if fault in ("400", "401", "404"):
            message = {"400": "bad request: max_tokens is too large", "401": "invalid api key",
                       "404": "model not found"}[fault]
            return web.json_response({"error": {"message": message, "type": "invalid_request_error"}},
                                     status=int(fault))
        if fault == "stall":
            await asyncio.sleep(self.faults.stall_seconds)
            return web.json_response({"error": {"message": "stalled"}}, status=504)
        if fault == "malformed":
            return web.Response(text='{"id": "x", "choices": [', content_type="application/json")
        if fault == "empty":
            return web.json_response({"id": "x", "object": "chat.completion", "created": int(time.time()),
                                      "model": body.get("model", self.model), "choices": []})
        try:
            content = self.reply(body)
        except Exception as error:  # a scripted reply that raises becomes a 500, like a real server bug
            return web.json_response({"error": {"message": f"script error: {error}"}}, status=500)
        finish = "stop"
        if isinstance(content, dict):
            finish = content.get("finish_reason", "stop")
            content = content["content"]
        with self._lock:
            self.log.append(body)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        return web.json_response({
            "id": f"chatcmpl-{self.requests}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": [{"index": 0, "finish_reason": finish,
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(content.split()),
                      "total_tokens": prompt_tokens + len(content.split())},
        })
