"""Several servers of one model: balancing, benching a failing server, failing over, and a run that
finishes on the healthy servers when one dies midway."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections import Counter
from pathlib import Path

import pytest

from rolenrules.errors import ConfigError
from rolenrules.llm import BackendOptions, LLMError, build_llm, make_llm
from rolenrules.llm._endpoints import EndpointPool
from rolenrules.llm.openai_backend import base_urls
from rolenrules.testing.fake_openai import FakeOpenAIServer, default_reply


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_pick_prefers_the_least_busy_then_takes_turns() -> None:
    pool = EndpointPool(["http://a", "http://b", "http://c"])
    a, b, c = pool.endpoints
    a.in_flight, b.in_flight, c.in_flight = 2, 0, 1
    assert pool.pick() is b
    b.in_flight = 5
    assert pool.pick() is c
    for e in pool.endpoints:
        e.in_flight = 0
    assert Counter(pool.pick().url for _ in range(30)) == {"http://a": 10, "http://b": 10, "http://c": 10}
    # A server that already failed this request is avoided while another is healthy.
    assert pool.pick(avoid=[a, b]) is c


def test_a_failing_server_is_benched_then_retried_later() -> None:
    clock = Clock()
    pool = EndpointPool(["http://a", "http://b"], failures_to_bench=3, bench_seconds=10, clock=clock)
    a, b = pool.endpoints
    pool.failed(a, "connect")
    pool.failed(a, "connect")
    assert pool.benched() == []
    pool.failed(a, "connect")
    assert pool.benched() == ["http://a"]
    assert {pool.pick().url for _ in range(10)} == {"http://b"}
    assert pool.untried([b]) is False  # a benched server is no failover target
    clock.now += 10
    assert pool.benched() == [] and pool.untried([b])
    pool.failed(a, "connect")  # still failing after its bench: benched again at once, for twice as long
    assert pool.benched() == ["http://a"]
    clock.now += 15
    assert pool.benched() == ["http://a"]
    clock.now += 5
    pool.succeeded(a)
    pool.failed(a, "HTTP 500")  # a success resets the count
    assert pool.benched() == [] and a.times_benched == 0


def test_with_every_server_benched_the_first_to_return_is_used() -> None:
    clock = Clock()
    pool = EndpointPool(["http://a", "http://b"], failures_to_bench=1, bench_seconds=10, clock=clock)
    a, b = pool.endpoints
    pool.failed(b, "connect")
    clock.now += 1
    pool.failed(a, "connect")
    assert pool.pick() is b


def test_a_single_server_is_never_benched() -> None:
    pool = EndpointPool(["http://a"], failures_to_bench=1)
    for _ in range(5):
        pool.failed(pool.endpoints[0], "connect")
    assert pool.benched() == [] and pool.pick() is pool.endpoints[0]


def test_base_urls_from_flags_and_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listing = tmp_path / "servers.txt"
    listing.write_text("# our vLLM boxes\nhttp://10.0.0.1:8000/v1/\n\nhttp://10.0.0.2:8000/v1  # second\n")
    assert base_urls(["http://x/v1", str(listing), "http://x/v1/"]) == [
        "http://x/v1", "http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1"]
    monkeypatch.setenv("OPENAI_BASE_URL", "http://from-env/v1")
    assert base_urls(None) == base_urls("") == ["http://from-env/v1"]
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert base_urls([]) == ["https://api.openai.com/v1"]
    listing.write_text("http://ok/v1\nlocalhost:8000\n")
    with pytest.raises(ConfigError, match=r"servers.txt:2: 'localhost:8000' is not a server URL"):
        base_urls(str(listing))
    with pytest.raises(ConfigError, match="neither an http"):
        base_urls("no-such-file.txt")


def test_the_cache_key_does_not_depend_on_the_server(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    first, second, third = fake_server(), fake_server(), fake_server()
    cache = tmp_path / "cache.sqlite"
    llm = build_llm("openai:m", base_url=[first.base_url], cache=cache)
    llm.run(llm.chat([{"role": "user", "content": "q"}]))
    llm = build_llm("openai:m", base_url=[second.base_url, third.base_url], cache=cache)
    assert llm.run(llm.chat([{"role": "user", "content": "q"}])).cached
    assert (first.requests, second.requests, third.requests) == (1, 0, 0)


def test_a_slow_server_gets_less_work(fake_server) -> None:  # noqa: ANN001
    slow = fake_server(latency=0.3)
    fast = [fake_server(latency=0.01), fake_server(latency=0.01)]
    llm = build_llm("openai:m", base_url=[slow.base_url] + [s.base_url for s in fast], concurrency=6)

    async def many() -> None:
        await asyncio.gather(*(llm.chat([{"role": "user", "content": f"q{i}"}]) for i in range(120)))

    llm.run(many())
    assert slow.requests + sum(s.requests for s in fast) == 120
    assert slow.requests < 120 / 6  # round-robin would have given it 40


def _stop_after(server_holder: list[FakeOpenAIServer], count: int) -> object:
    """A reply script that answers like the default one and stops its own server (from another
    thread, as a crash would) once it has answered `count` requests."""
    answered = Counter()  # type: ignore[var-annotated]
    lock = threading.Lock()

    def reply(body: dict) -> object:  # type: ignore[type-arg]
        with lock:
            answered["n"] += 1
            if answered["n"] == count:
                threading.Thread(target=server_holder[0].stop).start()
        return default_reply(body)

    return reply


def test_a_run_finishes_on_the_healthy_servers_when_one_dies(fake_server) -> None:  # noqa: ANN001
    holder: list[FakeOpenAIServer] = []
    doomed = fake_server(reply=_stop_after(holder, 25), latency=0.01)
    holder.append(doomed)
    healthy = [fake_server(latency=0.01), fake_server(latency=0.01)]
    llm = make_llm("openai:m", BackendOptions(base_url=(doomed.base_url, *(s.base_url for s in healthy)),
                                              max_retries=2, timeout=5), concurrency=12)
    n = 300

    async def many() -> list[str]:
        results = await asyncio.gather(*(llm.chat([{"role": "user", "content": f"q{i}"}]) for i in range(n)),
                                       return_exceptions=True)
        return [r.text if not isinstance(r, BaseException) else repr(r) for r in results]

    texts = llm.run(many())
    assert texts == [f"Reply to: q{i}" for i in range(n)]  # every request answered, in its own slot
    served = [json.loads(json.dumps(b))["messages"][-1]["content"] for s in (doomed, *healthy) for b in s.log]
    assert set(served) == {f"q{i}" for i in range(n)}
    assert 25 <= len(doomed.log) < 60 and all(len(s.log) > 100 for s in healthy)
    assert doomed.base_url.removesuffix("/") in llm.backend.pool.benched()  # type: ignore[attr-defined]
    stats = llm.stats()
    assert stats.requests == n and stats.failed == 0


def test_a_request_fails_only_after_every_server_failed_it(fake_server) -> None:  # noqa: ANN001
    import socket

    ports = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    dead = [f"http://127.0.0.1:{p}/v1" for p in ports]
    alive = fake_server()
    llm = build_llm("openai:m", base_url=[*dead, alive.base_url], max_retries=0)
    assert llm.run(llm.chat([{"role": "user", "content": "q"}])).text == "Reply to: q"  # no retries, yet answered
    llm = build_llm("openai:m", base_url=dead, max_retries=0)
    with pytest.raises(LLMError, match=r"2 servers \(.*\) is unreachable"):
        llm.run(llm.chat([{"role": "user", "content": "q"}]))


def test_rnr_generate_completes_when_one_of_three_servers_dies(fake_server, seed_tasks: Path,
                                                              tmp_path: Path) -> None:  # noqa: ANN001
    from rolenrules.cli import main
    from rolenrules.io import read_examples
    from rolenrules.testing.scripted import teacher_reply

    script = teacher_reply()
    holder: list[FakeOpenAIServer] = []
    stopper = _stop_after(holder, 15)

    def doomed_reply(body: dict) -> object:  # type: ignore[type-arg]
        stopper(body)  # type: ignore[operator]
        return script(body)

    doomed = fake_server(reply=doomed_reply, latency=0.01)
    holder.append(doomed)
    healthy = [fake_server(reply=script, latency=0.01) for _ in range(2)]
    listing = tmp_path / "servers.txt"
    listing.write_text("\n".join(s.base_url for s in healthy) + "\n")
    out = tmp_path / "out.jsonl"
    with pytest.raises(SystemExit) as info:
        main(["generate", "--input", str(seed_tasks), "--teacher", "openai:any", "--base-url", doomed.base_url,
              "--base-url", str(listing), "--out", str(out), "--quiet", "--num-prompts", "6",
              "--verifiable-rules", "0", "--judged-rules", "on", "--concurrency", "8", "--max-retries", "2", "--timeout", "5"])
    assert info.value.code in (0, None)
    kept = list(read_examples(out))
    rejects = [json.loads(line) for line in (tmp_path / "out.jsonl.rejects.jsonl").read_text().splitlines()]
    assert len(kept) + len(rejects) == 6 * 5
    assert not [r for r in rejects if "unreachable" in json.dumps(r) or "HTTP 5" in json.dumps(r)]
    assert len(doomed.log) >= 15 and all(s.log for s in healthy)


def test_rnr_eval_spreads_over_repeated_base_urls_and_reports_its_rate(
        fake_server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    from rolenrules.cli import main
    from rolenrules.records import Example, Message, SystemPrompt
    from rolenrules.rules import rule_from_type

    prompt = SystemPrompt(role="You are terse.", rules=[rule_from_type("punctuation:no_comma")])
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(Example(id=f"b{i}", messages=[Message(role="user", content=f"Hi {i}")])
                             .with_system(prompt).model_dump_json() + "\n" for i in range(12)))
    servers = [fake_server(reply=lambda body: "Hello there.", latency=0.02) for _ in range(2)]
    with pytest.raises(SystemExit) as info:
        main(["eval", "--bench", str(bench), "--model", "openai:m", "--base-url", servers[0].base_url,
              "--base-url", servers[1].base_url, "--no-role-adherence", "--out", str(tmp_path / "run"),
              "--concurrency", "4"])
    assert info.value.code in (0, None)
    assert all(s.requests >= 2 for s in servers) and sum(s.requests for s in servers) == 12
    err = capsys.readouterr().err
    assert re.search(r"model openai:m: 12 calls in [\d.]+ s: [\d,.]+ calls/s, [\d,]+ tokens/s; [\d.]+ s per call "
                     r"at the servers, [\d.]+ in flight; client CPU \d+% of the time", err), err
