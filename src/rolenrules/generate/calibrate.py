"""Judge calibration in every generation run, and what it decides: whether teacher-written rules
(which only the judge can check) go into the data.

Before any system prompt is written, the teacher answers a few seed instructions under system
prompts made of rule-library rules, and the judge is asked about those rules plus a few more the
reply was not written to follow (so that some are broken). The rule library knows every verdict,
so the judge's agreement, Cohen's kappa and false-pass rate (a broken rule called followed) are
measured on the same kind of reply it will judge (`judge.calibration.agreement`), with Wilson
intervals (`evaluate.metrics`).

Judged rules are then used only when the judge can be trusted: never with the embedded `local:`
model (under `--judged-rules auto`), and not when its kappa is under `--min-judge-kappa`.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rolenrules.evaluate.metrics import proportion
from rolenrules.generate.outcomes import StageFailure
from rolenrules.generate.stages import Teacher
from rolenrules.judge import Judge, transcript_tag
from rolenrules.judge.calibration import Agreement, agreement, cohen_kappa
from rolenrules.records import Example, Message, Rule, SystemPrompt
from rolenrules.rules import CheckContext, check_rule, sample_rules

#: The role of calibration prompts: plain, so the rules are what the reply is judged on.
CALIBRATION_ROLE = "You are an assistant that answers users' requests."
#: Rules per calibration reply: half the teacher answers under, half shown to the judge only.
RULES_PER_ITEM = 6


@dataclass(frozen=True)
class CalibrationItem:
    index: int
    instruction: str
    #: The rules the teacher answered under.
    asked: tuple[Rule, ...]
    #: Every rule the judge is asked about (the asked ones and the others), in the order it sees them.
    shown: tuple[Rule, ...]


def plan_calibration(n: int, seeds: Sequence[Example], *, seed: int, types: list[str] | None,
                     library_max: int) -> list[CalibrationItem]:
    """`n` seeded calibration items over the seed instructions and the run's rule types."""
    rng = random.Random(f"calibration-{seed}")
    size = max(1, min(RULES_PER_ITEM, library_max))
    items = []
    for index in range(n):
        instruction = seeds[rng.randrange(len(seeds))].user_turns[0]
        rules = sample_rules(rng, size, types=types, system_only=True)
        asked = tuple(rules[: max(1, size // 2)])
        shown = list(rules)
        rng.shuffle(shown)
        items.append(CalibrationItem(index, instruction, asked, tuple(shown)))
    return items


async def calibrate_item(item: CalibrationItem, teacher: Teacher, judge: Judge) -> dict[str, Any]:
    """The teacher's reply, the judge's verdicts and the rule library's on one item. Raises
    `StageFailure` (retryable) or `LLMError` when a server could not be reached: no record then."""
    user = Message(role="user", content=item.instruction)
    asked = SystemPrompt(role=CALIBRATION_ROLE, rules=list(item.asked)).render()
    shown = SystemPrompt(role=CALIBRATION_ROLE, rules=list(item.shown)).render()
    rules = [{"id": r.id, "type": r.type, "text": r.text, "asked": r in item.asked} for r in item.shown]
    try:
        result = await teacher.reply([Message(role="system", content=asked), user], 0)
    except StageFailure as failure:
        if failure.retryable:
            raise
        return {"index": item.index, "reply": None, "error": failure.reason, "rules": rules,
                "reference": [], "judged": [], "reasons": []}
    reply = result.text.strip()
    with transcript_tag(calibration=item.index):
        verdicts = await judge.judge(shown, [user], reply, list(item.shown))
    context = CheckContext(system_prompt=shown, user_turns=[item.instruction])
    return {"index": item.index, "reply": reply, "rules": rules,
            "reference": [check_rule(rule, reply, context=context).passed for rule in item.shown],
            "judged": [v.passed for v in verdicts], "reasons": [v.reason for v in verdicts]}


def _interval(k: int, n: int) -> list[float] | None:
    estimate = proportion(k, n)
    return None if estimate.value is None else [estimate.low, estimate.high]


def kappa_interval(reference: Sequence[bool], judged: Sequence[bool], z: float = 1.96) -> list[float] | None:
    """An approximate 95% interval for Cohen's kappa (Cohen's 1960 large-sample standard error,
    sqrt(po(1-po) / (n (1-pe)^2))), clipped to [-1, 1]; None where kappa is undefined."""
    kappa = cohen_kappa(reference, judged)
    if kappa is None:
        return None
    n = len(reference)
    po = sum(a == b for a, b in zip(reference, judged)) / n
    ref_yes, jud_yes = sum(reference) / n, sum(judged) / n
    pe = ref_yes * jud_yes + (1 - ref_yes) * (1 - jud_yes)
    se = math.sqrt(po * (1 - po) / (n * (1 - pe) ** 2))
    return [max(-1.0, kappa - z * se), min(1.0, kappa + z * se)]


@dataclass(frozen=True)
class CalibrationSummary:
    planned: int
    done: int
    agreement: Agreement
    accuracy_ci: list[float] | None
    false_pass_ci: list[float] | None
    kappa_ci: list[float] | None
    #: Per rule type: n (both scored), agreements, reference fails, false passes.
    by_type: dict[str, dict[str, int]]
    #: Rules shown to the judge that the reply was not asked to follow.
    extra_rules: int = 0

    @property
    def complete(self) -> bool:
        return self.done >= self.planned

    def as_dict(self) -> dict[str, Any]:
        return {"planned": self.planned, "done": self.done, **self.agreement.as_dict(),
                "accuracy_ci": self.accuracy_ci, "false_pass_ci": self.false_pass_ci, "kappa_ci": self.kappa_ci,
                "by_type": self.by_type, "extra_rules": self.extra_rules}


def summarise_calibration(items: dict[int, dict[str, Any]], planned: int) -> CalibrationSummary:
    reference: list[bool | None] = []
    judged: list[bool | None] = []
    by_type: dict[str, dict[str, int]] = defaultdict(lambda: {"n": 0, "agree": 0, "reference_fails": 0,
                                                             "false_passes": 0})
    for item in items.values():
        for rule, ref, jud in zip(item["rules"], item["reference"], item["judged"]):
            reference.append(ref)
            judged.append(jud)
            if ref is None or jud is None:
                continue
            row = by_type[rule["type"] or "?"]
            row["n"] += 1
            row["agree"] += int(ref == jud)
            row["reference_fails"] += int(not ref)
            row["false_passes"] += int(not ref and jud)
    result = agreement(reference, judged)
    pairs = [(r, j) for r, j in zip(reference, judged) if r is not None and j is not None]
    agree = sum(r == j for r, j in pairs)
    false_passes = sum(1 for r, j in pairs if not r and j)
    return CalibrationSummary(
        planned=planned, done=len(items), agreement=result,
        accuracy_ci=_interval(agree, len(pairs)), false_pass_ci=_interval(false_passes, result.reference_fails),
        kappa_ci=kappa_interval([r for r, _ in pairs], [j for _, j in pairs]),
        by_type=dict(sorted(by_type.items())),
        extra_rules=sum(1 for item in items.values() for rule in item["rules"] if not rule["asked"]))


@dataclass(frozen=True)
class JudgedRules:
    """Whether teacher-written (judge-checked) rules go into this run's system prompts, and why."""

    on: bool
    reason: str

    def line(self) -> str:
        if self.on:
            return f"judged rules on: {self.reason}"
        return (f"judged rules off: {self.reason}; every rule comes from the rule library and is checked exactly "
                "(--judged-rules on to use teacher-written rules anyway)")


def untrusted_judge(identity: str) -> bool:
    """The embedded model (`local:`): far too weak to judge rules (issue: it passed an off-topic
    rule with an unrelated reason)."""
    return identity.startswith("local:")


def decide_before_calibration(mode: Literal["auto", "on", "off"], judge_identity: str) -> JudgedRules | None:
    """The decision when no measurement is needed, else None."""
    if mode == "off":
        return JudgedRules(False, "--judged-rules off")
    if mode == "on":
        return JudgedRules(True, "--judged-rules on")
    if mode == "auto" and untrusted_judge(judge_identity):
        return JudgedRules(False, f"the judge is the embedded model {judge_identity}, which cannot be trusted to "
                                  "judge rules (--judge a stronger model to use them)")
    return None


def decide(mode: Literal["auto", "on", "off"], judge_identity: str, summary: CalibrationSummary | None,
           min_kappa: float) -> JudgedRules:
    """The decision, once calibration (if any) is done."""
    early = decide_before_calibration(mode, judge_identity)
    if early is not None:
        return early
    measured = _measured(summary)
    if summary is None:
        return JudgedRules(True, "--judge-calibration 0: the judge's agreement was not measured")
    kappa = summary.agreement.kappa
    if kappa is None:
        return JudgedRules(False, f"the judge's agreement with exact checks could not be measured ({measured})")
    if kappa < min_kappa:
        return JudgedRules(False, f"the judge's agreement with exact checks is low ({measured}; below "
                                  f"--min-judge-kappa {min_kappa:g})")
    return JudgedRules(True, f"the judge agrees with exact checks ({measured})")


def _measured(summary: CalibrationSummary | None) -> str:
    if summary is None:
        return ""
    a = summary.agreement
    kappa = "undefined" if a.kappa is None else f"{a.kappa:.2f}"
    return f"kappa {kappa}, n={a.n}"


def low_kappa(summary: CalibrationSummary | None, min_kappa: float) -> bool:
    return summary is not None and summary.agreement.n > 0 and (
        summary.agreement.kappa is None or summary.agreement.kappa < min_kappa)
