"""The LLM judge: per-rule verdicts (pass/fail + short reason) for rules code cannot check.

One structured call judges all the given rules of one reply, in the context of the system prompt
and the conversation. A reply that arrived but never parses, or that leaves a rule out, gives
*unscored* verdicts for those rules — never a pass. A judge that cannot be reached (or keeps
failing with server errors) gives no verdict at all: `LLMError` propagates, so the caller can
retry the work later instead of recording rules as checked. With `votes > 1` the judge is asked
several times (different seeds) and the majority decides; a tie is unscored.

Every call can be kept for audit: a `transcripts` sink receives, per call, the prompt sent, the
raw reply (or why there was none) and the rules asked about, tagged with the unit of work the
caller names around the call (`transcript_tag(conversation=..., turn=...)`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from rolenrules.llm import LLM, ChatResult, InvalidReplyError
from rolenrules.prompts import load_template
from rolenrules.records import Message, Rule, Usage, Verdict

#: Receives one transcript (a JSON-ready dict) per judge call.
TranscriptSink = Callable[[dict[str, Any]], None]

#: What the current judge calls belong to; set by callers with `transcript_tag`. A context variable,
#: so concurrent tasks (one per conversation or example) each carry their own.
_TAG: ContextVar[dict[str, Any]] = ContextVar("judge_transcript_tag", default={})


@contextmanager
def transcript_tag(**fields: Any) -> Iterator[None]:
    """Tag the judge calls made inside this block (in this task and the tasks it starts)."""
    token = _TAG.set({**_TAG.get(), **fields})
    try:
        yield
    finally:
        _TAG.reset(token)


class RuleVerdictOut(BaseModel):
    rule: int = Field(description="the rule's number")
    reason: str = Field(description="one short sentence")
    passed: bool


class JudgeReply(BaseModel):
    verdicts: list[RuleVerdictOut]


class RoleReply(BaseModel):
    reason: str
    in_role: bool


class Judge:
    """Judges replies against rules with an LLM. `llm.identity` is recorded as the judge model."""

    def __init__(self, llm: LLM, *, votes: int = 1, templates_dir: str | Path | None = None,
                 temperature: float = 0.0, max_tokens: int = 1024, transcripts: TranscriptSink | None = None) -> None:
        if votes < 1:
            raise ValueError("votes must be at least 1")
        self.llm = llm
        self.votes = votes
        self.template = load_template("judge", templates_dir)
        self.role_template = load_template("role_adherence", templates_dir)
        self.temperature = temperature
        self.max_tokens = max_tokens
        #: Where each call's transcript goes (None: not kept).
        self.transcripts = transcripts

    @property
    def identity(self) -> str:
        return self.llm.identity

    @property
    def usage(self) -> Usage:
        """The judge's token usage: its client's, counted in one place (cached replies included)."""
        return self.llm.usage

    async def judge(self, system_prompt: str, conversation: Sequence[Message], response: str,
                    rules: Sequence[Rule], *, turn: int | None = None) -> list[Verdict]:
        """One verdict per rule, in order. `conversation` excludes the system message and the reply.
        Raises `LLMError` when the judge could not be reached: that is no verdict."""
        if not rules:
            return []
        numbered = [{"number": i, "text": r.text} for i, r in enumerate(rules, start=1)]
        messages = self.template.render(system_prompt=system_prompt, conversation=list(conversation),
                                        response=response, rules=numbered)
        # A verdict needs a few dozen tokens; a budget that grows with the rule count keeps a
        # rambling judge (small local models) from spending the whole max_tokens on each call.
        budget = min(self.max_tokens, 96 + 96 * len(rules))
        ballots = await asyncio.gather(*(self._ballot(messages, rules, vote, budget) for vote in range(self.votes)))
        verdicts = []
        for index, rule in enumerate(rules, start=1):
            votes = [b[index] for b in ballots if b is not None and index in b]
            verdicts.append(_decide(rule, votes, turn))
        return verdicts

    async def _ballot(self, messages: list[Message], rules: Sequence[Rule], vote: int,
                      budget: int) -> dict[int, RuleVerdictOut] | None:
        seed = None if vote == 0 else vote
        try:
            reply, result = await self.llm.structured(messages, JudgeReply, temperature=self.temperature,
                                                      max_tokens=budget, seed=seed)
        except InvalidReplyError as error:  # it answered, but not with a verdict we can read: unscored
            self._keep("rules", messages, None, error=str(error), vote=vote, rules=rules)
            return None
        self._keep("rules", messages, result, vote=vote, rules=rules)
        return {v.rule: v for v in reply.verdicts if 1 <= v.rule <= len(rules)}

    def _keep(self, kind: str, messages: Sequence[Message], result: ChatResult | None, *, error: str | None = None,
              vote: int = 0, rules: Sequence[Rule] = ()) -> None:
        if self.transcripts is None:
            return
        self.transcripts({
            **_TAG.get(), "kind": kind, "vote": vote, "judge": self.identity,
            "template": (self.role_template if kind == "role" else self.template).tag,
            "rules": [{"number": i, "id": r.id, "text": r.text, "type": r.type} for i, r in enumerate(rules, start=1)],
            "prompt": [m.model_dump() for m in messages],
            "reply": result.text if result is not None else None,
            "cached": bool(result.cached) if result is not None else False,
            "error": error,
        })

    async def role_adherence(self, system_prompt: str, conversation: Sequence[Message], response: str) -> Verdict:
        """Whether the reply stays in the role (scope, persona, tone), as a verdict with rule_id 'role'.
        Raises `LLMError` when the judge could not be reached."""
        messages = self.role_template.render(system_prompt=system_prompt, conversation=list(conversation),
                                             response=response)
        try:
            reply, result = await self.llm.structured(messages, RoleReply, temperature=self.temperature,
                                                      max_tokens=min(self.max_tokens, 192))
        except InvalidReplyError as error:
            self._keep("role", messages, None, error=str(error))
            return Verdict(rule_id="role", passed=None, source="unscored", reason=f"judge gave no verdict: {error}"[:300])
        self._keep("role", messages, result)
        return Verdict(rule_id="role", passed=reply.in_role, source="judge", reason=reply.reason[:300])


def _decide(rule: Rule, votes: list[RuleVerdictOut], turn: int | None) -> Verdict:
    if not votes:
        return Verdict(rule_id=rule.id, passed=None, source="unscored", reason="judge gave no parsable verdict",
                       turn=turn)
    tally = Counter(v.passed for v in votes)
    if tally[True] == tally[False]:
        return Verdict(rule_id=rule.id, passed=None, source="unscored",
                       reason=f"judge votes tied {tally[True]}-{tally[False]}", turn=turn)
    passed = tally[True] > tally[False]
    reason = next(v.reason for v in votes if v.passed == passed)
    return Verdict(rule_id=rule.id, passed=passed, source="judge", reason=reason[:300], turn=turn)
