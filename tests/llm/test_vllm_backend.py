"""The `vllm:` backend's adapter, driven by an async continuous-batching engine of ours
(`rolenrules.testing.fake_engine`) with a real transformers tokenizer and chat template, and by
stand-ins for both generations of vLLM's sampling-parameter classes. vLLM itself is never
installed here (it pulls CUDA); what only a GPU can show is in benchmarks/vllm_check.py."""

from __future__ import annotations

import asyncio
import threading
import types
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from rolenrules.errors import ConfigError
from rolenrules.llm import BACKENDS, LLM, BackendOptions, ChatRequest, LLMError, Sampling, make_backend
from rolenrules.llm.vllm_backend import AsyncEngineBackend, SchemaNotEnforceable, VLLMParams, engine_args, render_prompt
from rolenrules.records import Message
from rolenrules.testing.fake_engine import (CURRENT_API, FAIL_MARKER, LEGACY_API, FakeEngine, GuidedDecodingParams,
                                            RequestOutputKind, StructuredOutputsParams)
from rolenrules.testing.tiny_model import build_tokenizer


class Pet(BaseModel):
    name: str
    legs: int


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return build_tokenizer(["You are a helpful assistant.", "Count the fruits: apple, banana, cherry."])


@pytest.fixture
def backend(tokenizer: Any) -> Callable[..., tuple[AsyncEngineBackend, list[FakeEngine]]]:
    """`backend(**engine_kwargs)` -> (backend, the engines it started, newest last); closed after the test."""
    made: list[AsyncEngineBackend] = []

    def build(api: Any = CURRENT_API, **kwargs: Any) -> tuple[AsyncEngineBackend, list[FakeEngine]]:
        engines: list[FakeEngine] = []

        def start() -> FakeEngine:
            engines.append(FakeEngine(tokenizer, **kwargs))
            return engines[-1]

        made.append(AsyncEngineBackend("vllm:fake", start, VLLMParams(api)))
        return made[-1], engines

    yield build
    for b in made:
        asyncio.run(b.aclose())


def ask(text: str, schema: dict[str, Any] | None = None, **sampling: Any) -> ChatRequest:
    return ChatRequest(messages=[Message(role="system", content="You are a helpful assistant."),
                                 Message(role="user", content=text)],
                       sampling=Sampling(**{"temperature": 0.0, "max_tokens": 20, **sampling}), json_schema=schema,
                       schema_name=None if schema is None else "Pet")


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached in time")


def engine_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("rnr-engine-")]


# --- batching -----------------------------------------------------------------------------------

def test_concurrent_requests_decode_together_and_each_gets_its_own_reply(backend: Callable[..., Any]) -> None:
    llm_backend, (engine,) = backend()
    requests = [ask(f"question {i}", temperature=0.3 * (i % 3), seed=i, max_tokens=5 + i) for i in range(8)]

    async def together() -> list[Any]:
        return await asyncio.gather(*(llm_backend.complete(r) for r in requests))

    results = asyncio.run(together())
    # All eight, with different sampling, shared decoding steps (continuous batching, not a queue).
    assert max(engine.batch_sizes) == 8
    for i, result in enumerate(results):
        seen = engine.by_prompt(f"question {i}<")
        assert result.text == seen.reply  # routed back to its own caller
        assert (seen.params.temperature, seen.params.seed, seen.params.max_tokens) == (0.3 * (i % 3), i, 5 + i)


def test_one_at_a_time_never_shares_a_step(backend: Callable[..., Any]) -> None:
    # The measure above can tell batching from serial calls: sequential awaits never overlap.
    llm_backend, (engine,) = backend()

    async def serial() -> None:
        for i in range(4):
            await llm_backend.complete(ask(f"question {i}"))

    asyncio.run(serial())
    assert engine.batch_sizes and max(engine.batch_sizes) == 1


def test_through_llm_the_concurrency_bound_is_the_batch(backend: Callable[..., Any]) -> None:
    llm_backend, (engine,) = backend()
    llm = LLM(llm_backend, concurrency=3)

    async def many() -> None:
        await asyncio.gather(*(llm.chat([{"role": "user", "content": f"q{i}"}], max_tokens=6) for i in range(9)))

    asyncio.run(many())
    assert max(engine.batch_sizes) == 3  # --concurrency is how many requests vLLM gets at once
    assert llm.usage.requests == 9


# --- sampling, usage, structured output -----------------------------------------------------------

def test_sampling_usage_and_finish_reason_per_request(backend: Callable[..., Any], tokenizer: Any) -> None:
    llm_backend, (engine,) = backend()
    requests = [ask("count", temperature=0.0), ask("count", temperature=0.0),
                ask("count", temperature=1.2, top_p=0.9, seed=7), ask("count", temperature=1.2, top_p=0.9, seed=7),
                ask("count", temperature=1.2, top_p=0.9, seed=8), ask("count", max_tokens=3)]

    async def go() -> list[Any]:
        return await asyncio.gather(*(llm_backend.complete(r) for r in requests))

    greedy, greedy_again, seeded, seeded_again, other_seed, cut = asyncio.run(go())
    assert greedy.text == greedy_again.text and seeded.text == seeded_again.text and other_seed.text != seeded.text
    params = {s.params.seed: s.params for s in engine.submitted}
    assert (params[7].temperature, params[7].top_p, params[7].output_kind) == (1.2, 0.9, RequestOutputKind.FINAL_ONLY)
    assert params[None].temperature == 0.0  # greedy in vLLM
    assert cut.finish_reason == "length" and cut.usage.completion_tokens == 3 and len(cut.text.split()) == 3
    assert greedy.finish_reason == "stop" and greedy.usage.completion_tokens == len(greedy.text.split())
    prompt_ids = render_prompt(tokenizer, requests[0])
    assert greedy.usage.prompt_tokens == len(prompt_ids) and greedy.usage.requests == 1


def test_the_prompt_is_the_models_chat_template_without_added_special_tokens(tokenizer: Any) -> None:
    ids = render_prompt(tokenizer, ask("hi"))
    text = tokenizer.apply_chat_template([{"role": "system", "content": "You are a helpful assistant."},
                                          {"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert tokenizer.decode(ids) == text
    assert text.endswith("<|im_start|>assistant\n")


def test_a_tokenizer_that_renders_to_ids_is_used_as_is() -> None:
    class RendersIds:  # as vLLM's Mistral tokenizer: apply_chat_template returns token ids
        def apply_chat_template(self, messages: list[dict[str, str]], **kwargs: Any) -> list[int]:
            return [1, len(messages), 7]

        def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
            raise AssertionError("ids must not be encoded again")

    assert render_prompt(RendersIds(), ask("hi")) == [1, 2, 7]


@pytest.mark.parametrize(("api", "field", "params_class"), [
    (CURRENT_API, "structured_outputs", StructuredOutputsParams),
    (LEGACY_API, "guided_decoding", GuidedDecodingParams),
])
def test_structured_output_params_for_both_vllm_generations(api: Any, field: str, params_class: type) -> None:
    builder = VLLMParams(api)
    schema = Pet.model_json_schema()
    params = builder.build(Sampling(temperature=0.0, max_tokens=40, seed=3), schema)
    constraint = getattr(params, field)
    assert isinstance(constraint, params_class) and constraint.json == schema
    assert (params.temperature, params.max_tokens, params.seed) == (0.0, 40, 3)
    free = builder.build(Sampling(), None)
    assert getattr(free, field) is None  # free text is not constrained


@pytest.mark.parametrize("api", [CURRENT_API, LEGACY_API])
def test_structured_reply_through_llm(backend: Callable[..., Any], api: Any) -> None:
    llm_backend, (engine,) = backend(api)
    llm = LLM(llm_backend, attempts=1)
    pet, result = llm.run(llm.structured([{"role": "user", "content": "a pet"}], Pet, temperature=0.0, max_tokens=80))
    assert Pet.model_validate_json(result.text) == pet
    assert result.usage.completion_tokens == len(result.text)  # one token per character in the fake
    (seen,) = engine.submitted
    constraint = getattr(seen.params, "structured_outputs", None) or seen.params.guided_decoding
    assert constraint.json == Pet.model_json_schema()


def test_a_vllm_without_structured_output_fails_clearly(backend: Callable[..., Any]) -> None:
    no_structured = types.SimpleNamespace(SamplingParams=CURRENT_API.SamplingParams)
    llm_backend, (engine,) = backend(no_structured)
    llm = LLM(llm_backend, attempts=3)
    with pytest.raises(SchemaNotEnforceable, match=r"vllm:fake: .*neither StructuredOutputsParams nor GuidedDecodingParams"):
        llm.run(llm.structured([{"role": "user", "content": "a pet"}], Pet))
    assert engine.submitted == []  # refused before the engine, and not retried
    text = asyncio.run(llm_backend.complete(ask("free text still works")))
    assert text.finish_reason == "stop"


def test_a_schema_vllm_refuses_fails_once_and_says_why(backend: Callable[..., Any]) -> None:
    llm_backend, (engine,) = backend()
    schema = {"type": "object", "patternProperties": {"^x": {"type": "string"}}}
    llm = LLM(llm_backend, attempts=3)

    async def go() -> None:
        await llm._complete(ask("a pet", schema=schema))  # noqa: SLF001 -- the backend's error, unretried

    with pytest.raises(SchemaNotEnforceable) as caught:
        asyncio.run(go())
    assert str(caught.value).startswith("vllm:fake: vLLM refused the structured request (Pet)")
    assert "patternProperties" in str(caught.value)
    assert [s.ended for s in engine.submitted] == ["failed"]


# --- failures, cancellation, close ----------------------------------------------------------------

def test_an_engine_error_fails_only_its_own_request(backend: Callable[..., Any]) -> None:
    llm_backend, (engine,) = backend()
    requests = [ask("fine one"), ask(f"this one hits {FAIL_MARKER}"), ask("fine two")]

    async def go() -> list[Any]:
        return await asyncio.gather(*(llm_backend.complete(r) for r in requests), return_exceptions=True)

    first, failed, second = asyncio.run(go())
    assert isinstance(failed, LLMError) and not isinstance(failed, SchemaNotEnforceable)
    assert str(failed) == "vllm:fake: generation failed: RuntimeError: CUDA error: an illegal memory access was encountered (fake)"
    assert first.text == engine.by_prompt("fine one").reply and second.text == engine.by_prompt("fine two").reply
    assert max(engine.batch_sizes) == 3  # it failed mid-batch, and the batch went on
    assert asyncio.run(llm_backend.complete(ask("after the fault"))).finish_reason == "stop"


def test_cancelling_a_caller_aborts_its_request_in_the_engine(backend: Callable[..., Any]) -> None:
    llm_backend, (engine,) = backend(step_s=0.01)

    async def go() -> tuple[Any, Any]:
        doomed = asyncio.create_task(llm_backend.complete(ask("long one", max_tokens=50)))
        kept = asyncio.create_task(llm_backend.complete(ask("short one", max_tokens=4)))
        await until(lambda: len(engine.in_flight) == 2)  # both decoding together
        doomed.cancel()
        result = await kept
        with pytest.raises(asyncio.CancelledError):
            await doomed
        await until(lambda: not engine.in_flight)  # the abort crosses to the engine's thread
        return result, engine.by_prompt("long one").ended

    result, ended = asyncio.run(go())
    assert result.text == engine.by_prompt("short one").reply
    assert ended == "aborted" and engine.in_flight == set()


def test_close_leaves_nothing_running_and_a_later_request_starts_again(backend: Callable[..., Any]) -> None:
    llm_backend, engines = backend(step_s=0.01)

    async def close_mid_request() -> tuple[BaseException | None, set[asyncio.Task[Any]]]:
        pending = asyncio.create_task(llm_backend.complete(ask("in flight at close", max_tokens=50)))
        await until(lambda: bool(engines[0].in_flight))
        await llm_backend.aclose()
        error = (await asyncio.gather(pending, return_exceptions=True))[0]
        return error, {t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()}

    error, left = asyncio.run(close_mid_request())
    assert isinstance(error, LLMError) and "closed while this request was in flight" in str(error)
    assert left == set() and engine_threads() == []
    assert engines[0].shut_down and engines[0].in_flight == set()
    assert engines[0].by_prompt("in flight at close").ended == "aborted"
    asyncio.run(llm_backend.aclose())  # closing twice is harmless
    # A later request starts a new engine (the pipeline closes after its run; a reuse reloads).
    assert asyncio.run(llm_backend.complete(ask("after close"))).finish_reason == "stop"
    assert len(engines) == 2 and not engines[1].shut_down


def test_one_backend_serves_several_event_loops(backend: Callable[..., Any]) -> None:
    # The pipeline runs its work in one asyncio.run and closes in another; the engine's own step
    # loop was started by the first request and must keep serving later loops.
    llm_backend, (engine,) = backend(async_tokenizer=True)  # vLLM before 0.11: get_tokenizer() is a coroutine
    first = asyncio.run(llm_backend.complete(ask("first loop")))
    second = asyncio.run(llm_backend.complete(ask("second loop")))
    assert first.text == engine.by_prompt("first loop").reply and second.text == engine.by_prompt("second loop").reply
    asyncio.run(llm_backend.aclose())
    assert engine.shut_down and engine_threads() == []


def test_an_engine_that_cannot_start_is_a_config_error_at_construction() -> None:
    def start() -> Any:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")

    with pytest.raises(ConfigError, match=r"^vllm:x: the engine did not start: RuntimeError: CUDA out of memory\. "
                                          r"Tried to allocate 2\.00 GiB$"):
        AsyncEngineBackend("vllm:x", start, VLLMParams(CURRENT_API))
    assert engine_threads() == []


# --- the vllm: entry -----------------------------------------------------------------------------

def test_engine_options_are_declared_and_reach_the_engine_args() -> None:
    assert BACKENDS["vllm"].accepts == ("tensor_parallel_size", "gpu_memory_utilization", "max_model_len", "dtype")
    assert engine_args("m", tensor_parallel_size=2, gpu_memory_utilization=0.5, max_model_len=4096, dtype="bfloat16") == {
        "model": "m", "tensor_parallel_size": 2, "gpu_memory_utilization": 0.5, "max_model_len": 4096, "dtype": "bfloat16"}
    assert "max_model_len" not in engine_args("m")  # the model's own unless given
    # Without vLLM the options change nothing: it fails at once with the install line.
    with pytest.raises(ConfigError, match=r"pip install 'rolenrules\[vllm\]'"):
        make_backend("vllm:m", BackendOptions(tensor_parallel_size=2, base_url="http://ignored/v1"))
