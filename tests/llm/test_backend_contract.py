"""The behaviour every backend owes `LLM`, checked the same way against each one that runs here:
`openai` against the local test server (scripted to answer like a model: it honours the sampling
the backend sends), `hf` on the tiny random model, `local` on the embedded SmolLM2 (slow), and
`vllm`'s adapter on an async engine of ours (`rolenrules.testing.fake_engine`; vLLM needs a GPU).

A new backend gets its branch in the `make` fixture below (docs/extending.md). Replies are kept to a few
tokens so the whole module stays fast.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from rolenrules.llm import LLM, Backend, BackendOptions, ChatRequest, ChatResult, InvalidReplyError, Sampling, make_backend
from rolenrules.records import Message
from rolenrules.testing.fake_openai import FakeOpenAIServer, default_reply

COUNT = [{"role": "user", "content": "Count from one to fifty in words, separated by spaces."}]
PET = [{"role": "system", "content": "Reply with JSON only."},
       {"role": "user", "content": "Describe a pet: its name and how many legs it has."}]
_WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november".split()


class Pet(BaseModel):
    name: str = Field(min_length=1, max_length=24)
    legs: int


def model_like(body: dict[str, Any]) -> str | dict[str, Any]:
    """Answer as a model would, from what the backend sent: greedy at temperature 0, seeded
    sampling otherwise, cut at `max_tokens` with finish_reason "length" (the server counts words
    as tokens). A backend that drops a sampling field changes the reply, so the checks see it."""
    if body.get("response_format"):
        return default_reply(body)
    prompt = repr(body["messages"])
    temperature = body.get("temperature", 1.0)
    if temperature > 0 and body.get("seed") is None:
        rng = random.Random()  # unseeded sampling differs call to call
    else:
        key = prompt if temperature == 0 else f"{prompt}|{temperature}|{body['seed']}"
        rng = random.Random(hashlib.sha256(key.encode()).hexdigest())
    words = [rng.choice(_WORDS) for _ in range(60)]
    limit = body.get("max_tokens", 16)
    if len(words) > limit:
        return {"content": " ".join(words[:limit]), "finish_reason": "length"}
    return " ".join(words)


@pytest.fixture(params=["openai", "hf", pytest.param("local", marks=pytest.mark.slow), "vllm-adapter"])
def make(request: pytest.FixtureRequest, fake_server: Callable[..., FakeOpenAIServer],
         tiny_model_dir: Path) -> Callable[[], Backend]:
    """Builds the backend under test (each test gets a fresh one, so closing it is the test's business)."""
    if request.param == "openai":
        server = fake_server(reply=model_like)
        options = BackendOptions(base_url=server.base_url, max_retries=0, timeout=10)
        return lambda: make_backend("openai:contract", options)
    if request.param == "hf":
        return lambda: make_backend(f"hf:{tiny_model_dir}")
    if request.param == "vllm-adapter":
        from rolenrules.llm.vllm_backend import AsyncEngineBackend, VLLMParams
        from rolenrules.testing.fake_engine import CURRENT_API, FakeEngine
        from rolenrules.testing.tiny_model import build_tokenizer

        tokenizer = build_tokenizer([m["content"] for m in COUNT + PET])
        return lambda: AsyncEngineBackend("vllm:fake", lambda: FakeEngine(tokenizer), VLLMParams(CURRENT_API))
    return lambda: make_backend("local:smollm2")


def complete(backend: Backend, *requests: ChatRequest) -> list[ChatResult]:
    """Send requests one after another in one event loop, then close the backend."""
    async def go() -> list[ChatResult]:
        try:
            return [await backend.complete(r) for r in requests]
        finally:
            await backend.aclose()
    return asyncio.run(go())


def ask(messages: list[dict[str, str]] = COUNT, **sampling: Any) -> ChatRequest:
    return ChatRequest(messages=[Message(**m) for m in messages], sampling=Sampling(**sampling))


def test_chat_reply_carries_its_usage(make: Callable[[], Backend]) -> None:
    (result,) = complete(make(), ask(temperature=0.0, max_tokens=6))
    assert isinstance(result.text, str)
    assert result.finish_reason in ("stop", "length")
    assert result.usage.requests == 1 and result.usage.prompt_tokens > 0
    assert 0 < result.usage.completion_tokens <= 6
    assert not result.cached


def test_max_tokens_cuts_the_reply_with_finish_reason_length(make: Callable[[], Backend]) -> None:
    (result,) = complete(make(), ask(temperature=0.0, max_tokens=3))
    assert result.finish_reason == "length"
    assert result.usage.completion_tokens == 3


def test_temperature_zero_is_deterministic_and_seeds_are_honoured(make: Callable[[], Backend]) -> None:
    results = complete(make(), ask(temperature=0.0, max_tokens=5), ask(temperature=0.0, max_tokens=5),
                       *(ask(temperature=1.5, max_tokens=5, seed=s) for s in (11, 11, 12)))
    first, again, seeded, seeded_again, other_seed = [r.text for r in results]
    assert first == again
    assert seeded == seeded_again
    assert other_seed != seeded  # the seed reached the sampler


def test_structured_output_parses_or_fails_as_invalid_reply(make: Callable[[], Backend]) -> None:
    backend = make()
    llm = LLM(backend, attempts=1)
    if backend.identity.startswith("hf:"):
        # Nothing constrains a random tiny model to JSON: the call fails as an unusable reply, never a crash.
        with pytest.raises(InvalidReplyError):
            llm.run(llm.structured(PET, Pet, temperature=0.0, max_tokens=12))
        assert llm.usage.requests == 1
        return
    pet, result = llm.run(llm.structured(PET, Pet, temperature=0.0, max_tokens=60))
    assert isinstance(pet, Pet) and pet.name
    assert Pet.model_validate_json(result.text) == pet  # the reply itself is the JSON
    # The client's running totals are the backend's own figures for the call.
    assert (llm.usage.requests, llm.usage.prompt_tokens, llm.usage.completion_tokens) == (
        1, result.usage.prompt_tokens, result.usage.completion_tokens)


def test_close_leaves_nothing_running_and_can_be_repeated(make: Callable[[], Backend]) -> None:
    backend = make()

    async def use_then_close() -> set[asyncio.Task[Any]]:
        await backend.complete(ask(temperature=0.0, max_tokens=2))
        await backend.aclose()
        await asyncio.sleep(0)  # let cancelled workers finish
        return {t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()}

    assert asyncio.run(use_then_close()) == set()
    asyncio.run(backend.aclose())  # closing twice is harmless
