"""The options of one evaluation run (`rnr eval`), typed: each field's description is the CLI help,
the flags are derived from the fields, and a YAML `--config` file can set any of them."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from rolenrules.evaluate.metrics import DEFAULT_RESAMPLES
from rolenrules.evaluate.runner import EvalConfig
from rolenrules.evaluate.tasks import TASKS
from rolenrules.llm.base import Sampling
from rolenrules.llm.registry import spec_forms


class EvalCommandConfig(BaseModel):
    """Which model to run on which benchmark, how to judge it, and where the run folder goes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    out: Path = Field(description="Run folder: results.jsonl, summary.json, run.json, cache.sqlite.")
    bench: Path | None = Field(None, description="Benchmark file, see docs/benchmark_format.md (default: none; "
                                                 "give --bench or --task).")
    task: list[str] | None = Field(None, description=f"Built-in task, repeatable: {', '.join(TASKS)} (default: none; "
                                                     "give --bench or --task).")
    data_dir: Path | None = Field(None, description="Folder holding ifeval/ and systemcheck/ (default: $RNR_DATA_DIR, "
                                                    "else ../shared/data).")
    model: str | None = Field(None, description=f"Model under test: {spec_forms()} (default: $RNR_MODEL, an OpenAI "
                                                "env, or local:smollm2).")
    base_url: str | None = Field(None, description="OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1 "
                                                   "(default: $OPENAI_BASE_URL).")
    judge: str | None = Field(None, description="Judge model spec, needed for judged rules and role adherence "
                                                "(default: $RNR_JUDGE).")
    judge_base_url: str | None = Field(None, description="OpenAI-compatible URL of the judge (default: --base-url).")
    judge_votes: int = Field(1, ge=1, description="Ask the judge n times; the majority decides (ties are unscored).")
    calibrate_judge: bool = Field(False, description="Also judge the verifiable rules and report agreement with the "
                                                     "exact checks.")
    role_adherence: bool = Field(True, description="Judge whether replies stay in role (where there is a role).")
    limit: int | None = Field(None, ge=1, description="Evaluate only the first N examples of each task (default: all).")
    temperature: float = Field(0.0, ge=0.0, description="Sampling temperature of the model under test.")
    max_tokens: int = Field(1024, ge=1, description="Longest response of the model under test.")
    seed: int = Field(0, description="Sampling seed, and the bootstrap seed.")
    concurrency: int = Field(8, ge=1, description="Requests in flight at once.")
    timeout: float = Field(120.0, ge=1.0, description="Per-request timeout in seconds.")
    max_retries: int = Field(4, ge=0, description="Retries on 429/5xx/timeouts (exponential backoff, Retry-After "
                                                  "honoured).")
    bootstrap: int = Field(DEFAULT_RESAMPLES, ge=0, description="Bootstrap resamples for the 95% intervals (0: none).")
    rescore: bool = Field(False, description="Re-score the responses already in --out (e.g. with another judge) "
                                             "without generating.")

    @property
    def sampling(self) -> Sampling:
        return Sampling(temperature=self.temperature, max_tokens=self.max_tokens, seed=self.seed)

    def run_config(self) -> EvalConfig:
        """The runner's settings (how a run generates and scores)."""
        return EvalConfig(sampling=self.sampling, concurrency=self.concurrency, role_adherence=self.role_adherence,
                          calibrate_judge=self.calibrate_judge, resamples=self.bootstrap, seed=self.seed,
                          rescore=self.rescore)


