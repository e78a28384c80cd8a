"""The one protocol every LLM backend implements, and the request/result records it speaks."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from rolenrules.errors import ExitCode, RnrError
from rolenrules.records import Message, Usage


class LLMError(RnrError):
    """A call that failed for good (after retries): unreachable server, auth, bad model, ..."""

    exit_code = ExitCode.SERVER


class InvalidReplyError(LLMError):
    """The server answered, but not with something usable (empty choices, truncated or
    schema-invalid structured output). Retried by `LLM`, then reported."""


class Sampling(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float = Field(default=0.7, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(default=1024, gt=0)
    seed: int | None = None


class ChatRequest(BaseModel):
    """One chat completion. `json_schema` asks for structured output matching that schema."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    messages: list[Message]
    sampling: Sampling = Field(default_factory=Sampling)
    json_schema: dict[str, Any] | None = None
    schema_name: str | None = None


class ChatResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    cached: bool = False


@runtime_checkable
class Backend(Protocol):
    """A chat-completion engine. `identity` names what produced a reply, for the request
    cache key and provenance (e.g. `openai:gpt-4o-mini`); it never contains secrets."""

    identity: str

    async def complete(self, request: ChatRequest) -> ChatResult: ...

    async def aclose(self) -> None: ...
