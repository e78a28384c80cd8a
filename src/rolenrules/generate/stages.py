"""The LLM-facing work of RNR generation: the `Teacher` (writes system prompts, conflict turns and
answers from its prompt templates) and `answer_conversation` (answer each user turn under the
system prompt, verify, regenerate with feedback or fail with the reason).

A step that cannot finish raises `StageFailure`. Whether that is final (rejected) or retryable
(failed) follows from what went wrong: a server that could not be reached is retryable; a reply
that arrived but was unusable, or rules still broken after the last attempt, are final.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from rolenrules.generate._hints import HINTS
from rolenrules.generate.outcomes import StageFailure
from rolenrules.judge import Judge
from rolenrules.llm import LLM, ChatResult, InvalidReplyError, LLMError
from rolenrules.prompts import load_template
from rolenrules.records import CATEGORIES, Message, Rule, SystemPrompt, Usage, Verdict
from rolenrules.rules import sample_rules
from rolenrules.verify import verify_reply

#: The categories a teacher may give its rules: every reported category but the catch-all.
TEACHER_CATEGORIES = tuple(c for c in CATEGORIES if c != "other")
Category = Literal[TEACHER_CATEGORIES]  # type: ignore[valid-type]


class TeacherRule(BaseModel):
    text: str = Field(min_length=3)
    category: Category


class TeacherSystemPrompt(BaseModel):
    role: str = Field(min_length=3)
    rules: list[TeacherRule]


class ConflictTurn(BaseModel):
    message: str = Field(min_length=3)


def failure(stage: str, what: str, error: LLMError, **details: object) -> StageFailure:
    """A model call that failed for good: retryable unless the server answered with something unusable."""
    return StageFailure(stage, f"{what}: {error}", retryable=not isinstance(error, InvalidReplyError), **details)


@dataclass(frozen=True)
class RuleMix:
    """How many rules a system prompt gets, how many from the rule library, and of which types."""

    total: tuple[int, int]
    verifiable: tuple[int, int]
    types: list[str] | None = None


class Teacher:
    """The teacher model with its prompt templates and sampling settings."""

    TEMPLATES = ("system_prompt", "feedback", "conflict_turn")

    def __init__(self, llm: LLM, *, templates_dir: str | None = None, temperature: float = 0.7,
                 prompt_temperature: float = 1.0, max_tokens: int = 1024) -> None:
        self.llm = llm
        self.templates = {name: load_template(name, templates_dir) for name in self.TEMPLATES}
        self.temperature, self.prompt_temperature, self.max_tokens = temperature, prompt_temperature, max_tokens

    @property
    def identity(self) -> str:
        return self.llm.identity

    @property
    def template_versions(self) -> dict[str, str]:
        return {t.name: t.version for t in self.templates.values()}

    async def system_prompt(self, instructions: list[str], rng: random.Random, mix: RuleMix) -> tuple[SystemPrompt, Usage]:
        """A role plus rules for these instructions: teacher-written (judged) rules mixed with
        rule-library (verifiable) rules, in a shuffled order."""
        total = rng.randint(*mix.total)
        n_verifiable = min(rng.randint(*mix.verifiable), total)
        n_teacher = total - n_verifiable
        hint = rng.choice(HINTS)
        verifiable = sample_rules(rng, n_verifiable, types=mix.types, system_only=True) if n_verifiable else []
        messages = self.templates["system_prompt"].render(
            instructions=instructions, min_rules=max(1, n_teacher), max_rules=max(1, n_teacher), hint=hint)
        try:
            # About 60 tokens for the role and 60 per rule; a bounded budget stops a rambling model early.
            reply, result = await self.llm.structured(messages, TeacherSystemPrompt,
                                                      temperature=self.prompt_temperature,
                                                      max_tokens=min(1024, 160 + 80 * max(1, n_teacher)))
        except LLMError as error:
            raise failure("system_prompt", "teacher failed to write a system prompt", error) from None
        seen: set[str] = set()
        judged = []
        for item in reply.rules:
            text = item.text.strip()
            if text.lower() not in seen:
                seen.add(text.lower())
                judged.append(Rule(text=text, kind="judged", category=item.category))
        rules = judged[:n_teacher] + verifiable
        if not rules:
            raise StageFailure("system_prompt", "teacher wrote no usable rules")
        rng.shuffle(rules)
        return SystemPrompt(role=reply.role.strip(), rules=rules), result.usage

    async def conflict_turn(self, rule: Rule, request: str) -> tuple[str, Usage]:
        """A user turn that pushes the assistant to break `rule`."""
        messages = self.templates["conflict_turn"].render(rule=rule.text, request=request)
        try:
            reply, result = await self.llm.structured(messages, ConflictTurn, temperature=self.temperature,
                                                      max_tokens=256)
        except LLMError as error:
            raise failure("conflict_turn", "teacher failed to write a conflict turn", error) from None
        return reply.message.strip(), result.usage

    async def reply(self, messages: list[Message], turn: int) -> ChatResult:
        try:
            return await self.llm.chat(messages, temperature=self.temperature, max_tokens=self.max_tokens)
        except LLMError as error:
            raise failure("response", f"turn {turn}: teacher failed", error, turn=turn) from None

    def feedback(self, failed: list[tuple[Rule, Verdict]]) -> list[Message]:
        return self.templates["feedback"].render(failed=[{"text": r.text, "reason": v.reason or ""} for r, v in failed])


@dataclass
class Answered:
    messages: list[Message]
    verdicts: list[Verdict]
    attempts: list[int]
    usage: Usage


async def answer_conversation(teacher: Teacher, judge: Judge, system_prompt: SystemPrompt, user_turns: list[str], *,
                              max_attempts: int, drop_unscored: bool = False) -> Answered:
    """Answer each user turn under the system prompt. Each reply is verified; a failing reply is
    regenerated with feedback naming the failed rules, up to `max_attempts`, else StageFailure."""
    system_text = system_prompt.render()
    history: list[Message] = []
    verdicts: list[Verdict] = []
    attempts: list[int] = []
    usage = Usage()
    rules_by_id = {r.id: r for r in system_prompt.rules}
    for turn, user_text in enumerate(user_turns):
        history.append(Message(role="user", content=user_text))
        prompt = [Message(role="system", content=system_text), *history]
        messages = list(prompt)
        last_failed: list[Verdict] = []
        reply = ""
        for attempt in range(1, max_attempts + 1):
            result = await teacher.reply(messages, turn)
            usage = usage.add(result.usage)
            reply = result.text.strip()
            try:
                turn_verdicts = await verify_reply(reply, system_prompt.rules, system_prompt=system_text,
                                                   conversation=history, judge=judge, turn=turn)
            except LLMError as error:  # the judge was unreachable: no verdict, so nothing to keep or reject
                raise failure("verify", f"turn {turn}: judge failed", error, turn=turn) from None
            failed = [v for v in turn_verdicts if v.passed is False or (drop_unscored and v.passed is None)]
            if not failed:
                history.append(Message(role="assistant", content=reply))
                verdicts.extend(turn_verdicts)
                attempts.append(attempt)
                break
            last_failed = failed
            feedback = teacher.feedback([(rules_by_id[v.rule_id], v) for v in failed])
            messages = [*prompt, Message(role="assistant", content=reply), *feedback]
        else:
            names = "; ".join(f"{rules_by_id[v.rule_id].text!r} ({v.reason or v.source})" for v in last_failed)
            raise StageFailure("response", f"turn {turn}: still broke {len(last_failed)} rule(s) after "
                               f"{max_attempts} attempts: {names}", last_reply=reply, turn=turn,
                               verdicts=[v.model_dump() for v in last_failed])
    return Answered(messages=[Message(role="system", content=system_text), *history], verdicts=verdicts,
                    attempts=attempts, usage=usage)
