"""Preference pairs for DPO: the record, row checks, held-out exclusion, and mixing by weight.

One pair per row (JSONL, JSON array, Parquet or a `datasets` folder), in TRL's conversational
preference format plus provenance:

    {"prompt":   [{"role": "system", "content": "You are Ava ... Rules: ..."},
                  {"role": "user", "content": "What is the capital of France?"}],
     "chosen":   [{"role": "assistant", "content": "Paris."}],
     "rejected": [{"role": "assistant", "content": "Paris! 🇫🇷 It is a lovely city ..."}],
     "metadata": {"system_prompt_id": "sp-...", "failed_rules": [...]}}

`prompt` is the conversation up to and including the user turn being answered: a system message
only first, earlier user/assistant turns allowed, a user turn last. `chosen` and `rejected` are
the two replies, assistant messages only. `metadata` is free (the trainer never reads it except
`system_prompt_id` / `system_prompt.id`, used with the system message's text hash to drop
held-out system prompts, as for SFT data).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rolenrules.errors import DataError
from rolenrules.io import ReadStats
from rolenrules.io.sources import iter_rows
from rolenrules.records import Message
from rolenrules.train.config import DataSource
from rolenrules.train.data import MixSummary, mix, no_rows_left


class PreferencePair(BaseModel):
    """A prompt with a preferred (`chosen`) and a dispreferred (`rejected`) reply."""

    model_config = ConfigDict(extra="forbid")

    prompt: list[Message] = Field(min_length=1)
    chosen: list[Message] = Field(min_length=1)
    rejected: list[Message] = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("prompt")
    @classmethod
    def _prompt_shape(cls, messages: list[Message]) -> list[Message]:
        if any(m.role == "system" for m in messages[1:]):
            raise ValueError("a system message may only come first")
        if messages[-1].role != "user":
            raise ValueError("the prompt must end with the user turn being answered")
        return messages

    @field_validator("chosen", "rejected")
    @classmethod
    def _replies(cls, messages: list[Message]) -> list[Message]:
        if any(m.role != "assistant" for m in messages):
            raise ValueError("replies are assistant messages only")
        return messages

    @model_validator(mode="after")
    def _different(self) -> PreferencePair:
        if self.chosen == self.rejected:
            raise ValueError("chosen and rejected are the same reply")
        return self

    @property
    def system_text(self) -> str | None:
        return self.prompt[0].content if self.prompt[0].role == "system" else None

    def held_out_ids(self) -> set[str]:
        """Ids under which this pair's system prompt may be held out (see `heldout.held_out_ids`)."""
        from rolenrules.heldout import system_text_id

        ids = {system_text_id(self.system_text)} if self.system_text else set()
        meta = self.metadata.get("system_prompt_id")
        if meta:
            ids.add(str(meta))
        prompt = self.metadata.get("system_prompt")
        if isinstance(prompt, dict) and prompt.get("id"):
            ids.add(str(prompt["id"]))
        return ids

    def trl_row(self) -> dict[str, Any]:
        """The columns DPOTrainer reads."""
        return {key: [m.model_dump() for m in getattr(self, key)] for key in ("prompt", "chosen", "rejected")}


def _first_error(error: ValidationError) -> tuple[str, str | None]:
    item = error.errors()[0]
    field = ".".join(str(p) for p in item["loc"]) or None
    message = item["msg"].removeprefix("Value error, ")
    if item["type"] == "extra_forbidden":
        message = "unknown field (put anything else under `metadata`)"
    elif item["type"] == "missing":
        message = "required"
    if field is None and "chosen and rejected" in message:
        field = "rejected"
    return message, field


def read_pairs(path: str, stats: ReadStats | None = None) -> Iterator[PreferencePair]:
    """Every pair of a file, checked; the first bad row is a DataError naming file, line and field."""
    stats = stats if stats is not None else ReadStats()
    stats.format = "pairs"
    for loc, row in iter_rows(path):
        if isinstance(row, DataError):
            raise row
        if not isinstance(row, dict):
            raise loc.error("expected an object with prompt, chosen and rejected")
        try:
            pair = PreferencePair.model_validate(row)
        except ValidationError as error:
            message, field = _first_error(error)
            raise loc.error(message, field=field) from None
        stats.read += 1
        yield pair


def _read(source: DataSource, stats: ReadStats) -> Iterator[PreferencePair]:
    return read_pairs(source.path, stats)


def mix_pairs(sources: Sequence[DataSource], *, exclude: set[str] | None = None,
              seed: int = 42) -> tuple[list[PreferencePair], MixSummary]:
    """Pairs from every source, held-out system prompts dropped, sampled by weight, shuffled."""
    return mix(sources, _read, ids=PreferencePair.held_out_ids, exclude=exclude, seed=seed)


def build_pair_dataset(sources: Sequence[DataSource], *, exclude: set[str] | None = None,
                       seed: int = 42, what: str = "training") -> tuple[Any, MixSummary]:
    """A `datasets.Dataset` with TRL's `prompt`, `chosen`, `rejected` columns."""
    from datasets import Dataset

    pairs, summary = mix_pairs(sources, exclude=exclude, seed=seed)
    if not pairs:
        raise no_rows_left(summary, f"{what} pairs")
    return Dataset.from_list([p.trl_row() for p in pairs]), summary


__all__ = ["PreferencePair", "build_pair_dataset", "mix_pairs", "read_pairs"]
