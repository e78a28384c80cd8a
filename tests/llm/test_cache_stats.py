"""The request cache's keys and batched writes, the per-model schema cache, and `LLM.stats()`."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from rolenrules.llm import BackendOptions, ChatRequest, ChatResult, LLMError, RequestCache, Sampling, make_llm
from rolenrules.llm.cache import request_key
from rolenrules.llm.stats import CallStats
from rolenrules.records import Message

LONG = "Du bist Ava, eine sorgfältige Reiseplanerin — \"genau\" und \\ knapp.\n" * 40


def _reference_key(identity: str, request: ChatRequest) -> str:
    """How keys were always made; a cache file written by an earlier version must still hit."""
    payload = {"identity": identity, "messages": [m.model_dump() for m in request.messages],
               "sampling": request.sampling.model_dump(), "schema": request.json_schema}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


@pytest.mark.parametrize("request_", [
    ChatRequest(messages=[Message(role="user", content="hi")]),
    ChatRequest(messages=[Message(role="system", content=LONG), Message(role="user", content="ünï 😀 \u2028")],
                sampling=Sampling(temperature=0.0, top_p=0.95, max_tokens=7, seed=3)),
    ChatRequest(messages=[Message(role="system", content=LONG), Message(role="user", content="x")],
                json_schema={"type": "object", "properties": {"b": {"type": "string"}, "a": {"enum": ["é", 1.5]}}},
                schema_name="Z"),
], ids=["short", "long-unicode", "schema"])
def test_request_key_is_the_same_as_ever(request_: ChatRequest) -> None:
    for _ in range(2):  # the second time, the long text comes from the memo
        assert request_key("openai:m", request_) == _reference_key("openai:m", request_)


def test_schema_is_built_once_per_model(fake_server) -> None:  # noqa: ANN001
    builds = []

    class Answer(BaseModel):
        text: str

        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
            builds.append(1)
            return super().model_json_schema(*args, **kwargs)

    server = fake_server()
    llm = make_llm("openai:m", BackendOptions(base_url=server.base_url))

    async def three() -> None:
        for i in range(3):
            await llm.structured([{"role": "user", "content": f"q{i}"}], Answer)

    llm.run(three())
    assert len(builds) == 1 and len(server.log) == 3
    assert server.log[2]["response_format"]["json_schema"]["schema"]["properties"] == {
        "text": {"title": "Text", "type": "string"}}


def test_cache_rows_wait_in_memory_until_flushed(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    writer, reader = RequestCache(path), RequestCache(path)
    request = ChatRequest(messages=[Message(role="user", content="q")])
    writer.put("openai:m", request, ChatResult(text="a"))
    assert writer.get("openai:m", request).text == "a"  # the writer sees its own batch
    assert reader.get("openai:m", request) is None  # not committed yet
    writer.flush()
    assert reader.get("openai:m", request).text == "a"
    many = [ChatRequest(messages=[Message(role="user", content=f"q{i}")]) for i in range(300)]
    for r in many:
        writer.put("openai:m", r, ChatResult(text="b"))
    assert reader.get("openai:m", many[0]) is not None  # a full batch commits by itself
    writer.close()
    assert len(reader) == 301


def test_llm_commits_the_cache_when_its_calls_are_done(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    server = fake_server()
    path = tmp_path / "c.sqlite"
    llm = make_llm("openai:m", BackendOptions(base_url=server.base_url), cache=path)
    other = RequestCache(path)

    async def calls_then_look() -> int:
        await asyncio.gather(*(llm.chat([{"role": "user", "content": f"q{i}"}]) for i in range(5)))
        return len(other)  # before aclose: committed because nothing is in flight any more

    assert llm.run(calls_then_look()) == 5


def test_stats_measure_throughput_and_where_the_time_went(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    server = fake_server(reply=lambda body: "one two three", latency=0.1)
    llm = make_llm("openai:m", BackendOptions(base_url=server.base_url), cache=tmp_path / "c.sqlite", concurrency=4)

    async def many(n: int) -> None:
        await asyncio.gather(*(llm.chat([{"role": "user", "content": f"q{i}"}]) for i in range(n)))

    asyncio.run(many(8))
    stats = llm.stats()
    assert (stats.requests, stats.cached, stats.failed, stats.completion_tokens) == (8, 0, 0, 24)
    assert 0.2 <= stats.wall_s < 2 and stats.server_s >= 0.8
    assert 3 <= stats.in_flight <= 4.01  # 4 at a time, each waiting on the server
    assert stats.calls_per_s == pytest.approx(8 / stats.wall_s)
    assert stats.tokens_per_s == pytest.approx(24 / stats.wall_s)
    assert 0 <= stats.cpu_s < stats.wall_s and stats.client_busy < 0.9  # mostly waiting on the server
    asyncio.run(many(8))  # all from the cache now
    assert llm.stats().cached == 8 and llm.stats().requests == 8
    assert "8 calls (8 cached)" in llm.stats().summary() and "calls/s" in llm.stats().summary()

    server.faults.sequence = ["400"] * 1000
    server.requests = 0
    with pytest.raises(LLMError):
        asyncio.run(llm.chat([{"role": "user", "content": "fails"}]))
    assert llm.stats().failed == 1


def test_stats_of_teacher_and_judge_add_up() -> None:
    teacher = CallStats(requests=10, cached=1, prompt_tokens=100, completion_tokens=50, wall_s=2.0, server_s=4.0,
                        cpu_s=0.5)
    judge = CallStats(requests=5, failed=1, completion_tokens=10, wall_s=1.5, server_s=1.0, cpu_s=0.4)
    both = teacher + judge
    assert (both.requests, both.cached, both.failed, both.completion_tokens) == (15, 1, 1, 60)
    assert (both.wall_s, both.server_s, both.cpu_s) == (2.0, 5.0, 0.5)
    assert CallStats().calls_per_s is None and CallStats().summary() == "0 calls"
