"""Typed configuration of a generation run. Each option is documented once, here; the CLI and
YAML `--config` files use the same names (dashes or underscores)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rolenrules.errors import ConfigError
from rolenrules.records import stable_id

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+))?\s*$")


def parse_range(text: str | int, name: str) -> tuple[int, int]:
    """'3-7' -> (3, 7); '4' -> (4, 4). Inverted or malformed ranges are a ConfigError."""
    match = _RANGE.match(str(text))
    if not match:
        raise ConfigError(f"--{name}: expected a range like 3-7 or a number, got {text!r}")
    low = int(match.group(1))
    high = int(match.group(2)) if match.group(2) is not None else low
    if low > high:
        raise ConfigError(f"--{name}: range {text!r} is inverted (low > high)")
    return low, high


class GenerateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input: str = Field(description="Seed instructions: any supported dataset file, folder or hf:// id.")
    out: str = Field(description="Output: .jsonl, .parquet or a folder (datasets.save_to_disk).")
    format: str | None = Field(None, description="Input format; detected when omitted.")
    rejects: str | None = Field(None, description="Rejects file (default: OUT.rejects.jsonl).")
    card: str | None = Field(None, description="Dataset card (default: OUT.card.md).")
    run_dir: str | None = Field(None, description="Run store folder (default: OUT.rnr-run/).")
    teacher: str | None = Field(None, description="Teacher model spec (default: $RNR_TEACHER, OpenAI env, local:smollm2).")
    base_url: str | None = Field(None, description="Teacher's OpenAI-compatible server URL.")
    judge: str | None = Field(None, description="Judge model spec (default: the teacher).")
    judge_base_url: str | None = Field(None, description="Judge's server URL (default: the teacher's when judge is unset).")
    num_prompts: int | None = Field(None, ge=1, description="System prompts to write (default: enough to use every seed once).")
    k: int = Field(5, ge=1, description="Instructions sampled per system prompt (each is answered under it).")
    rules: str = Field("3-7", description="Rules per system prompt in total, a range a-b.")
    verifiable_rules: str = Field("1-3", description="How many of those come from the rule library (checked exactly).")
    rule_types: list[str] | None = Field(None, description="Only these rule-library types (ids), e.g. length:max_words.")
    conflict_rate: float = Field(0.0, ge=0.0, le=1.0, description="Share of conversations given a user turn that pushes against a rule.")
    max_attempts: int = Field(3, ge=1, description="Responses per turn before a conversation is rejected (1 = no regeneration).")
    max_turns: int = Field(3, ge=1, description="User turns kept from multi-turn seeds.")
    drop_unscored: bool = Field(False, description="Reject conversations with a rule the judge could not score.")
    dedup_threshold: float = Field(0.8, gt=0.0, le=1.0, description="Jaccard similarity above which a system prompt is a near-duplicate.")
    limit: int | None = Field(None, ge=1, description="Use at most this many seed records.")
    seed: int = Field(0, description="Random seed for sampling seeds, rules and conflicts.")
    temperature: float = Field(0.7, ge=0.0, description="Teacher sampling temperature for responses.")
    prompt_temperature: float = Field(1.0, ge=0.0, description="Teacher temperature when writing system prompts.")
    max_tokens: int = Field(1024, ge=16, description="Max tokens per teacher response.")
    concurrency: int = Field(16, ge=1, description="LLM requests in flight.")
    parallel: int | None = Field(None, ge=1, description="local: models only: requests decoded at once, one llama.cpp context each (default: one per core, at most 8).")
    timeout: float = Field(120.0, gt=0, description="Per-request timeout (s).")
    max_retries: int = Field(4, ge=0, description="Transport retries per request (429/5xx/timeouts).")
    cache: str | None = Field(None, description="Request cache file (default: RUN_DIR/cache.sqlite).")
    templates: str | None = Field(None, description="Folder of prompt templates overriding the packaged ones.")
    price_per_1k: str | None = Field(None, description="'IN,OUT' USD per 1k prompt/completion tokens, for the card's cost estimate.")
    quiet: bool = Field(False, description="No progress bars; log lines only.")

    @field_validator("rules", "verifiable_rules", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @model_validator(mode="after")
    def _check(self) -> GenerateConfig:
        low, high = parse_range(self.rules, "rules")
        vlow, vhigh = parse_range(self.verifiable_rules, "verifiable-rules")
        if high < 1:
            raise ConfigError("--rules: a system prompt needs at least one rule")
        if vlow > high:
            raise ConfigError(f"--verifiable-rules {self.verifiable_rules} asks for more rules than --rules {self.rules} allows")
        if self.price_per_1k is not None:
            self.prices  # validates
        return self

    @property
    def rules_range(self) -> tuple[int, int]:
        return parse_range(self.rules, "rules")

    @property
    def verifiable_range(self) -> tuple[int, int]:
        return parse_range(self.verifiable_rules, "verifiable-rules")

    @property
    def prices(self) -> tuple[float, float] | None:
        if self.price_per_1k is None:
            return None
        try:
            a, b = (float(x) for x in self.price_per_1k.split(","))
        except ValueError:
            raise ConfigError(f"--price-per-1k: expected 'IN,OUT' (e.g. 0.15,0.6), got {self.price_per_1k!r}") from None
        return a, b

    @property
    def out_path(self) -> Path:
        return Path(self.out)

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir) if self.run_dir else Path(str(self.out).rstrip("/") + ".rnr-run")

    @property
    def rejects_path(self) -> Path:
        return Path(self.rejects) if self.rejects else Path(str(self.out).rstrip("/") + ".rejects.jsonl")

    @property
    def card_path(self) -> Path:
        return Path(self.card) if self.card else Path(str(self.out).rstrip("/") + ".card.md")

    def fingerprint(self) -> str:
        """What decides the run's content; a resumed run must match it (operational knobs excluded)."""
        keep = self.model_dump(exclude={"out", "rejects", "card", "run_dir", "concurrency", "timeout", "max_retries",
                                        "parallel", "cache", "quiet", "price_per_1k", "base_url", "judge_base_url"})
        return stable_id(keep, length=20)


def build_config(values: dict[str, Any], source: str = "options") -> GenerateConfig:
    try:
        return GenerateConfig(**values)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "<config>"
        message = first.get("msg", "invalid")
        if first.get("type") == "extra_forbidden":
            message = "unknown option"
        raise ConfigError(f"{source}: {field.replace('_', '-')}: {message}") from None
