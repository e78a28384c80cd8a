"""An async continuous-batching engine of our own, with vLLM's async-engine surface, for testing the
`vllm:` backend's adapter without vLLM or a GPU.

`FakeEngine` works like vLLM's scheduler in miniature: a step loop, started in the event loop of
the first request (as vLLM's output handler is), advances every request in flight by one token
per step, so requests submitted together decode together and `batch_sizes` records how many
shared each step. Replies are words drawn from the prompt, temperature and seed (greedy is the
same every time; a seed gives the same words; no seed differs call to call), cut at max_tokens
with finish_reason "length". A structured request is answered with JSON built from its schema
(enforcement, as vLLM's grammar would do it), unless the schema uses a keyword in
`unsupported_keywords`, which is refused when the request is added, as vLLM refuses a schema its
grammar backend cannot compile. A prompt containing `FAIL_MARKER` fails mid-decoding.

`CURRENT_API` and `LEGACY_API` stand in for `vllm.sampling_params` of the two structured-output
generations; their classes mirror the real constructors (keyword-only, unknown names rejected).
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import json
import random
import types
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from rolenrules.testing.fake_openai import schema_instance

FAIL_MARKER = "ENGINE-FAULT"
_WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november".split()


class RequestOutputKind(enum.Enum):
    """As `vllm.sampling_params.RequestOutputKind`."""

    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2


@dataclass
class StructuredOutputsParams:
    """As `vllm.sampling_params.StructuredOutputsParams` (current vLLM): exactly one constraint."""

    json: str | dict[str, Any] | None = None
    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None
    json_object: bool | None = None
    disable_any_whitespace: bool = False
    disable_additional_properties: bool = False
    whitespace_pattern: str | None = None
    structural_tag: str | None = None

    def __post_init__(self) -> None:
        given = sum(v is not None for v in (self.json, self.regex, self.choice, self.grammar, self.json_object,
                                            self.structural_tag))
        if given != 1:
            raise ValueError(f"exactly one kind of structured-output constraint is needed, got {given}")


@dataclass
class GuidedDecodingParams:
    """As `vllm.sampling_params.GuidedDecodingParams` (vLLM before structured_outputs)."""

    json: str | dict[str, Any] | None = None
    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None
    json_object: bool | None = None
    backend: str | None = None
    whitespace_pattern: str | None = None


@dataclass(kw_only=True)
class SamplingParams:
    """As current `vllm.SamplingParams`, for the fields rnr could set."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: list[str] | None = None
    max_tokens: int | None = 16
    output_kind: RequestOutputKind = RequestOutputKind.CUMULATIVE
    structured_outputs: StructuredOutputsParams | None = None


@dataclass(kw_only=True)
class LegacySamplingParams:
    """As `vllm.SamplingParams` of the releases with `guided_decoding`."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    seed: int | None = None
    stop: list[str] | None = None
    max_tokens: int | None = 16
    output_kind: RequestOutputKind = RequestOutputKind.CUMULATIVE
    guided_decoding: GuidedDecodingParams | None = None


CURRENT_API = types.SimpleNamespace(SamplingParams=SamplingParams, StructuredOutputsParams=StructuredOutputsParams,
                                    RequestOutputKind=RequestOutputKind)
LEGACY_API = types.SimpleNamespace(SamplingParams=LegacySamplingParams, GuidedDecodingParams=GuidedDecodingParams,
                                   RequestOutputKind=RequestOutputKind)


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    finish_reason: str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]
    finished: bool


@dataclass
class Submitted:
    """One request as the engine received it, and how it ended."""

    request_id: str
    prompt: str
    params: Any
    reply: str | None = None
    ended: str | None = None  # "finished", "aborted" or "failed"


@dataclass
class FakeEngine:
    tokenizer: Any
    step_s: float = 0.002
    async_tokenizer: bool = False  # vLLM before v1's renderer made get_tokenizer() a coroutine
    unsupported_keywords: tuple[str, ...] = ("patternProperties",)
    batch_sizes: list[int] = field(default_factory=list)
    submitted: list[Submitted] = field(default_factory=list)
    in_flight: set[str] = field(default_factory=set)
    shut_down: bool = False
    _stepper: asyncio.Task[None] | None = None
    _tick: asyncio.Event | None = None

    def get_tokenizer(self) -> Any:
        if self.async_tokenizer:
            async def later() -> Any:
                return self.tokenizer
            return later()
        return self.tokenizer

    def by_prompt(self, text: str) -> Submitted:
        """The request whose prompt contains `text`."""
        (found,) = [s for s in self.submitted if text in s.prompt]
        return found

    async def generate(self, prompt: dict[str, list[int]], sampling_params: Any,
                       request_id: str) -> AsyncIterator[RequestOutput]:
        if self.shut_down:
            raise RuntimeError("engine is shut down")
        ids = list(prompt["prompt_token_ids"])
        record = Submitted(request_id, self.tokenizer.decode(ids), sampling_params)
        self.submitted.append(record)
        schema = _schema_of(sampling_params)
        if schema is not None:
            refused = [k for k in self.unsupported_keywords if k in json.dumps(schema)]
            if refused:  # refused when added, before any step (as vLLM validates requests)
                record.ended = "failed"
                raise ValueError(f"The provided JSON schema contains features not supported: {refused[0]}")
        tokens, finish = _reply(record.prompt, sampling_params, schema)
        joiner = " " if schema is None else ""  # a JSON reply comes one character per token
        record.reply = joiner.join(tokens)
        final_only = getattr(sampling_params, "output_kind", None) is RequestOutputKind.FINAL_ONLY
        self.in_flight.add(request_id)
        self._start_stepper()
        emitted: list[str] = []
        try:
            for token in tokens:
                await self._next_step()
                if FAIL_MARKER in record.prompt:
                    raise RuntimeError("CUDA error: an illegal memory access was encountered (fake)")
                emitted.append(token)
                done = len(emitted) == len(tokens)
                if done or not final_only:
                    yield RequestOutput(request_id, ids, [CompletionOutput(
                        0, joiner.join(emitted), list(range(len(emitted))), finish if done else None)], done)
            record.ended = "finished"
        except (asyncio.CancelledError, GeneratorExit):
            record.ended = "aborted"
            raise
        except Exception:
            record.ended = "failed"
            raise
        finally:
            self.in_flight.discard(request_id)

    def _start_stepper(self) -> None:
        if self._stepper is None:
            self._tick = asyncio.Event()
            self._stepper = asyncio.get_running_loop().create_task(self._steps())

    async def _next_step(self) -> None:
        assert self._tick is not None
        await self._tick.wait()

    async def _steps(self) -> None:
        while True:
            await asyncio.sleep(self.step_s)
            if self.in_flight:
                self.batch_sizes.append(len(self.in_flight))
            tick, self._tick = self._tick, asyncio.Event()
            assert tick is not None
            tick.set()

    def shutdown(self) -> None:
        self.shut_down = True
        if self._stepper is not None:
            self._stepper.cancel()


def _schema_of(params: Any) -> dict[str, Any] | None:
    constraint = getattr(params, "structured_outputs", None) or getattr(params, "guided_decoding", None)
    if constraint is None:
        return None
    return json.loads(constraint.json) if isinstance(constraint.json, str) else constraint.json


def _reply(prompt: str, params: Any, schema: dict[str, Any] | None) -> tuple[list[str], str]:
    """The reply's tokens (words; characters of the JSON for a structured request) and finish reason."""
    if schema is not None:
        tokens = list(json.dumps(schema_instance(schema)))
    else:
        if params.temperature > 0 and params.seed is None:
            rng = random.Random()  # unseeded sampling differs call to call
        else:
            key = prompt if params.temperature == 0 else f"{prompt}|{params.temperature}|{params.top_p}|{params.seed}"
            rng = random.Random(hashlib.sha256(key.encode()).hexdigest())
        tokens = [rng.choice(_WORDS) for _ in range(rng.randint(6, 12))]
    if params.max_tokens is not None and len(tokens) > params.max_tokens:
        return tokens[: params.max_tokens], "length"
    return tokens, "stop"
