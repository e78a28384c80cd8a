"""The typed records that flow through every stage: rules, system prompts, messages, examples.

One record type (`Example`) carries a conversation from seed loading through generation,
verification, training and evaluation; stages add fields instead of inventing new shapes.
JSON round-trips are lossless: `Example.model_validate_json(e.model_dump_json()) == e`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Role = Literal["system", "user", "assistant"]
RuleKind = Literal["verifiable", "judged"]
VerdictSource = Literal["verifier", "judge", "unscored"]

#: Categories a rule can belong to. Free text is accepted; these are the ones we report on.
CATEGORIES = ("format", "length", "style", "language", "content", "scope", "safety", "persona", "other")


def stable_id(*parts: Any, length: int = 16) -> str:
    """A short, deterministic id from JSON-serialisable parts (same input, same id, any machine)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:length]


class Rule(BaseModel):
    """One rule of a system prompt.

    `verifiable` rules name a rule type of the rule library (`type`, e.g. `length:max_words`)
    and its parameters, so code can check them exactly. `judged` rules carry only text and a
    category; an LLM judge decides them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = ""
    text: str = Field(min_length=1)
    kind: RuleKind = "judged"
    type: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    category: str = "other"

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if self.kind == "verifiable" and not self.type:
            raise ValueError("a verifiable rule needs `type` (a rule-library id such as 'length:max_words')")
        if not self.id:
            # Frozen model: set the derived id through object.__setattr__ once, at construction.
            object.__setattr__(self, "id", "r-" + stable_id(self.text, self.type, self.params, length=10))
        return self


class SystemPrompt(BaseModel):
    """A role plus rules, rendered to the system message text deterministically."""

    model_config = ConfigDict(extra="forbid")

    id: str = ""
    role: str = Field(min_length=1)
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _derive_id(self) -> SystemPrompt:
        if not self.id:
            self.id = "sp-" + stable_id(self.role, [r.text for r in self.rules], length=12)
        return self

    def render(self) -> str:
        """The system message text: the role, then the rules as a numbered list."""
        if not self.rules:
            return self.role.strip()
        lines = [self.role.strip(), "", "Rules:"]
        lines += [f"{i}. {rule.text.strip()}" for i, rule in enumerate(self.rules, start=1)]
        return "\n".join(lines)


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    content: str


class Verdict(BaseModel):
    """Whether one rule held for one response, and who decided.

    `passed` is None when the rule could not be scored (a judge reply that never parsed, a
    detection that failed): unscored is reported apart and never counted as a pass.
    """

    model_config = ConfigDict(extra="forbid")

    rule_id: str
    passed: bool | None
    source: VerdictSource
    reason: str | None = None
    turn: int | None = None


def all_passed(outcomes: Iterable[bool | None]) -> bool | None:
    """Several verdicts as one: any failure fails (False); otherwise any unscored verdict leaves the
    whole unscored (None), never a pass; True only when every one passed."""
    outcomes = list(outcomes)
    if any(o is False for o in outcomes):
        return False
    if any(o is None for o in outcomes):
        return None
    return True


class Usage(BaseModel):
    """Token usage, summed over the calls that made a record (or a whole run)."""

    model_config = ConfigDict(extra="forbid")

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_requests: int = 0

    def add(self, other: Usage) -> Usage:
        return Usage(
            requests=self.requests + other.requests,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_requests=self.cached_requests + other.cached_requests,
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Example(BaseModel):
    """One conversation, optionally under a structured system prompt.

    When `system_prompt` is set, `messages[0]` is the system message holding its rendered text
    (ready for TRL's `messages` column). `metadata` holds provenance: source file and row,
    teacher and judge model, prompt template version, attempts, token usage.
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    messages: list[Message]
    system_prompt: SystemPrompt | None = None
    verdicts: list[Verdict] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def system_text(self) -> str | None:
        if self.messages and self.messages[0].role == "system":
            return self.messages[0].content
        return None

    @property
    def turns(self) -> list[Message]:
        """The conversation without its system message."""
        return [m for m in self.messages if m.role != "system"]

    @property
    def user_turns(self) -> list[str]:
        return [m.content for m in self.messages if m.role == "user"]

    @property
    def passed(self) -> bool | None:
        """All rules followed (True), one failed (False), or some unscored and none failed (None)."""
        return all_passed(v.passed for v in self.verdicts)

    def with_system(self, system_prompt: SystemPrompt) -> Example:
        """A copy whose system message is `system_prompt` rendered (replacing any existing one)."""
        turns = self.turns
        return self.model_copy(
            update={
                "system_prompt": system_prompt,
                "messages": [Message(role="system", content=system_prompt.render()), *turns],
            }
        )
