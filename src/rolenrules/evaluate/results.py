"""The per-example result record of an evaluation run (`DIR/results.jsonl`, one per line).

A result keeps everything needed to audit and re-score it: the conversation the model saw, its
response, and each rule with its verdict and who decided it (verifier, judge, or unscored).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rolenrules.errors import DataError
from rolenrules.records import Message, Rule, RuleKind, Verdict, VerdictSource, all_passed

Status = Literal["pass", "fail", "unscored"]
_STATUS: dict[bool | None, Status] = {True: "pass", False: "fail", None: "unscored"}


class ScoredRule(BaseModel):
    """A rule and its verdict on one response."""

    model_config = ConfigDict(extra="forbid")

    rule_id: str
    text: str
    kind: RuleKind
    type: str | None = None
    category: str = "other"
    #: The rule type's parameters, so a verifiable rule can be re-checked (e.g. against a trivial reply).
    params: dict[str, Any] = Field(default_factory=dict)
    passed: bool | None
    source: VerdictSource
    reason: str | None = None
    turn: int | None = None

    @classmethod
    def of(cls, rule: Rule, verdict: Verdict) -> ScoredRule:
        return cls(rule_id=rule.id, text=rule.text, kind=rule.kind, type=rule.type, category=rule.category,
                   params=dict(rule.params), passed=verdict.passed, source=verdict.source, reason=verdict.reason, turn=verdict.turn)

    def as_rule(self) -> Rule:
        return Rule(id=self.rule_id, text=self.text, kind=self.kind, type=self.type, params=self.params,
                    category=self.category)

    @property
    def type_label(self) -> str:
        """The rule type for per-type metrics; judged rules have none and group together."""
        return self.type or "judged"


class EvalResult(BaseModel):
    """One benchmark example, answered and scored.

    `passed` is True only when every rule passed: an unscored rule is never a pass. `status`
    tells a failure (some rule broken) from an example that only lacks verdicts.
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    task: str = "rnr"
    subset: str | None = None
    turn: int = 1
    messages: list[Message]
    response: str
    finish_reason: str | None = None
    error: str | None = None
    rules: list[ScoredRule]
    role: Verdict | None = None
    calibration: list[ScoredRule] = Field(default_factory=list)
    passed: bool
    status: Status
    model: str | None = None
    judge: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @staticmethod
    def status_of(rules: list[ScoredRule]) -> Status:
        return _STATUS[all_passed(r.passed for r in rules)]

    @property
    def system(self) -> str | None:
        return self.messages[0].content if self.messages and self.messages[0].role == "system" else None


def read_results(path: str | Path) -> list[EvalResult]:
    """Read `results.jsonl`. A last line cut short (a run killed while writing) is ignored, so
    the example is simply redone on resume; a bad line elsewhere is an error naming the line."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    results: list[EvalResult] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            results.append(EvalResult.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as error:
            if number == len(lines):
                break
            detail = str(error).splitlines()[0][:200]
            raise DataError(f"not an evaluation result ({detail})", path=str(path), line=number) from None
    return results
