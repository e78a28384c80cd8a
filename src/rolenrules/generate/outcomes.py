"""What became of each unit of generation work, as types the run store reads and writes.

A conversation ends in exactly one of three outcomes:

* **kept** — an `Example` whose every rule was verified: it goes to the output;
* **rejected** (`Rejection`) — final: its rules were still broken after the last attempt, a reply
  was unusable, or its system prompt was a near-duplicate. It goes to the rejects file with the
  stage, the reason, the system prompt text and the last failed reply;
* **failed** (`Failure`) — retryable: a server (teacher or judge) could not be reached or kept
  failing. It is kept out of the output, listed in the rejects file, and tried again when the
  same command runs again; a run with failures is not complete.

A system prompt is written (a `SystemPrompt`) or dropped (`PromptDropped`, rejected or failed
the same way).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rolenrules.records import Example, SystemPrompt


class Status(str, Enum):
    KEPT = "kept"
    REJECTED = "rejected"
    FAILED = "failed"


class StageFailure(Exception):
    """A unit of work that cannot be completed, raised by a step. `retryable` failures (the server
    could not be reached or kept failing) are tried again on the next run; the others are final."""

    def __init__(self, stage: str, reason: str, *, retryable: bool = False, last_reply: str | None = None,
                 **details: Any) -> None:
        super().__init__(reason)
        self.stage, self.reason, self.retryable = stage, reason, retryable
        self.last_reply, self.details = last_reply, details

    @property
    def status(self) -> Status:
        """The one place where a failure is decided final (rejected) or retryable (failed)."""
        return Status.FAILED if self.retryable else Status.REJECTED


class Dropped(BaseModel):
    """A conversation left out of the output: where it stopped, why, and what it had got to."""

    model_config = ConfigDict(extra="forbid")

    id: str
    seed_id: str
    prompt_index: int
    source: dict[str, Any] | None = None
    stage: str
    reason: str
    details: dict[str, Any] = Field(default_factory=dict)
    system_prompt_id: str | None = None
    #: The system prompt's text, as the teacher saw it.
    system_prompt: str | None = None
    user_turns: list[str]
    #: The last reply that failed verification, when there was one (for a system prompt that could not
    #: be used, the teacher's reply that wrote it).
    last_reply: str | None = None


class Rejection(Dropped):
    status: Literal["rejected"] = "rejected"


class Failure(Dropped):
    status: Literal["failed"] = "failed"


Outcome = Example | Rejection | Failure


class PromptDropped(BaseModel):
    """A system prompt that could not be written."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["rejected", "failed"]
    stage: str
    reason: str
    #: The teacher's reply, when it arrived but could not be used (e.g. it copied the template's example).
    last_reply: str | None = None


PromptOutcome = SystemPrompt | PromptDropped


def status_of(outcome: Outcome | PromptOutcome) -> Status:
    if isinstance(outcome, (Example, SystemPrompt)):
        return Status.KEPT
    return Status(outcome.status)


def dropped(failure: StageFailure, **fields: Any) -> Rejection | Failure:
    """The record of a conversation a step dropped."""
    kind = Failure if failure.status is Status.FAILED else Rejection
    return kind(stage=failure.stage, reason=failure.reason, details=failure.details, last_reply=failure.last_reply,
                **fields)


def prompt_dropped(failure: StageFailure) -> PromptDropped:
    return PromptDropped(status=failure.status.value, stage=failure.stage, reason=failure.reason,
                         last_reply=failure.last_reply)


@dataclass
class Trials:
    """What answering a conversation tried, beside what it kept: every reply checked (for the card's
    per-attempt pass rates and broken rules) and the preference pairs those replies make."""

    tries: list[dict[str, Any]] = field(default_factory=list)
    pairs: list[dict[str, Any]] = field(default_factory=list)
