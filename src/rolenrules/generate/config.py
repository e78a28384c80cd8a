"""Typed configuration of a generation run. Each option is documented once, here; the CLI and
YAML `--config` files use the same names (dashes or underscores)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rolenrules.config_file import PathKinds
from rolenrules.errors import ConfigError, validate_config
from rolenrules.generate.roles import KEYWORDS as ROLE_KEYWORDS
from rolenrules.llm.preflight import check_url
from rolenrules.llm.registry import BASE_URLS_HELP, BaseUrls, spec_forms

_YES = {"true", "yes", "on", "1"}
_NO = {"false", "no", "off", "0", ""}
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

    #: The options that are paths (in a config file, relative ones are relative to the file).
    PATHS: ClassVar[PathKinds] = {
        "input": "input", "templates": "input", "rules_plugin": "input", "out": "output", "rejects": "output",
        "card": "output", "run_dir": "output", "cache": "output", "transcripts": "output", "pairs": "flag",
        # A keyword (auto, teacher, library) or a file: resolved only when the file is there.
        "roles": "model"}

    input: str = Field(description="Seed instructions: any supported dataset file, folder or hf:// id.")
    out: str = Field(description="Output: .jsonl, .parquet or a folder (datasets.save_to_disk).")
    format: str | None = Field(None, description="Input format (default: detected from the first row).")
    rejects: str | None = Field(None, description="Rejects file (default: OUT.rejects.jsonl).")
    card: str | None = Field(None, description="Dataset card (default: OUT.card.md).")
    run_dir: str | None = Field(None, description="Run store folder (default: OUT.rnr-run/).")
    teacher: str | None = Field(None, description=f"Teacher model spec: {spec_forms()} (default: $RNR_TEACHER, OpenAI env, local:smollm2).")
    base_url: BaseUrls = Field(None, description=f"Teacher's OpenAI-compatible server URL; {BASE_URLS_HELP} (default: $OPENAI_BASE_URL, else api.openai.com).")
    judge: str | None = Field(None, description="Judge model spec, same forms (default: the teacher).")
    judge_base_url: BaseUrls = Field(None, description="Judge's server URL(s), same forms (default: the teacher's when judge is unset).")
    num_prompts: int | None = Field(None, ge=1, description="System prompts to write (default: enough to use every seed once).")
    k: int = Field(5, ge=1, description="Instructions sampled per system prompt (each is answered under it).")
    rules: str = Field("3-7", description="Rules per system prompt in total, a range a-b.")
    verifiable_rules: str = Field("1-3", description="How many of those come from the rule library (checked exactly).")
    rule_types: list[str] | None = Field(None, description="Only these rule-library types (ids, repeatable), e.g. length:max_words (default: every sampleable type; literal, regex and plugin types are drawn only when named here).")
    exclude_rule_types: list[str] | None = Field(None, description=(
        "Rule-library types never drawn (repeatable): ids, GROUP:* for an id group, or ifeval for IFEval's 25 "
        "instruction types — e.g. to measure on sys-ifeval how rule following transfers to constraint types the "
        "data never had (default: none)."))
    roles: str = Field("auto", description=(
        "Where each system prompt's role comes from: teacher (the teacher writes it), library (rnr's 36 built-in "
        "deployment roles, one per deployment style), a FILE of your roles (one per line, or JSON Lines with "
        "`role`), or auto: library when the teacher is the embedded local: model, which cannot write roles, else "
        "teacher. Rules come from the rule library (and the teacher, with judged rules) either way."))
    rules_plugin: list[str] | None = Field(None, description="Python file(s) defining more rule types (repeatable; see docs/extending.md) (default: none).")
    conflict_rate: float = Field(0.0, ge=0.0, le=1.0, description="Share of conversations given a user turn that pushes against a rule.")
    max_attempts: int = Field(3, ge=1, description="Responses per turn before a conversation is rejected (1 = no regeneration).")
    max_turns: int = Field(3, ge=1, description="User turns kept from multi-turn seeds.")
    judged_rules: Literal["auto", "on", "off"] = Field("auto", description=(
        "Teacher-written rules, checked by the judge. auto: only when the judge can be trusted — not the embedded "
        "local: model, and its measured agreement with exact checks (--judge-calibration) reaches --min-judge-kappa; "
        "on/off: always/never. Off, every rule comes from the rule library (--rules counts them)."))
    judge_calibration: int = Field(8, ge=0, description=(
        "Replies the judge checks against rule-library rules whose verdict is known, before the run, to measure its "
        "agreement, Cohen's kappa and false-pass rate (reported on the card; 0 = no calibration)."))
    min_judge_kappa: float = Field(0.6, ge=-1.0, le=1.0, description=(
        "Cohen's kappa below which the judge is not trusted: judged rules go off under --judged-rules auto, and "
        "the card warns."))
    drop_unscored: bool = Field(True, description=(
        "Treat a rule nobody could check (an unparsable judge reply, an undecidable check) as broken: regenerate, "
        "then reject. --no-drop-unscored keeps such conversations (the card counts them)."))
    best_of: int = Field(1, ge=1, description=(
        "Replies sampled per turn (seeded); the first that follows every rule is kept. With --pairs, a passing and a "
        "failing one make a preference pair even when the first reply passed."))
    pairs: str | None = Field(None, description=(
        "Also write preference pairs (TRL's format, for rnr train --method dpo) from turns where a reply broke a "
        "rule and another followed them all: --pairs alone writes OUT.pairs.jsonl, --pairs PATH writes PATH "
        "(default: none)."))
    dedup_threshold: float = Field(0.8, gt=0.0, le=1.0, description="Jaccard similarity above which a system prompt is a near-duplicate.")
    limit: int | None = Field(None, ge=1, description="Use at most this many seed records (default: all).")
    seed: int = Field(0, description="Random seed for sampling seeds, rules and conflicts.")
    temperature: float = Field(0.7, ge=0.0, description="Teacher sampling temperature for responses.")
    prompt_temperature: float = Field(1.0, ge=0.0, description="Teacher temperature when writing system prompts.")
    max_tokens: int = Field(1024, ge=16, description="Max tokens per teacher response.")
    concurrency: int = Field(16, ge=1, description="LLM requests in flight.")
    parallel: int | None = Field(None, ge=1, description="local: models only: requests decoded at once, one llama.cpp context each (default: one per core, at most 8).")
    timeout: float = Field(120.0, gt=0, description="Per-request timeout (s).")
    max_retries: int = Field(4, ge=0, description="Transport retries per request (429/5xx/timeouts).")
    cache: str | None = Field(None, description="Request cache file (default: RUN_DIR/cache.sqlite).")
    templates: str | None = Field(None, description="Folder of prompt templates overriding the packaged ones (default: the packaged ones only).")
    transcripts: str | None = Field(None, description="Every judge call's prompt and raw reply, to audit its verdicts (default: OUT.transcripts.jsonl).")
    source_license: str | None = Field(None, description=(
        "Licence of the input data, for the card's front matter, e.g. cc-by-nc-4.0 (default: read from a datasets "
        "folder's dataset_info.json, else unknown)."))
    price_per_1m: str | None = Field(None, description="'IN,OUT' USD per million prompt/completion tokens, as providers publish them, e.g. 0.15,0.6 for gpt-4o-mini: cost on the card and in --dry-run (default: no cost shown).")
    price_per_1k: str | None = Field(None, description="Removed: prices are per million tokens now (--price-per-1m) (default: none).")
    dry_run: bool = Field(False, description=(
        "Write nothing: count the requests the run would make and estimate its tokens and cost from a handful "
        "of real calls."))
    quiet: bool = Field(False, description="No progress bars; log lines only.")
    executor: Literal["local", "ray"] = Field("local", description=(
        "Where the work runs: local (this process) or ray (the plan cut into --shards, each shard run by a Ray task "
        "with its own run store under the run folder, merged at the end; pip install 'rolenrules[ray]'). A sharded "
        "run's run folder and input must be on storage every Ray node sees."))
    shards: int = Field(4, ge=1, description="With --executor ray: shards to cut the plan into (each resumes on its own).")
    ray_address: str | None = Field(None, description=(
        "With --executor ray: the cluster to join (auto, or HOST:PORT) (default: $RAY_ADDRESS, else a local Ray "
        "instance started for the run)."))
    shard_cpus: float = Field(1.0, ge=0, description="With --executor ray: CPUs Ray reserves for each shard's task.")
    shard_gpus: float = Field(0.0, ge=0, description=(
        "With --executor ray: GPUs Ray reserves for each shard's task (1 for an in-process vllm: or hf: teacher per "
        "GPU)."))

    @field_validator("rules", "verifiable_rules", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("pairs", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> Any:
        # `pairs: true` in YAML, like a bare --pairs on the command line.
        return str(value).lower() if isinstance(value, bool) else value

    @field_validator("base_url", "judge_base_url")
    @classmethod
    def _url(cls, value: list[str] | None) -> list[str] | None:
        # URLs are checked here, a file of URLs for its lines when the client is built (still before any request).
        for item in value or []:
            if "://" in item:
                check_url(item.strip())
            elif item.strip() and not Path(item.strip()).expanduser().is_file():
                raise ValueError(f"{item!r}: neither an http(s) URL nor a file of URLs")
        return value

    @model_validator(mode="after")
    def _check(self) -> GenerateConfig:
        low, high = parse_range(self.rules, "rules")
        vlow, vhigh = parse_range(self.verifiable_rules, "verifiable-rules")
        if high < 1:
            raise ConfigError("--rules: a system prompt needs at least one rule")
        if vlow > high:
            raise ConfigError(f"--verifiable-rules {self.verifiable_rules} asks for more rules than --rules {self.rules} allows")
        if self.price_per_1k is not None:
            raise ConfigError(
                "--price-per-1k was replaced by --price-per-1m: prices are USD per million tokens now, as providers "
                "publish them (gpt-4o-mini: --price-per-1m 0.15,0.6). Numbers copied from a provider's price list "
                f"({self.price_per_1k}) go to --price-per-1m unchanged; a true per-1k price goes there multiplied by 1000")
        if self.price_per_1m is not None:
            self.prices  # validates
        self.pairs_path  # validates
        if self.roles not in ROLE_KEYWORDS and not Path(self.roles).is_file():
            raise ConfigError(f"--roles {self.roles}: neither {', '.join(ROLE_KEYWORDS)} nor an existing file of roles")
        return self

    @property
    def sampled_rule_types(self) -> list[str] | None:
        """The rule-library types drawn: --rule-types (None: the defaults) less --exclude-rule-types.
        Reads the registry, so call it once plugins are loaded."""
        if not self.exclude_rule_types:
            return self.rule_types
        from rolenrules.rules import candidate_types

        excluded = expand_rule_types(self.exclude_rule_types)
        return [t.id for t in candidate_types(self.rule_types, system_only=True) if t.id not in excluded]

    @property
    def rules_range(self) -> tuple[int, int]:
        return parse_range(self.rules, "rules")

    @property
    def verifiable_range(self) -> tuple[int, int]:
        return parse_range(self.verifiable_rules, "verifiable-rules")

    @property
    def prices(self) -> tuple[float, float] | None:
        """USD per million (prompt, completion) tokens."""
        if self.price_per_1m is None:
            return None
        try:
            a, b = (float(x) for x in self.price_per_1m.split(","))
        except ValueError:
            raise ConfigError(f"--price-per-1m: expected 'IN,OUT' USD per million tokens (e.g. 0.15,0.6), got "
                              f"{self.price_per_1m!r}") from None
        if a < 0 or b < 0:
            raise ConfigError(f"--price-per-1m: prices cannot be negative, got {self.price_per_1m!r}")
        return a, b

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float | None:
        """USD for these tokens at --price-per-1m, or None without prices."""
        prices = self.prices
        if prices is None:
            return None
        return prompt_tokens / 1e6 * prices[0] + completion_tokens / 1e6 * prices[1]

    @property
    def pairs_path(self) -> Path | None:
        """Where preference pairs go: None without --pairs; OUT.pairs.jsonl for a bare --pairs / `pairs: true`."""
        if self.pairs is None or self.pairs.strip().lower() in _NO:
            return None
        if self.pairs.strip().lower() in _YES:
            return Path(str(self.out).rstrip("/") + ".pairs.jsonl")
        if not self.pairs.endswith(".jsonl"):
            raise ConfigError(f"--pairs {self.pairs}: pairs are written as JSON Lines; give a path ending in .jsonl")
        return Path(self.pairs)

    @property
    def transcripts_path(self) -> Path:
        return Path(self.transcripts) if self.transcripts else Path(str(self.out).rstrip("/") + ".transcripts.jsonl")

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

    def identity(self) -> dict[str, Any]:
        """The options that decide the run's content; a resumed run must match them (where outputs
        go and operational knobs such as concurrency, timeouts and server URLs are left out)."""
        return self.model_dump(mode="json", exclude={
            "out", "rejects", "card", "run_dir", "concurrency", "parallel", "timeout", "max_retries", "cache", "quiet",
            "price_per_1k", "price_per_1m", "base_url", "judge_base_url", "pairs", "transcripts", "source_license",
            "dry_run", "executor", "shards", "ray_address", "shard_cpus", "shard_gpus"})


#: `--exclude-rule-types` names for sets of rule types.
TYPE_SETS = {"ifeval": "IFEval's 25 instruction types"}


def expand_rule_types(names: list[str]) -> set[str]:
    """Rule-type ids from ids, `GROUP:*` and set names (`TYPE_SETS`); an unknown one is a ConfigError
    (an unknown id suggests the closest)."""
    from rolenrules.rules import get_rule_type
    from rolenrules.rules.registry import IFEVAL_IDS, REGISTRY

    ids: set[str] = set()
    for name in names:
        if name == "ifeval":
            ids |= set(IFEVAL_IDS)
        elif name.endswith(":*"):
            group = [t for t in REGISTRY if t.split(":", 1)[0] == name[:-2]]
            if not group:
                groups = sorted({t.split(":", 1)[0] for t in REGISTRY})
                raise ConfigError(f"--exclude-rule-types {name}: no rule-type group {name[:-2]!r} (groups: "
                                  f"{', '.join(groups)})")
            ids |= set(group)
        else:
            ids.add(get_rule_type(name).id)
    return ids


def build_config(values: dict[str, Any], source: str = "options", *, flags: bool = False) -> GenerateConfig:
    """`flags`: name bad options as the command-line flags they came from."""
    return validate_config(GenerateConfig, values, source, flags=flags)
