"""`rnr run EXPERIMENT.yaml`: the whole method in one command —
generate → bench build → train → eval (base and tuned) → report.

The experiment file is validated whole when it is loaded: `generate` is a `GenerateConfig` and
`train` a `TrainConfig` (less the fields the experiment fills in), so a typo under `train:` is
reported before generation runs.

Every stage writes into the experiment's `workdir` and is resumable on its own (generation and
evaluation keep run stores; training resumes from checkpoints). A stage records the options and
inputs it was made from (`workdir/.stages/STAGE.json`) and counts as done only when that record
matches and its own store says it is complete. A stage whose options changed is refused, naming
what changed, until the user asks for it to be redone (`--force STAGE` or `--from STAGE`); a stage
whose input was redone is redone with it.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rolenrules.errors import ConfigError, Incomplete, validate_config
from rolenrules.generate.config import GenerateConfig
from rolenrules.records import stable_id
from rolenrules.train.config import TrainConfig

log = logging.getLogger("rolenrules.run")

STAGES = ("generate", "bench", "train", "eval-base", "eval-tuned", "report")
#: The stages whose output each stage reads: redoing one redoes those that read it.
READS: dict[str, tuple[str, ...]] = {"generate": (), "bench": ("generate",), "train": ("generate", "bench"),
                                     "eval-base": ("bench",), "eval-tuned": ("bench", "train"),
                                     "report": ("eval-base", "eval-tuned")}
#: Below these, a stage still runs but says its result will be weak.
MIN_TRAIN_EXAMPLES = 100
MIN_BENCH_EXAMPLES = 20
#: `TrainConfig` fields the experiment fills in (generated data + mix, the exclusion file).
TRAIN_FILLED = ("data", "exclude")
#: Options that change how a stage runs, not what it makes: left out of its fingerprint.
_OPERATIONAL = {"generate": set(), "train": {"resume", "overwrite", "logging_steps", "save_steps", "save_total_limit",
                                             "eval_steps", "report_to", "data", "out", "exclude"}}


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
    """An experiment file. `generate` takes the options of `rnr generate` (`out` defaults into
    `workdir`); `train` those of `rnr train` except `data` and `exclude`, which the experiment
    fills in — the generated data with the benchmark's system prompts excluded, plus `train.mix`
    (the original data, as the paper mixes it); `out` defaults into `workdir`."""

    model_config = ConfigDict(extra="forbid")

    workdir: Path = Field(description="Folder that holds every stage's output.")
    seed: int = Field(0, description="Seed for the benchmark split.")
    generate: GenerateConfig = Field(description="`rnr generate` options (input, teacher, base_url, num_prompts, ...).")
    bench: BenchSection = Field(default_factory=BenchSection)
    train: TrainConfig = Field(description="`rnr train` options (model, method, max_steps, ...).")
    mix: list[str] = Field(default_factory=list, description="`train.mix` in the file: extra PATH[:WEIGHT] data.")
    eval: EvalSection = Field(default_factory=EvalSection)


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment file whole; every error names the file and the field."""
    from rolenrules.config_file import load_yaml_mapping, resolve_paths

    values = load_yaml_mapping(path)
    base = Path(path).resolve().parent
    for section in ("generate", "train"):
        if not isinstance(values.get(section), dict):
            raise ConfigError(f"{path}: {section}: required (a mapping of `rnr {section}` options)")
    generate = {str(k).replace("-", "_"): v for k, v in values["generate"].items()}
    train = {str(k).replace("-", "_"): v for k, v in values["train"].items()}
    for key in TRAIN_FILLED:
        if key in train:
            raise ConfigError(f"{path}: train.{key}: set by the experiment (the generated data, without the "
                              "benchmark's system prompts); add other data with train.mix")
    # Relative paths in the file are relative to the file, like a Makefile's (config_file.resolve_paths).
    workdir = Path(resolve_paths({"workdir": values.get("workdir") or "."}, base, {"workdir": "output"},
                                 source=str(path))["workdir"])
    generate = resolve_paths(generate, base, GenerateConfig.PATHS, source=f"{path}: generate")
    train = resolve_paths(train, base, {**TrainConfig.PATHS, "mix": "data"}, source=f"{path}: train")
    mix = _as_list(train.pop("mix", None))
    # Inputs read by later stages are checked now, not after hours of generation and training.
    from rolenrules.config_file import split_weight

    for where, spec in [("generate.input", generate.get("input")), *(("train.mix", m) for m in mix)]:
        if isinstance(spec, str) and not spec.startswith("hf://") and not Path(split_weight(spec)[0]).exists():
            raise ConfigError(f"{path}: {where}: {split_weight(spec)[0]} does not exist (relative paths in an "
                              f"experiment file are relative to its folder, {base})")
    generate.setdefault("quiet", True)
    generate.setdefault("out", str(workdir / "generated.jsonl"))
    # Outside the run folder, so redoing the stage keeps the answers already paid for.
    generate.setdefault("cache", str(workdir / "cache" / "generate.sqlite"))
    train.setdefault("out", str(workdir / "model"))
    train["data"] = [generate["out"], *mix]
    train["exclude"] = str(workdir / "bench.exclude.txt")
    values = {**values, "workdir": workdir, "generate": generate, "train": train, "mix": mix}
    try:
        return validate_config(ExperimentConfig, values, str(path))
    except ConfigError as error:
        if str(error).startswith(f"{path}: "):
            raise  # a cross-field check of `rnr generate`'s options
        raise ConfigError(f"{path}: generate: {error}") from None


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


class Experiment:
    def __init__(self, config: ExperimentConfig, *, echo: Callable[[str], None] = print,
                 name: str = "EXPERIMENT.yaml") -> None:
        self.config = config
        self.echo = echo
        self.name = name
        self.workdir = config.workdir

    # -- paths ---------------------------------------------------------------------------------
    @property
    def generated(self) -> Path:
        return self.config.generate.out_path

    @property
    def bench_path(self) -> Path:
        return self.workdir / "bench.jsonl"

    @property
    def model_dir(self) -> Path:
        return Path(self.config.train.out)

    def eval_dir(self, which: str) -> Path:
        return self.workdir / f"eval-{which}"

    @property
    def report_path(self) -> Path:
        return self.workdir / "report.html"

    def _record_path(self, stage: str) -> Path:
        return self.workdir / ".stages" / f"{stage}.json"

    # -- what each stage is made from ----------------------------------------------------------
    def stage_options(self, stage: str) -> dict[str, Any]:
        """The resolved options and input contents that decide a stage's output."""
        from rolenrules.generate.pipeline import input_digest, run_identity

        config = self.config
        if stage == "generate":
            return run_identity(config.generate)
        if stage == "bench":
            return {"seed": config.seed, **config.bench.model_dump()}
        if stage == "train":
            options = config.train.model_dump(mode="json", exclude=_OPERATIONAL["train"])
            options["mix"] = [{"spec": spec, "content": input_digest(_mix_path(spec))} for spec in config.mix]
            return options
        if stage.startswith("eval-"):
            which = stage.split("-", 1)[1]
            judge = config.eval.judge or config.generate.judge or config.generate.teacher
            return {"model": self.model_spec(which), "judge": judge,
                    **config.eval.model_dump(exclude={"concurrency", "judge", "judge_base_url", "base_model"})}
        return {}

    def model_spec(self, which: str) -> str:
        if which == "base":
            return self.config.eval.base_model or f"hf:{self.config.train.model}"
        return f"hf:{self.model_dir}"

    def _records(self) -> dict[str, dict[str, Any]]:
        records: dict[str, dict[str, Any]] = {}
        for stage in STAGES:
            record = {"options": self.stage_options(stage),
                      "reads": {up: records[up]["fingerprint"] for up in READS[stage]}}
            records[stage] = {**record, "fingerprint": stable_id(record, length=16)}
        return records

    def _stored(self, stage: str) -> dict[str, Any] | None:
        try:
            record = json.loads(self._record_path(stage).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # never run (or run by an earlier rnr, which kept no record)
        return record if isinstance(record, dict) and "options" in record else None

    def _save(self, stage: str, record: dict[str, Any], status: str) -> None:
        from rolenrules.io import atomic_path

        with atomic_path(self._record_path(stage)) as tmp:
            tmp.write_text(json.dumps({**record, "status": status}, indent=1) + "\n", encoding="utf-8")

    def is_complete(self, stage: str) -> bool:
        """The stage's own outputs say it finished (not only its record)."""
        if stage == "generate":
            from rolenrules.generate.store import RunStore

            store_path = self.config.generate.run_path / "run.sqlite"
            if not (self.generated.exists() and store_path.exists()):
                return False
            store = RunStore(store_path)
            try:
                return store.complete
            finally:
                store.close()
        if stage == "bench":
            from rolenrules.heldout import exclude_path

            return self.bench_path.exists() and exclude_path(self.bench_path).exists()
        if stage == "train":
            return any((self.model_dir / name).exists() for name in ("adapter_config.json", "config.json"))
        if stage.startswith("eval-"):
            try:
                summary = json.loads((self.eval_dir(stage.split("-", 1)[1]) / "summary.json").read_text())
            except (OSError, ValueError):
                return False
            return bool(summary.get("complete"))
        return self.report_path.exists()

    # -- the run -------------------------------------------------------------------------------
    def plan(self, redo: Iterable[str] = ()) -> dict[str, str]:
        """What each stage will do: 'skip', 'run' (fresh or resuming its own store) or 'redo' (its
        earlier output is discarded). Raises ConfigError naming the first stage whose options changed."""
        redo = set(redo)
        records = self._records()
        actions: dict[str, str] = {}
        for stage in STAGES:
            stored = self._stored(stage)
            if stage in redo:
                actions[stage] = "redo"
            elif stored is None:
                actions[stage] = "run"
            elif stored["options"] != records[stage]["options"]:
                from rolenrules.generate.store import describe_changes

                changed = describe_changes(stored["options"], records[stage]["options"])
                raise ConfigError(
                    f"[{stage}] was made with other options ({changed}). To redo it and the stages after it: "
                    f"rnr run {self.name} --force {stage} (or --from {stage}); or put the options back")
            elif stored.get("reads") != records[stage]["reads"] or any(actions[up] != "skip" for up in READS[stage]):
                actions[stage] = "redo"  # what it reads was (or is being) redone
            elif stored.get("status") == "complete" and self.is_complete(stage):
                actions[stage] = "skip"
            else:
                actions[stage] = "run"
        return actions

    def run(self, *, force: Iterable[str] = (), start: str | None = None) -> Path:
        """Run the stages that need it. `force`: stages to redo; `start`: redo this stage and every later one."""
        unknown = [s for s in [*force, *([start] if start else [])] if s not in STAGES]
        if unknown:
            raise ConfigError(f"unknown stage {unknown[0]!r}: choose from {', '.join(STAGES)}")
        redo = set(force) | (set(STAGES[STAGES.index(start):]) if start else set())
        self.workdir.mkdir(parents=True, exist_ok=True)
        actions = self.plan(redo)
        records = self._records()
        steps: dict[str, Callable[[bool], None]] = {
            "generate": self.stage_generate, "bench": self.stage_bench, "train": self.stage_train,
            "eval-base": lambda fresh: self.stage_eval("base", fresh),
            "eval-tuned": lambda fresh: self.stage_eval("tuned", fresh), "report": self.stage_report,
        }
        for stage in STAGES:
            if actions[stage] == "skip":
                self.echo(f"[{stage}] already complete, skipped")
                continue
            self.echo(f"[{stage}] {'redoing' if actions[stage] == 'redo' else 'running'}")
            self._save(stage, records[stage], "started")
            steps[stage](actions[stage] == "redo")
            self._save(stage, records[stage], "complete")
        self.echo(f"report: {self.report_path}")
        return self.report_path

    # -- stages --------------------------------------------------------------------------------
    def stage_generate(self, fresh: bool) -> None:
        from rolenrules.generate import default_clients, generate

        config = self.config.generate
        if fresh and (config.run_path / "run.sqlite").exists():
            shutil.rmtree(config.run_path)  # our run store, made with other options; the request cache is kept
        result = generate(config, default_clients, command=f"rnr run {self.name}")
        self.echo(f"[generate] {result.kept} kept, {result.rejected} rejected, {result.failed} failed → {result.out}")
        if not result.complete:
            what = f"{result.failed} conversation(s)" + (
                f" and {result.calibration_failed} judge-calibration check(s)" if result.calibration_failed else "")
            raise Incomplete(f"[generate] {what} failed on server errors; run "
                             f"`rnr run {self.name}` again to retry them (the later stages wait for them)")
        if result.kept == 0:
            raise ConfigError(f"[generate] kept no conversation (see {result.rejects}): nothing to build a "
                              "benchmark or train on")

    def stage_bench(self, fresh: bool) -> None:
        from rolenrules.evaluate import build_bench
        from rolenrules.io import read_examples

        size = self.config.bench.size
        stats = build_bench(read_examples(self.generated), self.bench_path, size=size, seed=self.config.seed,
                            per_prompt=self.config.bench.per_prompt)
        self.echo(f"[bench] {stats.examples} examples under {stats.system_prompts} held-out system prompts "
                  f"(of {stats.candidate_prompts}) → {self.bench_path}")
        if stats.examples < MIN_BENCH_EXAMPLES:
            self.echo(f"[bench] warning: only {stats.examples} benchmark examples (under {MIN_BENCH_EXAMPLES}): "
                      "its intervals will be wide")

    def _training_examples(self) -> tuple[int, int]:
        """(generated examples left for training, all generated examples)."""
        from rolenrules.heldout import exclude_path, held_out_ids, read_exclusions
        from rolenrules.io import read_examples

        held_out = read_exclusions(exclude_path(self.bench_path))
        generated = [bool(held_out_ids(e) & held_out) for e in read_examples(self.generated)]
        return generated.count(False), len(generated)

    def stage_train(self, fresh: bool) -> None:
        from rolenrules.train import train

        left, generated = self._training_examples()
        if left == 0:
            raise ConfigError(f"[train] none of the {generated} generated examples is left for training once the "
                              "benchmark's system prompts are held out: generate more (generate.num_prompts) or "
                              "hold out fewer (bench.size)")
        if left < MIN_TRAIN_EXAMPLES:
            self.echo(f"[train] warning: only {left} generated examples to train on (under {MIN_TRAIN_EXAMPLES}): "
                      "the tuned model will differ little from the base")
        config = self.config.train
        if self.model_dir.exists():
            # Redone: start over in the folder we wrote; otherwise a crashed run resumes from its checkpoint.
            resume = not fresh and any((self.model_dir / "checkpoints").glob("checkpoint-*"))
            config = config.model_copy(update={"overwrite": True, "resume": resume})
        out = train(config, echo=self.echo)
        self.echo(f"[train] {left} generated examples (+ mix) → model {out}")

    def _judge_llm(self) -> Any:
        from rolenrules.llm.spec import build_llm

        gen = self.config.generate
        spec = self.config.eval.judge or gen.judge or gen.teacher
        base_url = self.config.eval.judge_base_url or (gen.judge_base_url if gen.judge else gen.base_url)
        return build_llm(spec, base_url=base_url, concurrency=self.config.eval.concurrency,
                         cache=self.workdir / "judge-cache.sqlite", quiet=True)

    def stage_eval(self, which: str, fresh: bool) -> None:
        from rolenrules.evaluate import EvalConfig, run_eval
        from rolenrules.evaluate.report import est_text
        from rolenrules.evaluate.runner import RESULTS, RUN, SUMMARY, USAGE
        from rolenrules.judge import Judge
        from rolenrules.llm import Sampling, make_llm

        folder = self.eval_dir(which)
        if fresh:
            for name in (RESULTS, SUMMARY, RUN, USAGE):  # files of ours, from the run being redone
                (folder / name).unlink(missing_ok=True)
        spec = self.model_spec(which)
        model = make_llm(spec, cache=self.workdir / f"eval-{which}-cache.sqlite",
                         concurrency=self.config.eval.concurrency)
        config = EvalConfig(sampling=Sampling(temperature=0.0, max_tokens=self.config.eval.max_tokens, seed=0),
                            concurrency=self.config.eval.concurrency, role_adherence=self.config.eval.role_adherence)
        run_eval(self.bench_path, folder, model=model, judge=Judge(self._judge_llm()), config=config,
                 bench_name=f"{self.bench_path.name} ({which})")
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        self.echo(f"[eval-{which}] {spec}: pass-rate {est_text(summary.get('pass_rate'))}, rule accuracy "
                  f"{est_text(summary.get('rule_accuracy'))} over {summary.get('n_examples')} examples → {folder}")

    def stage_report(self, fresh: bool) -> None:
        from rolenrules.evaluate import write_report

        markdown = write_report([self.eval_dir("base"), self.eval_dir("tuned")], self.report_path,
                                markdown=self.workdir / "report.md")
        self.echo(f"eval-base = {self.model_spec('base')}; eval-tuned = {self.model_spec('tuned')}")
        self.echo(markdown)


def _mix_path(spec: str) -> str:
    from rolenrules.train.config import DataSource

    return str(DataSource.split(spec)["path"])
