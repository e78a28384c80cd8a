"""The LLM judge against a local OpenAI-compatible server with scripted replies."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from typing import Any

import pytest

from rolenrules.judge import Judge
from rolenrules.llm import BackendOptions, make_llm
from rolenrules.records import Message, Rule

RULES = [Rule(text="Answer in English."), Rule(text="Never mention prices."), Rule(text="Sign off as Ada.")]
CONVERSATION = [Message(role="user", content="How much is the blue kettle?")]


def _judge(server: Any, votes: int = 1) -> Judge:
    llm = make_llm("openai:judge", BackendOptions(base_url=server.base_url, max_retries=0), attempts=2)
    return Judge(llm, votes=votes)


def _run(judge: Judge, coro: Any) -> Any:
    async def go() -> Any:
        try:
            return await coro
        finally:
            await judge.llm.aclose()
    return asyncio.run(go())


def _verdicts(*passed: bool) -> str:
    return json.dumps({"verdicts": [{"rule": i, "reason": f"r{i}", "passed": p} for i, p in enumerate(passed, 1)]})


@pytest.mark.parametrize(("replies", "expected", "sources"), [
    # well-formed: one verdict per rule, in order
    ([_verdicts(True, False, True)], [True, False, True], ["judge"] * 3),
    # fenced JSON with prose is still parsed
    (["Here you go:\n```json\n" + _verdicts(True, True, False) + "\n```"], [True, True, False], ["judge"] * 3),
    # never parses (both attempts): every rule unscored, none passed
    (["not json at all", "{\"verdicts\": [{\"rule\": 1}]}"], [None, None, None], ["unscored"] * 3),
    # the judge leaves rule 2 out and invents rule 9: rule 2 unscored, rule 9 ignored
    ([json.dumps({"verdicts": [{"rule": 1, "reason": "ok", "passed": True},
                               {"rule": 3, "reason": "no", "passed": False},
                               {"rule": 9, "reason": "?", "passed": True}]})],
     [True, None, False], ["judge", "unscored", "judge"]),
    # first reply malformed, the retry parses
    (["{\"verdicts\": [", _verdicts(False, False, False)], [False, False, False], ["judge"] * 3),
])
def test_judge_parses_or_marks_unscored(fake_server: Any, replies: list[str], expected: list[bool | None],
                                        sources: list[str]) -> None:
    script = itertools.chain(replies, itertools.repeat(replies[-1]))
    server = fake_server(reply=lambda body: next(script))
    judge = _judge(server)
    verdicts = _run(judge, judge.judge("You are a shop assistant.", CONVERSATION, "It costs 5 euros.", RULES, turn=1))
    assert [v.passed for v in verdicts] == expected
    assert [v.source for v in verdicts] == sources
    assert [v.rule_id for v in verdicts] == [r.id for r in RULES]
    assert all(v.turn == 1 for v in verdicts)


def test_judge_prompt_carries_system_prompt_conversation_and_rules(fake_server: Any) -> None:
    server = fake_server(reply=lambda body: _verdicts(True, True, True))
    judge = _judge(server)
    _run(judge, judge.judge("You are Ada, a kettle shop assistant.", CONVERSATION, "Hello!", RULES))
    prompt = server.log[0]["messages"][-1]["content"]
    assert "You are Ada, a kettle shop assistant." in prompt
    assert "How much is the blue kettle?" in prompt
    assert "Hello!" in prompt
    assert re.search(r"2\. Never mention prices\.", prompt)
    assert server.log[0]["response_format"]["type"] == "json_schema"


@pytest.mark.parametrize(("ballots", "expected", "source"), [
    ([True, True, False], True, "judge"),
    ([False, True, False], False, "judge"),
    ([True, False], None, "unscored"),         # a tie is unscored
    ([True, "garbage", "garbage"], True, "judge"),  # unparsable ballots drop out; the rest decide
])
def test_votes_majority(fake_server: Any, ballots: list[Any], expected: bool | None, source: str) -> None:
    by_seed = dict(enumerate(ballots))

    def reply(body: dict[str, Any]) -> str:
        # vote k is sent with seed k (vote 0 with none); retries shift the seed by 1000s
        choice = by_seed.get(body.get("seed") or 0, "garbage")
        return "garbage" if choice == "garbage" else _verdicts(choice)

    server = fake_server(reply=reply)
    judge = _judge(server, votes=len(ballots))
    [verdict] = _run(judge, judge.judge("sys", CONVERSATION, "reply", RULES[:1]))
    assert verdict.passed is expected
    assert verdict.source == source


@pytest.mark.parametrize(("reply", "expected", "source"), [
    (json.dumps({"reason": "stays a shop assistant", "in_role": True}), True, "judge"),
    (json.dumps({"reason": "talks about football", "in_role": False}), False, "judge"),
    ("I think it is fine", None, "unscored"),
])
def test_role_adherence(fake_server: Any, reply: str, expected: bool | None, source: str) -> None:
    server = fake_server(reply=lambda body: reply)
    judge = _judge(server)
    verdict = _run(judge, judge.role_adherence("You are a shop assistant.", CONVERSATION, "5 euros."))
    assert verdict.rule_id == "role"
    assert (verdict.passed, verdict.source) == (expected, source)


def test_no_rules_makes_no_call(fake_server: Any) -> None:
    server = fake_server()
    judge = _judge(server)
    assert _run(judge, judge.judge("sys", CONVERSATION, "reply", [])) == []
    assert server.requests == 0
