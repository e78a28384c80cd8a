"""Scoring one benchmark example's response: its rules (by `verify.verify_reply`), role adherence
and judge calibration, and the result record that goes to `results.jsonl`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from rolenrules.errors import ConfigError
from rolenrules.evaluate.bench import bench_rules
from rolenrules.evaluate.results import EvalResult, ScoredRule
from rolenrules.evaluate.tasks import has_role
from rolenrules.judge import Judge
from rolenrules.records import Example, Verdict


def check_types(examples: Sequence[Example]) -> None:
    """Fail before any model call when a verifiable rule names a type the rule library lacks."""
    wanted = {r.type for e in examples for r in bench_rules(e) if r.kind == "verifiable" and r.type}
    if not wanted:
        return
    from rolenrules.rules import REGISTRY

    unknown = sorted(t for t in wanted if t not in REGISTRY)
    if unknown:
        raise ConfigError(f"benchmark uses rule types the rule library does not know: {', '.join(unknown)}")


def needs_judge(examples: Sequence[Example], *, role_adherence: bool) -> bool:
    if any(r.kind == "judged" for e in examples for r in bench_rules(e)):
        return True
    return role_adherence and any(wants_role(e) for e in examples)


def wants_role(example: Example) -> bool:
    """Role adherence is judged where there is a role: a system message, outside constraint-only tasks."""
    return example.system_text is not None and has_role(example.metadata.get("task"))


async def score_example(example: Example, response: str, *, judge: Judge | None, role_adherence: bool = True,
                calibrate: bool = False) -> tuple[list[ScoredRule], Verdict | None, list[ScoredRule]]:
    """(every rule with its verdict, role adherence or None, judge verdicts on verifiable rules).

    Rules are scored by `rolenrules.verify.verify_reply`, the same code that filters generated
    data: verifiable rules by the rule library (strict mode), judged rules by the judge.
    """
    from rolenrules.verify import verify_reply  # imports the rule library

    rules = bench_rules(example)
    turn = max(1, len(example.user_turns))
    verifiable = [r for r in rules if r.kind == "verifiable"]
    system = example.system_text or ""
    conversation = example.turns

    async def nothing() -> None:
        return None

    async def no_verdicts() -> list[Verdict]:
        return []

    verdicts, role, calibration = await asyncio.gather(
        verify_reply(response, rules, system_prompt=system, conversation=conversation, judge=judge, turn=turn),
        judge.role_adherence(system, conversation, response)
        if judge is not None and role_adherence and wants_role(example) else nothing(),
        judge.judge(system, conversation, response, verifiable, turn=turn)
        if judge is not None and calibrate and verifiable else no_verdicts(),
    )
    scored = [ScoredRule.of(r, v) for r, v in zip(rules, verdicts)]
    calibrated = [ScoredRule.of(r, v) for r, v in zip(verifiable, calibration)]
    return scored, role, calibrated


def make_result(example: Example, response: str, scored: list[ScoredRule], role: Verdict | None,
                calibration: list[ScoredRule], *, model: str | None, judge: str | None,
                finish_reason: str | None = None, error: str | None = None) -> EvalResult:
    metadata = {k: v for k, v in example.metadata.items() if k not in ("rules", "source")}
    status = EvalResult.status_of(scored)
    return EvalResult(
        id=example.id, task=str(example.metadata.get("task", "custom")), subset=example.metadata.get("subset"),
        turn=max(1, len(example.user_turns)), messages=example.messages, response=response,
        finish_reason=finish_reason, error=error, rules=scored, role=role, calibration=calibration,
        passed=status == "pass", status=status, model=model, judge=judge, metadata=metadata,
    )
