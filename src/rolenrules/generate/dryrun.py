"""`rnr generate --dry-run`: how many requests a run would make, and its tokens and cost, before
paying for it — from the plan (exact counts of system prompts, conversations and turns) and a
handful of real calls (one system prompt, one reply, one judge call), without writing anything.

Counts are a range: the low end has every reply follow its rules at once; the high end has every
turn use every attempt (and every system prompt every try). Prompt tokens scale with each call's
text at the tokens-per-character rate the sample calls measured; completion tokens are the
sample's, per kind of call.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rolenrules.generate.calibrate import RULES_PER_ITEM, decide_before_calibration
from rolenrules.generate.config import GenerateConfig
from rolenrules.generate.outcomes import StageFailure
from rolenrules.generate.pipeline import Plan, load_seeds, make_plans, validate
from rolenrules.generate.stages import RuleMix, Teacher
from rolenrules.judge import Judge
from rolenrules.llm import LLM, LLMError
from rolenrules.records import Message, Usage

#: At most this many real calls are made for the sample.
SAMPLE_CALLS = 3


@dataclass(frozen=True)
class CallKind:
    """One kind of request: how many (a range) and the tokens each is expected to take."""

    name: str
    low: int
    high: int
    prompt_tokens: float
    completion_tokens: float

    def tokens(self, n: int) -> tuple[float, float]:
        return n * self.prompt_tokens, n * self.completion_tokens


@dataclass(frozen=True)
class DryRunEstimate:
    system_prompts: int
    conversations: int
    turns: int
    judged_rules: str
    kinds: list[CallKind]
    sample_calls: int
    sample_usage: Usage
    notes: list[str] = field(default_factory=list)

    @property
    def requests(self) -> tuple[int, int]:
        return sum(k.low for k in self.kinds), sum(k.high for k in self.kinds)

    def tokens(self, end: str) -> tuple[float, float]:
        """(prompt, completion) tokens at the `low` or `high` end."""
        pairs = [k.tokens(k.low if end == "low" else k.high) for k in self.kinds]
        return sum(p for p, _ in pairs), sum(c for _, c in pairs)

    def cost(self, config: GenerateConfig) -> tuple[float, float] | None:
        low, high = config.cost(*self.tokens("low")), config.cost(*self.tokens("high"))
        return None if low is None or high is None else (low, high)


def _chars(messages: list[Message]) -> int:
    return sum(len(m.content) for m in messages)


def estimate(config: GenerateConfig, make_clients: Callable[[GenerateConfig], tuple[LLM, LLM]]) -> DryRunEstimate:
    """Count and sample; nothing is written (the clients' request cache lives in a temporary folder)."""
    library_max = validate(config)
    seeds = load_seeds(config)
    plans = make_plans(config, seeds)
    with tempfile.TemporaryDirectory(prefix="rnr-dry-run-") as tmp:
        clients = make_clients(config.model_copy(update={"cache": str(Path(tmp) / "cache.sqlite"),
                                                         "run_dir": str(Path(tmp) / "run")}))
        return asyncio.run(_estimate(config, plans, library_max, *clients))


async def _estimate(config: GenerateConfig, plans: list[Plan], library_max: int, teacher_llm: LLM,
                    judge_llm: LLM) -> DryRunEstimate:
    teacher = Teacher(teacher_llm, templates_dir=config.templates, temperature=config.temperature,
                      prompt_temperature=config.prompt_temperature, max_tokens=config.max_tokens, roles=config.roles)
    judge = Judge(judge_llm, templates_dir=config.templates)
    notes: list[str] = []
    early = decide_before_calibration(config.judged_rules, judge.identity)
    if early is not None:
        judged, judged_text = early.on, early.line()
    elif config.judged_rules == "on":
        judged, judged_text = True, "judged rules on (--judged-rules on)"
    else:
        judged, judged_text = True, ("judged rules: decided by the judge's calibration at the start of the run; "
                                     "counted here as on (the high end)")
    calibrating = config.judge_calibration > 0 and (early is None or early.on)
    mix = RuleMix(config.rules_range, config.verifiable_range, config.sampled_rule_types, judged=judged,
                  library_max=library_max)
    try:
        sample = await _sample(config, plans[0], teacher, judge, mix)
    except StageFailure as failure:
        raise LLMError(f"dry run: a sample call failed: {failure.reason}") from None
    finally:
        await teacher_llm.aclose()
        if judge_llm.backend is not teacher_llm.backend:
            await judge_llm.aclose()
    usage = teacher_llm.usage.add(judge.usage)
    per_char = sample["prompt_tokens"] / max(1, sample["prompt_chars"])

    conversations = sum(len(p.seeds) for p in plans)
    user_chars = [[len(t) for t in s.user_turns[: config.max_turns]] for p in plans for s in p.seeds]
    turns = sum(len(t) for t in user_chars)
    conflicts = round(config.conflict_rate * conversations)
    turns_total = turns + conflicts
    reply_tokens = sample["reply_completion"]
    system_chars = sample["system_chars"]
    reply_chars = sample["reply_chars"]

    # Prompt tokens of one reply request: system prompt + the conversation so far.
    def reply_prompt(turn_chars: list[int]) -> float:
        return sum((system_chars + sum(turn_chars[: i + 1]) + i * reply_chars) * per_char
                   for i in range(len(turn_chars)))

    reply_prompt_total = sum(reply_prompt(chars) for chars in user_chars)
    per_reply_prompt = reply_prompt_total / max(1, turns)
    low_replies = turns_total * config.best_of
    high_replies = turns_total * (config.best_of + config.max_attempts - 1)
    prompt_render = [teacher.templates["system_prompt"].render(
        instructions=[s.user_turns[0] for s in p.seeds], min_rules=3, max_rules=3, hint="x") for p in plans]
    # With drawn roles (--roles) and no judged rules the teacher writes no system prompt at all.
    writes_prompts = teacher.role_source.kind == "teacher" or judged
    kinds = [
        CallKind("system prompts (teacher)", len(plans), len(plans) * config.max_attempts,
                 sum(_chars(m) for m in prompt_render) / len(plans) * per_char, sample["prompt_completion"]),
    ] if writes_prompts else []
    kinds.append(CallKind("replies (teacher)", low_replies, high_replies, per_reply_prompt, reply_tokens))
    if conflicts:
        kinds.append(CallKind("conflict turns (teacher)", conflicts, conflicts, 200 * per_char * 4, 60))
    if judged:
        judge_prompt = sample["judge_prompt"] or (per_reply_prompt + 400)
        kinds.append(CallKind("rule verdicts (judge)", low_replies, high_replies, judge_prompt,
                              sample["judge_completion"] or 40 * 4))
    if calibrating:
        n = config.judge_calibration
        kinds += [CallKind("calibration replies (teacher)", n, n, per_reply_prompt, reply_tokens),
                  CallKind("calibration verdicts (judge)", n, n, (sample["judge_prompt"] or per_reply_prompt + 400),
                           (sample["judge_per_rule"] or 40) * min(RULES_PER_ITEM, library_max))]
    if sample["failed"]:
        notes.append(sample["failed"])
    return DryRunEstimate(system_prompts=len(plans), conversations=conversations, turns=turns_total,
                          judged_rules=judged_text, kinds=kinds, sample_calls=usage.requests + usage.cached_requests,
                          sample_usage=usage, notes=notes)


async def _sample(config: GenerateConfig, plan: Plan, teacher: Teacher, judge: Judge,
                  mix: RuleMix) -> dict[str, Any]:
    """One system prompt, one reply under it, and one judge call (when it has judged rules)."""
    rng = random.Random(f"prompt-{config.seed}-{plan.idx}")
    instructions = [s.user_turns[0] for s in plan.seeds]
    out: dict[str, Any] = {"prompt_tokens": 0, "prompt_chars": 0, "prompt_completion": 0.0, "reply_completion": 0.0,
           "system_chars": 0, "reply_chars": 0, "judge_prompt": 0.0, "judge_completion": 0.0, "judge_per_rule": 0.0, "failed": ""}
    before = teacher.llm.usage
    try:
        system_prompt, _ = await teacher.system_prompt(instructions, rng, mix, tries=1)
    except StageFailure as failure:
        if failure.retryable:
            raise
        out["failed"] = f"the sample system prompt was not usable ({failure.reason}); reply figures are rough"
        system_prompt = None
    used = teacher.llm.usage
    rendered = teacher.templates["system_prompt"].render(instructions=instructions, min_rules=3, max_rules=3, hint="x")
    out["prompt_tokens"] += used.prompt_tokens - before.prompt_tokens
    if used.requests + used.cached_requests > before.requests + before.cached_requests:  # a drawn role asks nothing
        out["prompt_chars"] += _chars(rendered)
    out["prompt_completion"] = float(used.completion_tokens - before.completion_tokens)
    system_text = system_prompt.render() if system_prompt else "You are an assistant.\n\nRules:\n1. Be brief."
    out["system_chars"] = len(system_text)
    messages = [Message(role="system", content=system_text), Message(role="user", content=instructions[0])]
    result = await teacher.reply(messages, 0)
    out["prompt_tokens"] += result.usage.prompt_tokens
    out["prompt_chars"] += _chars(messages)
    out["reply_completion"] = float(result.usage.completion_tokens)
    out["reply_chars"] = len(result.text)
    judged = [r for r in (system_prompt.rules if system_prompt else []) if r.kind == "judged"]
    if judged:
        before = judge.usage
        await judge.judge(system_text, messages[1:], result.text, judged, turn=0)
        out["judge_prompt"] = float(judge.usage.prompt_tokens - before.prompt_tokens)
        out["judge_completion"] = float(judge.usage.completion_tokens - before.completion_tokens)
        out["judge_per_rule"] = out["judge_completion"] / len(judged)
    return out
