"""The direct aiohttp transport behaves as the openai SDK does: each fault scenario is run through
both transports against the same kind of server, and what the caller sees (the reply or the error,
how many requests reached the server, how long the retries waited) must be the same."""

from __future__ import annotations

import socket
import time

import pytest

from rolenrules.llm import BackendOptions, InvalidReplyError, LLMError, make_llm
from rolenrules.testing.fake_openai import Faults

# (faults in order, max_retries) -> (outcome: reply text or error class and message, requests the server saw,
# least seconds the retries must have waited)
SCENARIOS = {
    "429 twice, Retry-After honoured": ([["429", "429"], 3], ("ok", 3, 0.6)),
    "500 then ok": ([["500"], 3], ("ok", 2, 0.3)),
    "500 until retries run out": ([["500"] * 3, 2], ((LLMError, "kept failing with HTTP 500 after 2 retries"), 3, 0.6)),
    "x-should-retry: false is obeyed": ([["500-no-retry"], 3], ((LLMError, "HTTP 500"), 1, 0.0)),
    "Retry-After beyond 2 minutes is not waited": ([["429-long"], 3], ((LLMError, "HTTP 429"), 1, 0.0)),
    "400 is not retried": ([["400"], 3],
                           ((LLMError, "HTTP 400 from .*: bad request: max_tokens is too large"), 1, 0.0)),
    "401 names the API key": ([["401"], 3], ((LLMError, "rejected the API key"), 1, 0.0)),
    "404 names model and URL": ([["404"], 3], ((LLMError, "not found at .*model not found.*--base-url"), 1, 0.0)),
    "malformed body": ([["malformed"], 3], ((InvalidReplyError, "malformed response body"), 1, 0.0)),
    "empty choices": ([["empty"], 3], ((InvalidReplyError, "no choices"), 1, 0.0)),
}


@pytest.mark.parametrize("transport", ["aiohttp", "sdk"])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_fault_scenario_outcome_is_the_sdks(fake_server, name: str, transport: str) -> None:  # noqa: ANN001
    (sequence, max_retries), (expected, requests, least_wait) = SCENARIOS[name]
    server = fake_server(reply=lambda body: "ok", faults=Faults(sequence=sequence, retry_after=0.3))
    llm = make_llm("openai:m", BackendOptions(base_url=server.base_url, max_retries=max_retries, timeout=5,
                                              transport=transport), attempts=1)
    start = time.monotonic()
    if isinstance(expected, str):
        assert llm.run(llm.chat([{"role": "user", "content": "q"}])).text == expected
    else:
        error_type, message = expected
        with pytest.raises(error_type, match=message) as caught:
            llm.run(llm.chat([{"role": "user", "content": "q"}]))
        assert type(caught.value) is error_type
    assert server.requests == requests
    # Backoff waits at least 0.5 s * 2**n * 0.75 (jitter); Retry-After waits what the server said.
    assert time.monotonic() - start >= least_wait


@pytest.mark.parametrize("transport", ["aiohttp", "sdk"])
def test_stall_times_out_then_reports_timed_out(fake_server, transport: str) -> None:  # noqa: ANN001
    server = fake_server(reply=lambda body: "ok", faults=Faults(sequence=["stall", "stall"], stall_seconds=20))
    llm = make_llm("openai:m", BackendOptions(base_url=server.base_url, max_retries=1, timeout=0.4,
                                              transport=transport), attempts=1)
    start = time.monotonic()
    with pytest.raises(LLMError, match="timed out .gave up after 1 retry"):
        llm.run(llm.chat([{"role": "user", "content": "q"}]))
    assert server.requests == 2 and 0.8 <= time.monotonic() - start < 5


@pytest.mark.parametrize("transport", ["aiohttp", "sdk"])
def test_closed_port_reports_unreachable(transport: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    llm = make_llm("openai:m", BackendOptions(base_url=f"http://127.0.0.1:{port}/v1", max_retries=1,
                                              transport=transport), attempts=1)
    start = time.monotonic()
    with pytest.raises(LLMError, match=r"127.0.0.1:\d+/v1 is unreachable \(connection failed\) \(gave up after 1"):
        llm.run(llm.chat([{"role": "user", "content": "q"}]))
    assert 0.3 <= time.monotonic() - start < 5  # one backoff wait between the two attempts


def test_the_same_request_body_reaches_the_server(fake_server) -> None:  # noqa: ANN001
    server = fake_server()
    from pydantic import BaseModel

    class Answer(BaseModel):
        text: str

    for transport in ("aiohttp", "sdk"):
        llm = make_llm("openai:m", BackendOptions(base_url=server.base_url, transport=transport))

        async def both() -> None:
            await llm.chat([{"role": "system", "content": "Be brief. ünïcode"}, {"role": "user", "content": "q"}],
                           seed=7, temperature=0.3, max_tokens=50)
            await llm.structured([{"role": "user", "content": "q"}], Answer)

        llm.run(both())
    direct, sdk = server.log[:2], server.log[2:]
    assert direct == sdk
    assert direct[0]["messages"][0]["content"] == "Be brief. ünïcode" and direct[0]["seed"] == 7
    assert direct[1]["response_format"]["json_schema"]["name"] == "Answer"
