"""The LLM-facing steps of RNR generation: write a system prompt for K instructions, write a user
turn that pushes against a rule, and answer a conversation under the system prompt with
verification and regeneration-with-feedback."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from rolenrules.generate._hints import HINTS
from rolenrules.generate.config import GenerateConfig
from rolenrules.judge import Judge
from rolenrules.llm import LLM, InvalidReplyError, LLMError
from rolenrules.prompts import PromptTemplate, load_template
from rolenrules.records import CATEGORIES, Message, Rule, SystemPrompt, Usage, Verdict
from rolenrules.rules import sample_rules
from rolenrules.verify import verify_reply

Category = Literal["format", "length", "style", "language", "content", "scope", "safety", "persona"]


class TeacherRule(BaseModel):
    text: str = Field(min_length=3)
    category: Category


class TeacherSystemPrompt(BaseModel):
    role: str = Field(min_length=3)
    rules: list[TeacherRule]


class ConflictTurn(BaseModel):
    message: str = Field(min_length=3)


class StageFailure(Exception):
    """A unit of work that cannot be completed; it goes to the rejects file with this reason.
    `retryable` failures (the server was unreachable or kept failing) are tried again when the
    run is resumed; the others (rules still broken, unusable replies) are final."""

    def __init__(self, stage: str, reason: str, *, retryable: bool = False, **details: object) -> None:
        super().__init__(reason)
        self.stage, self.reason, self.retryable, self.details = stage, reason, retryable, details


def _teacher_failure(stage: str, what: str, error: LLMError, **details: object) -> StageFailure:
    return StageFailure(stage, f"{what}: {error}", retryable=not isinstance(error, InvalidReplyError), **details)


@dataclass
class Teacher:
    """What the stages share: the teacher and judge clients, the templates and the config."""

    config: GenerateConfig
    llm: LLM
    judge: Judge
    templates: dict[str, PromptTemplate] = field(default_factory=dict)

    @classmethod
    def create(cls, config: GenerateConfig, llm: LLM, judge: Judge) -> Teacher:
        names = ("system_prompt", "feedback", "conflict_turn")
        return cls(config, llm, judge, {n: load_template(n, config.templates) for n in names})

    @property
    def template_versions(self) -> dict[str, str]:
        return {t.name: t.version for t in self.templates.values()} | {
            "judge": self.judge.template.version}


async def write_system_prompt(teacher: Teacher, instructions: list[str], rng: random.Random) -> tuple[SystemPrompt, Usage]:
    """A role plus rules for these instructions: teacher-written (judged) rules mixed with
    rule-library (verifiable) rules, in a shuffled order."""
    config = teacher.config
    total = rng.randint(*config.rules_range)
    n_verifiable = min(rng.randint(*config.verifiable_range), total)
    n_teacher = total - n_verifiable
    hint = rng.choice(HINTS)
    verifiable = sample_rules(rng, n_verifiable, types=config.rule_types, system_only=True) if n_verifiable else []
    messages = teacher.templates["system_prompt"].render(
        instructions=instructions, min_rules=max(1, n_teacher), max_rules=max(1, n_teacher), hint=hint)
    try:
        # About 60 tokens for the role and 60 per rule; a bounded budget stops a rambling model early.
        reply, result = await teacher.llm.structured(messages, TeacherSystemPrompt,
                                                     temperature=config.prompt_temperature,
                                                     max_tokens=min(1024, 160 + 80 * max(1, n_teacher)))
    except (InvalidReplyError, LLMError) as error:
        raise _teacher_failure("system_prompt", "teacher failed to write a system prompt", error) from None
    seen: set[str] = set()
    judged = []
    for item in reply.rules:
        text = item.text.strip()
        if text.lower() in seen:
            continue
        seen.add(text.lower())
        judged.append(Rule(text=text, kind="judged", category=item.category if item.category in CATEGORIES else "other"))
    rules = judged[:n_teacher] + verifiable
    if not rules:
        raise StageFailure("system_prompt", "teacher wrote no usable rules")
    rng.shuffle(rules)
    return SystemPrompt(role=reply.role.strip(), rules=rules), result.usage


async def write_conflict_turn(teacher: Teacher, rule: Rule, request: str) -> tuple[str, Usage]:
    messages = teacher.templates["conflict_turn"].render(rule=rule.text, request=request)
    try:
        reply, result = await teacher.llm.structured(messages, ConflictTurn, temperature=teacher.config.temperature,
                                                     max_tokens=256)
    except (InvalidReplyError, LLMError) as error:
        raise _teacher_failure("conflict_turn", "teacher failed to write a conflict turn", error) from None
    return reply.message.strip(), result.usage


@dataclass
class Answered:
    messages: list[Message]
    verdicts: list[Verdict]
    attempts: list[int]
    usage: Usage


async def answer_conversation(teacher: Teacher, system_prompt: SystemPrompt, user_turns: list[str]) -> Answered:
    """Answer each user turn under the system prompt. Each reply is verified; a failing reply is
    regenerated with feedback naming the failed rules, up to `max_attempts`, else StageFailure."""
    config = teacher.config
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
        for attempt in range(1, config.max_attempts + 1):
            try:
                result = await teacher.llm.chat(messages, temperature=config.temperature, max_tokens=config.max_tokens)
            except (InvalidReplyError, LLMError) as error:
                raise _teacher_failure("response", f"turn {turn}: teacher failed", error, turn=turn) from None
            usage = usage.add(result.usage)
            reply = result.text.strip()
            turn_verdicts = await verify_reply(reply, system_prompt.rules, system_prompt=system_text,
                                              conversation=history, judge=teacher.judge, turn=turn)
            failed = [v for v in turn_verdicts if v.passed is False or (config.drop_unscored and v.passed is None)]
            if not failed:
                history.append(Message(role="assistant", content=reply))
                verdicts.extend(turn_verdicts)
                attempts.append(attempt)
                break
            last_failed = failed
            feedback = teacher.templates["feedback"].render(failed=[
                {"text": rules_by_id[v.rule_id].text, "reason": v.reason or ""} for v in failed])
            messages = [*prompt, Message(role="assistant", content=reply), *feedback]
        else:
            names = "; ".join(f"{rules_by_id[v.rule_id].text!r} ({v.reason or v.source})" for v in last_failed)
            raise StageFailure("response", f"turn {turn}: still broke {len(last_failed)} rule(s) after "
                               f"{config.max_attempts} attempts: {names}", turn=turn,
                               verdicts=[v.model_dump() for v in last_failed])
    return Answered(messages=[Message(role="system", content=system_text), *history], verdicts=verdicts,
                    attempts=attempts, usage=usage)

