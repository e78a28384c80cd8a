"""`rnr run EXPERIMENT.yaml`: the whole method in one command —
generate → bench build → train → eval (base and tuned) → report.

Every stage writes into the experiment's `workdir`, is resumable on its own (generation and
evaluation keep run stores; training resumes from checkpoints), and is skipped when a marker
says it already finished, so re-running the command after a crash continues where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rolenrules.errors import ConfigError, validate_config

log = logging.getLogger("rolenrules.run")

STAGES = ("generate", "bench", "train", "eval-base", "eval-tuned", "report")


class BenchSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int = Field(50, ge=1, description="Held-out benchmark conversations (held out by system prompt).")
    per_prompt: int = Field(1, ge=1, description="Benchmark conversations taken per held-out system prompt.")


class EvalSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    judge: str | None = Field(None, description="Judge model spec (default: the generation teacher).")
    judge_base_url: str | None = Field(None, description="Judge server URL (default: the teacher's).")
    base_model: str | None = Field(None, description="Model spec of the untuned baseline (default: hf:TRAIN.MODEL).")
    max_tokens: int = Field(512, ge=1, description="Max tokens per evaluated response.")
    concurrency: int = Field(8, ge=1, description="Requests in flight.")
    role_adherence: bool = Field(True, description="Also judge whether replies stay in role.")


class ExperimentConfig(BaseModel):
    """An experiment file. `generate` and `train` take the options of `rnr generate` and `rnr train`
    (their `out` defaults into `workdir`); `train.data` defaults to the generated data, with the
    benchmark's system prompts excluded, plus `train.mix` (the original data, as the paper mixes)."""

    model_config = ConfigDict(extra="forbid")

    workdir: Path = Field(description="Folder that holds every stage's output.")
    seed: int = Field(0, description="Seed for the benchmark split.")
    generate: dict[str, Any] = Field(description="`rnr generate` options (input, teacher, base_url, num_prompts, ...).")
    bench: BenchSection = Field(default_factory=BenchSection)
    train: dict[str, Any] = Field(description="`rnr train` options (model, method, max_steps, ...); `mix`: extra PATH[:WEIGHT] data.")
    eval: EvalSection = Field(default_factory=EvalSection)


def load_experiment(path: str | Path) -> ExperimentConfig:
    from rolenrules.config_file import load_yaml_mapping

    values = load_yaml_mapping(path)
    config = validate_config(ExperimentConfig, values, str(path))
    # Relative paths in the file are relative to the file, like a Makefile's.
    base = Path(path).resolve().parent
    if not config.workdir.is_absolute():
        config.workdir = base / config.workdir
    for section, keys in ((config.generate, ("input", "templates")), (config.train, ("model", "chat_template"))):
        for key in keys:
            value = section.get(key)
            if isinstance(value, str) and not value.startswith("hf://") and (base / value).exists():
                section[key] = str(base / value)
    config.train["mix"] = [_relative(base, m) for m in _as_list(config.train.get("mix"))]
    return config


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def _relative(base: Path, spec: str) -> str:
    """A `PATH[:WEIGHT]` data spec with PATH made relative to the experiment file when it exists there."""
    from rolenrules.train.config import DataSource

    source = DataSource.split(spec)
    path = base / source["path"]
    resolved = str(path) if path.exists() else source["path"]
    return f"{resolved}:{source['weight']:g}" if "weight" in source else resolved


class Experiment:
    def __init__(self, config: ExperimentConfig, *, echo: Callable[[str], None] = print) -> None:
        self.config = config
        self.echo = echo
        self.workdir = config.workdir
        self.workdir.mkdir(parents=True, exist_ok=True)

    # -- paths ---------------------------------------------------------------------------------
    @property
    def generated(self) -> Path:
        return Path(self.config.generate.get("out") or self.workdir / "generated.jsonl")

    @property
    def bench_path(self) -> Path:
        return self.workdir / "bench.jsonl"

    @property
    def model_dir(self) -> Path:
        return Path(self.config.train.get("out") or self.workdir / "model")

    def eval_dir(self, which: str) -> Path:
        return self.workdir / f"eval-{which}"

    @property
    def report_path(self) -> Path:
        return self.workdir / "report.html"

    def _marker(self, stage: str) -> Path:
        return self.workdir / ".stages" / f"{stage}.done"

    def done(self, stage: str) -> bool:
        return self._marker(stage).exists()

    def _mark(self, stage: str) -> None:
        self._marker(stage).parent.mkdir(parents=True, exist_ok=True)
        self._marker(stage).write_text("done\n")

    # -- stages --------------------------------------------------------------------------------
    def run(self) -> Path:
        steps: dict[str, Callable[[], None]] = {
            "generate": self.stage_generate, "bench": self.stage_bench, "train": self.stage_train,
            "eval-base": lambda: self.stage_eval("base"), "eval-tuned": lambda: self.stage_eval("tuned"),
            "report": self.stage_report,
        }
        for stage in STAGES:
            if self.done(stage):
                self.echo(f"[{stage}] already complete, skipped")
                continue
            self.echo(f"[{stage}] running")
            steps[stage]()
            self._mark(stage)
        self.echo(f"report: {self.report_path}")
        return self.report_path

    def generate_config(self) -> Any:
        from rolenrules.generate import build_config

        values = {"quiet": True, **self.config.generate, "out": str(self.generated)}
        return build_config(values, "experiment generate")

    def stage_generate(self) -> None:
        from rolenrules.generate import default_clients, generate

        result = generate(self.generate_config(), default_clients)
        self.echo(f"[generate] {result.kept} kept, {result.rejected} rejected → {result.out}")
        if result.kept == 0:
            raise ConfigError(f"generation kept no conversation (see {result.rejects}); nothing to train on")

    def stage_bench(self) -> None:
        from rolenrules.evaluate import build_bench
        from rolenrules.io import read_examples

        stats = build_bench(read_examples(self.generated), self.bench_path, size=self.config.bench.size,
                            seed=self.config.seed, per_prompt=self.config.bench.per_prompt)
        self.echo(f"[bench] {stats}")

    def train_config(self) -> Any:
        from rolenrules.heldout import exclude_path
        from rolenrules.train import resolve_config

        values = {k: v for k, v in self.config.train.items() if k != "mix"}
        values["data"] = [str(self.generated), *self.config.train.get("mix", [])]
        values.setdefault("exclude", str(exclude_path(self.bench_path)))
        values["out"] = str(self.model_dir)
        if self.model_dir.exists() and not self.done("train"):
            # A crashed training run resumes from its last checkpoint.
            values.setdefault("overwrite", True)
            values.setdefault("resume", any((self.model_dir / "checkpoints").glob("checkpoint-*")))
        return resolve_config(None, **values)

    def stage_train(self) -> None:
        from rolenrules.train import train

        out = train(self.train_config(), echo=self.echo)
        self.echo(f"[train] model → {out}")

    def _judge_llm(self) -> Any:
        from rolenrules.llm.spec import build_llm

        gen = self.generate_config()
        spec = self.config.eval.judge or gen.judge or gen.teacher
        base_url = self.config.eval.judge_base_url or (gen.judge_base_url if gen.judge else gen.base_url)
        return build_llm(spec, base_url=base_url, concurrency=self.config.eval.concurrency,
                         cache=self.workdir / "judge-cache.sqlite", quiet=True)

    def stage_eval(self, which: str) -> None:
        from rolenrules.evaluate import EvalConfig, run_eval
        from rolenrules.judge import Judge
        from rolenrules.llm import Sampling, make_llm

        if which == "base":
            spec = self.config.eval.base_model or f"hf:{self.config.train['model']}"
        else:
            spec = f"hf:{self.model_dir}"
        model = make_llm(spec, cache=self.workdir / f"eval-{which}-cache.sqlite",
                         concurrency=self.config.eval.concurrency)
        config = EvalConfig(sampling=Sampling(temperature=0.0, max_tokens=self.config.eval.max_tokens, seed=0),
                            concurrency=self.config.eval.concurrency, role_adherence=self.config.eval.role_adherence)
        run_eval(self.bench_path, self.eval_dir(which), model=model, judge=Judge(self._judge_llm()), config=config,
                 bench_name=f"{self.bench_path.name} ({which})")
        self.echo(f"[eval-{which}] {spec} → {self.eval_dir(which)}")

    def stage_report(self) -> None:
        from rolenrules.evaluate import write_report

        markdown = write_report([self.eval_dir("base"), self.eval_dir("tuned")], self.report_path,
                                markdown=self.workdir / "report.md")
        self.echo(markdown)
