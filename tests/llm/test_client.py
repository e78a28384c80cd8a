from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from rolenrules.llm import (LLM, BackendOptions, ChatRequest, ChatResult, InvalidReplyError, LLMError, RequestCache,
                            Sampling, make_llm)
from rolenrules.testing.fake_openai import Faults


class Item(BaseModel):
    text: str
    category: str


class Persona(BaseModel):
    role: str
    rules: list[Item]


def _llm(server, tmp_path: Path | None = None, **kw) -> LLM:  # noqa: ANN001
    options = BackendOptions(base_url=server.base_url, timeout=kw.pop("timeout", 5.0),
                             max_retries=kw.pop("max_retries", 6))
    cache = tmp_path / "cache.sqlite" if tmp_path is not None else None
    return make_llm("openai:any", options, cache=cache, **kw)


def test_chat_returns_the_servers_reply_and_usage(fake_server) -> None:  # noqa: ANN001
    server = fake_server(reply=lambda body: "Paris is the capital.")
    llm = _llm(server)
    result = llm.run(llm.chat([{"role": "user", "content": "capital of France?"}]))
    assert result.text == "Paris is the capital."
    assert result.usage.completion_tokens == 4 and result.usage.prompt_tokens == 3
    assert llm.usage.requests == 1 and llm.usage.completion_tokens == 4
    body = server.log[0]
    assert body["model"] == "any" and body["messages"] == [{"role": "user", "content": "capital of France?"}]


def test_sampling_parameters_reach_the_server(fake_server) -> None:  # noqa: ANN001
    server = fake_server()
    llm = _llm(server, sampling=Sampling(temperature=0.2, top_p=0.9, max_tokens=77, seed=5))
    llm.run(llm.chat([{"role": "user", "content": "x"}]))
    body = server.log[0]
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (0.2, 0.9, 77, 5)


def test_structured_output_sends_schema_and_validates(fake_server) -> None:  # noqa: ANN001
    server = fake_server()  # default reply: a schema-valid instance
    llm = _llm(server)
    parsed, _ = llm.run(llm.structured([{"role": "user", "content": "make a persona"}], Persona))
    assert isinstance(parsed, Persona) and parsed.rules
    fmt = server.log[0]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Persona"
    assert "$defs" in fmt["json_schema"]["schema"]


def test_invalid_structured_reply_is_retried_then_reported(fake_server) -> None:  # noqa: ANN001
    replies = iter(['{"role": "x"}', '```json\n{"role": "Ava", "rules": [{"text": "t", "category": "format"}]}\n```'])
    server = fake_server(reply=lambda body: next(replies))
    llm = _llm(server)
    parsed, _ = llm.run(llm.structured([{"role": "user", "content": "p"}], Persona))
    assert parsed.role == "Ava" and len(server.log) == 2
    # The retry must not be the identical request (a seeded or cached backend would repeat itself).
    assert server.log[0].get("seed") != server.log[1].get("seed")

    bad = fake_server(reply=lambda body: "not json at all")
    llm = _llm(bad)
    with pytest.raises(InvalidReplyError, match="after 3 attempts"):
        llm.run(llm.structured([{"role": "user", "content": "p"}], Persona))
    assert len(bad.log) == 3


def test_truncated_structured_reply_is_not_accepted(fake_server) -> None:  # noqa: ANN001
    server = fake_server(reply=lambda body: {"content": '{"role": "x", "rules": []}', "finish_reason": "length"})
    llm = _llm(server, attempts=2)
    with pytest.raises(InvalidReplyError, match="truncated"):
        llm.run(llm.structured([{"role": "user", "content": "p"}], Persona))


def test_cache_answers_repeats_without_a_request(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    server = fake_server(reply=lambda body: "cached answer")
    for _ in range(2):
        llm = _llm(server, tmp_path)
        result = llm.run(llm.chat([{"role": "user", "content": "same question"}]))
        assert result.text == "cached answer"
    assert server.requests == 1
    assert result.cached and llm.usage.requests == 0 and llm.usage.cached_requests == 1
    # A different sampling parameter is a different request.
    llm = _llm(server, tmp_path)
    llm.run(llm.chat([{"role": "user", "content": "same question"}], temperature=0.0))
    assert server.requests == 2


def test_structured_cache_hit(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    server = fake_server()
    for _ in range(2):
        llm = _llm(server, tmp_path)
        parsed, _ = llm.run(llm.structured([{"role": "user", "content": "persona"}], Persona))
    assert server.requests == 1 and isinstance(parsed, Persona)


def test_api_key_never_reaches_the_cache(fake_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-key-123456")
    server = fake_server()
    llm = _llm(server, tmp_path)
    llm.run(llm.chat([{"role": "user", "content": "hello"}]))
    for path in tmp_path.iterdir():
        assert b"sk-secret-key-123456" not in path.read_bytes()


@pytest.mark.parametrize("kinds", [{"429": 1, "500": 1}, {"malformed": 1, "empty": 1}, {"429": 1, "500": 1, "malformed": 1, "empty": 1}])
def test_flaky_server_still_answers(fake_server, kinds: dict[str, float]) -> None:  # noqa: ANN001
    server = fake_server(reply=lambda body: "ok", faults=Faults(rate=0.3, weights=kinds, seed=3))
    llm = _llm(server, concurrency=4, attempts=5)

    async def many() -> list[str]:
        results = await asyncio.gather(*(llm.chat([{"role": "user", "content": f"q{i}"}]) for i in range(30)))
        return [r.text for r in results]

    assert llm.run(many()) == ["ok"] * 30
    assert server.requests > 30  # some failed and were retried


def test_retry_after_is_honoured(fake_server) -> None:  # noqa: ANN001
    server = fake_server(reply=lambda body: "ok", faults=Faults(rate=1.0, weights={"429": 1}, retry_after=0.4))
    llm = _llm(server, max_retries=2)
    start = time.monotonic()
    with pytest.raises(LLMError, match="429"):
        llm.run(llm.chat([{"role": "user", "content": "q"}]))
    assert time.monotonic() - start >= 0.8  # two waits of Retry-After
    assert server.requests == 3


def test_stalled_request_times_out_and_is_retried(fake_server) -> None:  # noqa: ANN001
    server = fake_server(reply=lambda body: "ok", faults=Faults(rate=0.5, weights={"stall": 1}, seed=1, stall_seconds=30))
    llm = _llm(server, timeout=0.5, max_retries=8)
    start = time.monotonic()

    async def few() -> list[str]:
        return [r.text for r in await asyncio.gather(*(llm.chat([{"role": "user", "content": f"s{i}"}]) for i in range(4)))]

    assert llm.run(few()) == ["ok"] * 4
    assert time.monotonic() - start < 20


def test_closed_port_fails_fast_with_a_clear_message() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    llm = make_llm("openai:any", BackendOptions(base_url=f"http://127.0.0.1:{port}/v1"))
    start = time.monotonic()
    with pytest.raises(LLMError, match="unreachable"):
        llm.run(llm.chat([{"role": "user", "content": "hi"}]))
    assert time.monotonic() - start < 15


def test_concurrency_is_bounded(fake_server) -> None:  # noqa: ANN001
    server = fake_server(reply=lambda body: "ok", latency=0.1)
    llm = _llm(server, concurrency=3)

    async def many() -> None:
        await asyncio.gather(*(llm.chat([{"role": "user", "content": f"c{i}"}]) for i in range(12)))

    llm.run(many())
    assert server.max_in_flight == 3


def test_cache_is_safe_for_concurrent_processes_and_kill_9(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "shared.sqlite"
    writer = (
        "import sys; from rolenrules.llm import RequestCache, ChatRequest, ChatResult; from rolenrules.records import Message\n"
        "c = RequestCache(sys.argv[1]); tag = sys.argv[2]\n"
        "for i in range(int(sys.argv[3])):\n"
        "    r = ChatRequest(messages=[Message(role='user', content=f'{tag}-{i}')])\n"
        "    c.put('openai:m', r, ChatResult(text=f'{tag}-{i}'))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", writer, str(path), tag, "200"]) for tag in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    killed = subprocess.Popen([sys.executable, "-c", writer, str(path), "k", "1000000"])
    time.sleep(1.5)
    killed.kill()
    killed.wait()
    cache = RequestCache(path)
    from rolenrules.llm import ChatRequest, ChatResult
    from rolenrules.records import Message

    for tag in ("a", "b"):
        hit = cache.get("openai:m", ChatRequest(messages=[Message(role="user", content=f"{tag}-199")]))
        assert hit is not None and hit.text == f"{tag}-199"
    assert len(cache) >= 400
    # What the killed writer committed (it wrote k-0, k-1, ... in order) is whole, and the file still takes writes.
    for i in range(len(cache) - 400):
        hit = cache.get("openai:m", ChatRequest(messages=[Message(role="user", content=f"k-{i}")]))
        assert hit is not None and hit.text == f"k-{i}"
    after = ChatRequest(messages=[Message(role="user", content="after the kill")])
    cache.put("openai:m", after, ChatResult(text="still writable"))
    assert cache.get("openai:m", after).text == "still writable"


class _GatedBackend:
    """A backend whose replies wait for the test to release them, recording when each request starts."""

    identity = "gated:test"

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.gates: list[asyncio.Event] = []

    async def complete(self, request: ChatRequest) -> ChatResult:
        name = request.messages[-1].content
        self.events.append(f"sent {name}")
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        return ChatResult(text=f"reply to {name}")

    async def aclose(self) -> None:
        return None


def test_a_freed_slot_is_refilled_before_the_reply_is_processed() -> None:
    """With every slot taken, a returning reply lets the next waiting request go out first, then
    resumes its caller: a burst of replies does not leave the server idle while they are processed."""
    events: list[str] = []
    backend = _GatedBackend(events)
    llm = LLM(backend, concurrency=1)

    async def caller(name: str) -> None:
        await llm.chat([{"role": "user", "content": name}])
        events.append(f"processed {name}")

    async def go() -> None:
        tasks = [asyncio.create_task(caller("a")), asyncio.create_task(caller("b"))]
        while not backend.gates:
            await asyncio.sleep(0)
        backend.gates[0].set()
        while len(backend.gates) < 2:
            await asyncio.sleep(0)
        backend.gates[1].set()
        await asyncio.gather(*tasks)

    asyncio.run(go())
    assert events == ["sent a", "sent b", "processed a", "processed b"]
