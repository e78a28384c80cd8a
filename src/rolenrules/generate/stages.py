"""The LLM-facing work of RNR generation: the `Teacher` (writes system prompts, conflict turns and
answers from its prompt templates) and `answer_conversation` (answer each user turn under the
system prompt, verify, regenerate with feedback or fail with the reason).

A step that cannot finish raises `StageFailure`. Whether that is final (rejected) or retryable
(failed) follows from what went wrong: a server that could not be reached is retryable; a reply
that arrived but was unusable, or rules still broken after the last attempt, are final.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from rolenrules.generate._hints import HINTS
from rolenrules.generate.outcomes import StageFailure, Trials
from rolenrules.generate.roles import decide_roles
from rolenrules.generate.template_copy import copied_example, template_examples
from rolenrules.judge import Judge, transcript_tag
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
    """How many rules a system prompt gets, how many from the rule library, and of which types.
    Without judged rules (`judged` False) every rule comes from the library, at most `library_max`
    (the most mutually compatible types `types` allow)."""

    total: tuple[int, int]
    verifiable: tuple[int, int]
    types: list[str] | None = None
    judged: bool = True
    library_max: int = 1_000

    def counts(self, rng: random.Random) -> tuple[int, int]:
        """(teacher-written, rule-library) rules for one system prompt."""
        total = rng.randint(*self.total)
        if not self.judged:
            return 0, min(total, self.library_max)
        n_verifiable = min(rng.randint(*self.verifiable), total)
        return total - n_verifiable, n_verifiable


class Teacher:
    """The teacher model with its prompt templates and sampling settings."""

    TEMPLATES = ("system_prompt", "feedback", "conflict_turn")

    def __init__(self, llm: LLM, *, templates_dir: str | None = None, temperature: float = 0.7,
                 prompt_temperature: float = 1.0, max_tokens: int = 1024, roles: str = "teacher") -> None:
        self.llm = llm
        #: Where roles come from (`--roles`): this teacher, the built-in library or the user's file.
        self.role_source = decide_roles(roles, llm.identity)
        self.templates = {name: load_template(name, templates_dir) for name in self.TEMPLATES}
        self.temperature, self.prompt_temperature, self.max_tokens = temperature, prompt_temperature, max_tokens
        self._feedback: dict[tuple[tuple[str, str], ...], list[Message]] = {}
        #: The example replies the system-prompt template shows (a copy of one is rejected).
        self.examples = template_examples(self.templates["system_prompt"].render(
            instructions=["an example request"], min_rules=1, max_rules=1, hint="an example"))

    @property
    def identity(self) -> str:
        return self.llm.identity

    @property
    def template_versions(self) -> dict[str, str]:
        return {t.name: t.version for t in self.templates.values()}

    async def system_prompt(self, instructions: list[str], rng: random.Random, mix: RuleMix, *,
                            tries: int = 1) -> tuple[SystemPrompt, Usage]:
        """A role plus rules for these instructions: teacher-written (judged) rules mixed with
        rule-library (verifiable) rules, in a shuffled order. A reply that copies the template's
        example is asked for again with another seed, up to `tries` times, then rejected. With roles
        from the library or a file (`role_source`), the role is drawn, not written, and the teacher is
        asked only for its rules (not at all when there are none to write)."""
        n_teacher, n_verifiable = mix.counts(rng)
        hint = rng.choice(HINTS)
        role = self.role_source.pick(hint, rng)
        verifiable = sample_rules(rng, n_verifiable, types=mix.types, system_only=True) if n_verifiable else []
        if role is not None and not n_teacher:
            # The role is given and every rule comes from the library: nothing for the teacher to write.
            if not verifiable:
                raise StageFailure("system_prompt", "no rules to put under the role")
            rules = list(verifiable)
            rng.shuffle(rules)
            return SystemPrompt(role=role, rules=rules), Usage()
        messages = self.templates["system_prompt"].render(
            instructions=instructions, min_rules=n_teacher, max_rules=n_teacher, hint=hint)
        usage = Usage()
        for attempt in range(tries):
            try:
                # About 60 tokens for the role and 60 per rule; a bounded budget stops a rambling model early.
                reply, result = await self.llm.structured(messages, TeacherSystemPrompt,
                                                          temperature=self.prompt_temperature,
                                                          max_tokens=min(1024, 160 + 80 * max(1, n_teacher)),
                                                          seed=attempt or None)
            except LLMError as error:
                raise failure("system_prompt", "teacher failed to write a system prompt", error) from None
            usage = usage.add(result.usage)
            seen: set[str] = set()
            judged = []
            for item in reply.rules:
                text = item.text.strip()
                if text.lower() not in seen:
                    seen.add(text.lower())
                    judged.append(Rule(text=text, kind="judged", category=item.category))
            judged = judged[:n_teacher]
            copied = copied_example(role or reply.role, [r.text for r in judged], self.examples)
            if copied is None:
                break
        else:
            raise StageFailure("system_prompt", f"teacher copied the prompt template's example ({tries} "
                               f"tr{'y' if tries == 1 else 'ies'}): {copied}", last_reply=result.text)
        rules = judged + verifiable
        if not rules:
            raise StageFailure("system_prompt", "teacher wrote no usable rules", last_reply=result.text)
        rng.shuffle(rules)
        return SystemPrompt(role=(role or reply.role).strip(), rules=rules), usage

    async def conflict_turn(self, rule: Rule, request: str) -> tuple[str, Usage]:
        """A user turn that pushes the assistant to break `rule`."""
        messages = self.templates["conflict_turn"].render(rule=rule.text, request=request)
        try:
            reply, result = await self.llm.structured(messages, ConflictTurn, temperature=self.temperature,
                                                      max_tokens=256)
        except LLMError as error:
            raise failure("conflict_turn", "teacher failed to write a conflict turn", error) from None
        return reply.message.strip(), result.usage

    async def reply(self, messages: list[Message], turn: int, *, sample: int = 0) -> ChatResult:
        """The teacher's answer. `sample` > 0 asks for another seeded sample of the same request."""
        try:
            return await self.llm.chat(messages, temperature=self.temperature, max_tokens=self.max_tokens,
                                       seed=sample or None)
        except LLMError as error:
            raise failure("response", f"turn {turn}: teacher failed", error, turn=turn) from None

    def feedback(self, failed: list[tuple[Rule, Verdict]]) -> list[Message]:
        # The same rules break for the same reasons over and over in a run: render each note once.
        key = tuple((r.text, v.reason or "") for r, v in failed)
        note = self._feedback.get(key)
        if note is None:
            if len(self._feedback) >= 4096:
                self._feedback.clear()
            note = self._feedback[key] = self.templates["feedback"].render(
                failed=[{"text": text, "reason": reason} for text, reason in key])
        return list(note)


@dataclass
class Answered:
    messages: list[Message]
    verdicts: list[Verdict]
    attempts: list[int]
    usage: Usage


@dataclass
class _Reply:
    text: str
    verdicts: list[Verdict]
    failed: list[Verdict]
    attempt: int
    sample: int

    @property
    def broke_a_rule(self) -> bool:
        """Failed on a rule that was checked (not only unscored): a reply the rules prefer less."""
        return any(v.passed is False for v in self.failed)


def preference_pair(system_prompt: SystemPrompt, prompt: list[Message], chosen: _Reply, rejected: _Reply,
                    *, conversation_id: str, turn: int) -> dict[str, Any]:
    """A preference record in `rolenrules.train.pairs`' format (TRL's conversational preference
    columns plus provenance): the reply that followed every rule over one that broke some."""
    rules = {r.id: r for r in system_prompt.rules}
    broken = [v for v in rejected.failed if v.passed is False]
    return {
        "prompt": [m.model_dump() for m in prompt],
        "chosen": [{"role": "assistant", "content": chosen.text}],
        "rejected": [{"role": "assistant", "content": rejected.text}],
        "metadata": {
            "system_prompt_id": system_prompt.id, "conversation_id": conversation_id, "turn": turn,
            "chosen_attempt": chosen.attempt, "chosen_sample": chosen.sample,
            "rejected_attempt": rejected.attempt, "rejected_sample": rejected.sample,
            "failed_rules": [{**rules[v.rule_id].model_dump(mode="json"), "reason": v.reason, "source": v.source}
                             for v in broken],
        },
    }


async def answer_conversation(teacher: Teacher, judge: Judge, system_prompt: SystemPrompt, user_turns: list[str], *,
                              max_attempts: int, drop_unscored: bool = False, best_of: int = 1,
                              conversation_id: str = "", trials: Trials | None = None) -> Answered:
    """Answer each user turn under the system prompt. Each reply is verified; a failing reply is
    regenerated with feedback naming the failed rules, up to `max_attempts`, else StageFailure.
    The first attempt samples `best_of` replies (seeded) and keeps the first that passes.

    `trials` collects every reply checked and the preference pairs they make: for a turn where a
    reply broke a rule and a later (or another sampled) reply followed every rule, the passing
    reply is `chosen` and the most recent breaking one `rejected`."""
    trials = trials if trials is not None else Trials()
    system_text = system_prompt.render()
    history: list[Message] = []
    verdicts: list[Verdict] = []
    attempts: list[int] = []
    usage = Usage()
    rules_by_id = {r.id: r for r in system_prompt.rules}

    async def verified(messages: list[Message], turn: int, attempt: int, sample: int) -> _Reply:
        nonlocal usage
        result = await teacher.reply(messages, turn, sample=sample)
        usage = usage.add(result.usage)
        text = result.text.strip()
        try:
            with transcript_tag(turn=turn, attempt=attempt, sample=sample):
                checked = await verify_reply(text, system_prompt.rules, system_prompt=system_text,
                                             conversation=history, judge=judge, turn=turn)
        except LLMError as error:  # the judge was unreachable: no verdict, so nothing to keep or reject
            raise failure("verify", f"turn {turn}: judge failed", error, turn=turn) from None
        failed = [v for v in checked if v.passed is False or (drop_unscored and v.passed is None)]
        trials.tries.append({"turn": turn, "attempt": attempt, "sample": sample, "passed": not failed,
                             "broken": [v.rule_id for v in checked if v.passed is False],
                             "unscored": [v.rule_id for v in checked if v.passed is None]})
        return _Reply(text, checked, failed, attempt, sample)

    for turn, user_text in enumerate(user_turns):
        history.append(Message(role="user", content=user_text))
        prompt = [Message(role="system", content=system_text), *history]
        messages = list(prompt)
        tried: list[_Reply] = []
        for attempt in range(1, max_attempts + 1):
            samples = best_of if attempt == 1 else 1
            if samples == 1:  # no task per reply when there is nothing to run beside it
                replies = [await verified(messages, turn, attempt, 0)]
            else:
                replies = list(await asyncio.gather(*(verified(messages, turn, attempt, i) for i in range(samples))))
            tried += replies
            kept = next((r for r in replies if not r.failed), None)
            if kept is not None:
                rejected = next((r for r in reversed(tried) if r.broke_a_rule), None)
                if rejected is not None:
                    trials.pairs.append(preference_pair(system_prompt, prompt, kept, rejected,
                                                        conversation_id=conversation_id, turn=turn))
                history.append(Message(role="assistant", content=kept.text))
                verdicts.extend(kept.verdicts)
                attempts.append(attempt)
                break
            last = replies[0]
            feedback = teacher.feedback([(rules_by_id[v.rule_id], v) for v in last.failed])
            messages = [*prompt, Message(role="assistant", content=last.text), *feedback]
        else:
            last = tried[-1] if max_attempts > 1 else tried[0]  # the regenerated reply, or the first sample
            names = "; ".join(f"{rules_by_id[v.rule_id].text!r} ({v.reason or v.source})" for v in last.failed)
            raise StageFailure("response", f"turn {turn}: still broke {len(last.failed)} rule(s) after "
                               f"{max_attempts} attempts: {names}", last_reply=last.text, turn=turn,
                               verdicts=[v.model_dump() for v in last.failed])
    return Answered(messages=[Message(role="system", content=system_text), *history], verdicts=verdicts,
                    attempts=attempts, usage=usage)
