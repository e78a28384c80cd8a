"""The options of the evaluation commands (`rnr eval`, `rnr standard ...`), typed: each field's
description is the CLI help, the flags are derived from the fields, and a YAML `--config` file can
set any of them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rolenrules.evaluate.metrics import DEFAULT_RESAMPLES
from rolenrules.evaluate.runner import EvalConfig
from rolenrules.evaluate.tasks import TASKS
from rolenrules.llm.base import Sampling
from rolenrules.llm.registry import BACKENDS, BASE_URLS_HELP, BaseUrls, spec_forms


BATCH_SIZE_HELP = ("hf: models only: requests generated together in one batch (default: 8). On CPU a larger batch pays "
                   "(hf:smollm2: ~40 tok/s at 8, ~100 at 32, benchmarks/local_engine.md); --concurrency must be at "
                   "least this for batches to fill.")

class ModelOptions(BaseModel):
    """The model a command runs, and the server it is reached at; the fields come first in `--help`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = Field(None, description=f"Model spec: {spec_forms()} (default: $RNR_MODEL, an OpenAI env, "
                                                "or local:smollm2).")
    base_url: str | None = Field(None, description="OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1 "
                                                   "(default: $OPENAI_BASE_URL).")


class EvalCommandConfig(ModelOptions):
    """Which model to run on which benchmark, how to judge it, and where the run folder goes."""

    base_url: BaseUrls = Field(None, description="OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1; "
                                                 f"{BASE_URLS_HELP} (default: $OPENAI_BASE_URL).")

    out: Path = Field(description="Run folder: results.jsonl, summary.json, run.json, cache.sqlite.")
    bench: Path | None = Field(None, description="Benchmark file, see docs/benchmark_format.md (default: none; "
                                                 "give --bench or --task).")
    task: list[str] | None = Field(None, description=f"Built-in task, repeatable: {', '.join(TASKS)} (`rnr tasks` "
                                                     "describes them); NAME=FILE or NAME=hf://ID reads that task from "
                                                     "another copy of its data (default: none; give --bench or --task).")
    data_dir: Path | None = Field(None, description="Your own copy of the task data, laid out as the bundled "
                                                    "rolenrules/data/ (ifeval/, systemcheck/; .jsonl or .jsonl.gz) "
                                                    "(default: $RNR_DATA_DIR, else the data shipped with rnr).")
    judge: str | None = Field(None, description="Judge model spec, needed for judged rules and role adherence "
                                                "(default: $RNR_JUDGE).")
    judge_base_url: BaseUrls = Field(None, description="OpenAI-compatible URL(s) of the judge, same forms (default: "
                                                       "--base-url).")
    judge_votes: int = Field(1, ge=1, description="Ask the judge n times; the majority decides (ties are unscored).")
    calibrate_judge: bool = Field(False, description="Also judge the verifiable rules and report agreement with the "
                                                     "exact checks.")
    role_adherence: bool = Field(True, description="Judge whether replies stay in role (where there is a role).")
    limit: int | None = Field(None, ge=1, description="Evaluate only the first N examples of each task (default: all).")
    sample: int | None = Field(None, ge=1, description=(
        "Evaluate a fixed seeded subset of N examples of each task or benchmark, the same for every model run with "
        "the same N and --sample-seed (ifeval and sys-ifeval get the same IFEval prompts) (default: all)."))
    sample_seed: int = Field(0, description="Seed of the --sample subset.")
    temperature: float = Field(0.0, ge=0.0, description="Sampling temperature of the model under test.")
    max_tokens: int | None = Field(None, ge=1, description="Longest response of the model under test (default: 1024; "
                                                       "512 for local: models, which decode a few dozen tokens/s).")
    seed: int = Field(0, description="Sampling seed, and the bootstrap seed.")
    concurrency: int = Field(8, ge=1, description="Requests in flight at once (raised to --batch-size when that is "
                                                  "larger and this is not given).")
    batch_size: int | None = Field(None, ge=1, description=BATCH_SIZE_HELP)
    parallel: int | None = Field(None, ge=1, description="local: models only: requests decoded at once, one llama.cpp "
                                                         "context each (default: one per core, at most 8).")
    timeout: float = Field(120.0, ge=1.0, description="Per-request timeout in seconds.")
    max_retries: int = Field(4, ge=0, description="Retries on 429/5xx/timeouts (exponential backoff, Retry-After "
                                                  "honoured).")
    bootstrap: int = Field(DEFAULT_RESAMPLES, ge=0, description="Bootstrap resamples for the paired rule-accuracy "
                                                                "interval (0: none); single-run intervals are Wilson.")
    rescore: bool = Field(False, description="Re-score the responses already in --out (e.g. with another judge) "
                                             "without generating.")
    rules_plugin: list[Path] | None = Field(None, description="A Python file defining more rule types (repeatable; "
                                                              "see docs/extending.md). Installed packages' "
                                                              "`rolenrules.rules` entry points are loaded too "
                                                              "(default: none).")

    @model_validator(mode="after")
    def _batches_fill(self) -> EvalCommandConfig:
        if self.batch_size is not None and self.concurrency < self.batch_size:
            if "concurrency" in self.model_fields_set:
                raise ValueError(f"--concurrency {self.concurrency} is below --batch-size {self.batch_size}: batches "
                                 "would never fill; raise --concurrency")
            object.__setattr__(self, "concurrency", self.batch_size)
        return self

    @property
    def sampling(self) -> Sampling:
        return Sampling(temperature=self.temperature, max_tokens=self.max_tokens or 1024, seed=self.seed)

    def run_config(self) -> EvalConfig:
        """The runner's settings (how a run generates and scores)."""
        return EvalConfig(sampling=self.sampling, concurrency=self.concurrency, role_adherence=self.role_adherence,
                          calibrate_judge=self.calibrate_judge, resamples=self.bootstrap, seed=self.seed,
                          rescore=self.rescore)




def _lm_eval_kinds() -> str:
    return spec_forms(kind for kind, entry in BACKENDS.items() if entry.lm_eval or kind == "openai")


class LmEvalCommandConfig(ModelOptions):
    """`rnr standard lm-eval`: lm-evaluation-harness on the same model."""

    model: str | None = Field(None, description=f"Model spec: {_lm_eval_kinds()}; openai: with --base-url "
                                                "(default: $RNR_MODEL, or openai: when an OpenAI env is set).")
    out: Path = Field(description="Run folder; results go to OUT/standard/lm_eval/.")
    tasks: str = Field(description="lm-eval tasks, comma-separated (e.g. mmlu,gsm8k).")
    endpoint: Literal["chat", "completions"] = Field(
        "chat", description="For openai: specs: chat (generative tasks) or completions (loglikelihood tasks such "
                            "as MMLU).")
    tokenizer: str | None = Field(None, description="Hugging Face tokenizer for --endpoint completions (default: "
                                                    "the model name).")
    limit: int | None = Field(None, ge=1, description="Examples per task, for a quick check (default: all).")
    chat_template: bool = Field(True, description="Pass --apply_chat_template.")
    dry_run: bool = Field(False, description="Print the lm_eval command instead of running it.")


class AlpacaEvalCommandConfig(ModelOptions):
    """`rnr standard alpaca-eval`: answer AlpacaEval's instructions, then call the tool."""

    out: Path = Field(description="Run folder; outputs go to OUT/standard/alpaca_eval/.")
    instructions: Path = Field(description="AlpacaEval's evaluation set (JSON array with `instruction`).")
    system: str | None = Field(None, description="System prompt to answer under (default: none).")
    annotators_config: str | None = Field(None, description="AlpacaEval annotator (default: the tool's).")
    limit: int | None = Field(None, ge=1, description="Answer only the first N instructions (default: all).")
    max_tokens: int = Field(2048, ge=1, description="Longest answer.")
    concurrency: int = Field(8, ge=1, description="Requests in flight at once (raised to --batch-size when that is "
                                                  "larger and this is not given).")
    batch_size: int | None = Field(None, ge=1, description=BATCH_SIZE_HELP)
    generate_only: bool = Field(False, description="Write model_outputs.json and stop (run alpaca_eval yourself).")
