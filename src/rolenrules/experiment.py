"""`rnr run EXPERIMENT.yaml`: the whole method in one command —
generate → bench build → eval of the base → for each trained arm: train → eval → one report.

An experiment trains one model (`train:`) or several *arms* (`arms:`), each with its own method
(sft, dpo on the generated preference pairs, sft-then-dpo, grpo) and options, all evaluated against
the base model on the same held-out benchmark and the same built-in tasks (`eval.tasks`). An arm
may start from another arm's model (`from: ARM`: DPO on top of SFT without training SFT twice).

The experiment file is validated whole when it is loaded: `generate` is a `GenerateConfig` and each
arm a `TrainConfig` (`train:` less the fields the experiment fills in, with the arm's options on
top), so a typo under `train:` or an arm is reported before generation runs.

Every stage writes into the experiment's `workdir` and is resumable on its own (generation and
evaluation keep run stores; training resumes from checkpoints). A stage records the options and
inputs it was made from (`workdir/.stages/STAGE.json`) and counts as done only when that record
matches and its own store says it is complete. A stage whose options changed is refused, naming
what changed, until the user asks for it to be redone (`--force STAGE` or `--from STAGE`); a stage
whose input was redone is redone with it.

Layout of `workdir`: `generated.jsonl` (+ pairs, card), `bench.jsonl` (the test part of the held-out
benchmark) and `bench.validation.jsonl` (`bench.validation` examples for choosing settings, never
scored by the run), `bench.exclude.txt`; the model of the single arm in `model/` or of each named
arm in `arms/NAME/`; the benchmark evaluation of each model in `eval-MODEL/` and of each task in
`tasks/TASK/eval-MODEL/`; `report.html`/`report.md` (benchmark), `tasks/TASK/report.html`, and
`results.md`, every evaluation's pass-rates and each arm's paired difference from the base.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rolenrules.errors import ConfigError, Incomplete, validate_config
from rolenrules.generate.config import GenerateConfig
from rolenrules.records import stable_id
from rolenrules.train.config import TrainConfig

log = logging.getLogger("rolenrules.run")

#: The arm of an experiment without `arms:` (its stages keep their historical names: train, eval-tuned).
SINGLE_ARM = "tuned"
#: Below these, a stage still runs but says its result will be weak.
MIN_TRAIN_EXAMPLES = 100
MIN_BENCH_EXAMPLES = 20
#: `TrainConfig` fields the experiment fills in (generated data + mix, pairs, the exclusion file).
TRAIN_FILLED = ("data", "pairs", "exclude")
#: Options that change how a stage runs, not what it makes: left out of its fingerprint.
_OPERATIONAL = {"train": {"resume", "overwrite", "logging_steps", "save_steps", "save_total_limit", "eval_steps",
                          "report_to", "data", "out", "exclude"},
                "eval": {"concurrency", "batch_size", "judge", "judge_base_url", "base_model"}}
_ARM_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class BenchSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int = Field(50, ge=1, description="Held-out benchmark conversations scored by the run (the test part; held "
                                            "out by system prompt).")
    per_prompt: int = Field(1, ge=1, description="Benchmark conversations taken per held-out system prompt.")
    validation: int = Field(0, ge=0, description=(
        "More held-out conversations, under other system prompts, written to bench.validation.jsonl for choosing "
        "settings (steps, learning rate, mix) with `rnr eval`; the run never scores them, so the test part is "
        "used once."))


class EvalSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    judge: str | None = Field(None, description="Judge model spec (default: the generation teacher); only asked when "
                                                "a benchmark has judged rules or role adherence is on.")
    judge_base_url: str | None = Field(None, description="Judge server URL (default: the teacher's).")
    base_model: str | None = Field(None, description="Model spec of the untuned baseline (default: hf:TRAIN.MODEL).")
    max_tokens: int = Field(512, ge=1, description="Max tokens per evaluated response (greedy decoding).")
    concurrency: int = Field(8, ge=1, description="Requests in flight (at least batch_size for hf: batches to fill).")
    batch_size: int | None = Field(None, ge=1, description="hf: models: requests generated in one batch (default 8; "
                                                           "on CPU 32 is ~2.5x faster, benchmarks/local_engine.md).")
    role_adherence: bool = Field(True, description="Also judge whether replies stay in role (needs a judge).")
    tasks: list[str] = Field(default_factory=list, description=(
        "Built-in tasks every model is also evaluated on, e.g. [sys-ifeval, ifeval] (`rnr tasks`)."))
    sample: int | None = Field(None, ge=1, description=(
        "Evaluate a fixed seeded subset of N examples of each task, the same for every model (default: all)."))
    sample_seed: int = Field(0, description="Seed of the task subset.")
    data_dir: Path | None = Field(None, description="Your own copy of the task data (default: the bundled data).")

    @field_validator("tasks")
    @classmethod
    def _known(cls, tasks: list[str]) -> list[str]:
        from rolenrules.evaluate.tasks import get_task

        for name in tasks:
            get_task(name)
        if len(set(tasks)) != len(tasks):
            raise ValueError("a task is listed twice")
        return tasks


class ExperimentConfig(BaseModel):
    """An experiment file. `generate` takes the options of `rnr generate` (`out` defaults into
    `workdir`); `train` those of `rnr train` except `data`, `pairs` and `exclude`, which the experiment
    fills in — the generated data with the benchmark's system prompts excluded, plus `train.mix` (the
    original data, as the paper mixes it) for SFT, and the generated pairs for DPO. `arms` names
    several models to train, each `train` with its own options on top; without it, `train` is the one
    arm (`tuned`)."""

    model_config = ConfigDict(extra="forbid")

    workdir: Path = Field(description="Folder that holds every stage's output.")
    seed: int = Field(0, description="Seed for the benchmark split.")
    generate: GenerateConfig = Field(description="`rnr generate` options (input, teacher, base_url, num_prompts, ...).")
    bench: BenchSection = Field(default_factory=BenchSection)
    train: TrainConfig = Field(description="`rnr train` options (model, method, max_steps, ...); with `arms`, the "
                                           "options every arm shares, its model the base.")
    arms: dict[str, TrainConfig] = Field(default_factory=dict, description=(
        "Arms to train, NAME: `rnr train` options over `train` (method, lr, ...; `from: ARM` starts from an earlier "
        "arm's model). Default: one arm, `train` itself."))
    arm_from: dict[str, str] = Field(default_factory=dict, description="Arm -> the arm whose model it starts from.")
    mix: list[str] = Field(default_factory=list, description="`train.mix` in the file: extra PATH[:WEIGHT] data.")
    eval: EvalSection = Field(default_factory=EvalSection)

    @property
    def arm_configs(self) -> dict[str, TrainConfig]:
        """Every arm to train, in file order (the single arm `tuned` when the file names none)."""
        return dict(self.arms) if self.arms else {SINGLE_ARM: self.train}


def load_experiment(path: str | Path, params: dict[str, str] | None = None) -> ExperimentConfig:
    """Read and validate an experiment file whole; every error names the file and the field.

    `params` override the file's `params:` (NAME: default), which the file uses as `{NAME}` inside
    its values — e.g. the seed file, named once for generation and for the mix. A default in the
    file is relative to the file like any path there; a value given here that is an existing path
    relative to the current folder is made absolute (as a flag would be)."""
    from rolenrules.config_file import load_yaml_mapping, resolve_paths, split_weight

    values = substitute_params(load_yaml_mapping(path), params or {}, str(path))
    base = Path(path).resolve().parent
    for section in ("generate", "train"):
        if not isinstance(values.get(section), dict):
            raise ConfigError(f"{path}: {section}: required (a mapping of `rnr {section}` options)")
    raw_arms = values.get("arms") or {}
    if not isinstance(raw_arms, dict) or not all(isinstance(v, (dict, type(None))) for v in raw_arms.values()):
        raise ConfigError(f"{path}: arms: a mapping of NAME: `rnr train` options")
    generate = {str(k).replace("-", "_"): v for k, v in values["generate"].items()}
    train = {str(k).replace("-", "_"): v for k, v in values["train"].items()}
    arms = {str(name): {str(k).replace("-", "_"): v for k, v in (options or {}).items()}
            for name, options in raw_arms.items()}
    for where, section in [("train", train), *((f"arms.{n}", a) for n, a in arms.items())]:
        for key in TRAIN_FILLED:
            if key in section:
                raise ConfigError(f"{path}: {where}.{key}: set by the experiment (the generated data and pairs, "
                                  "without the benchmark's system prompts); add other data with train.mix")
    for name in arms:
        if not _ARM_NAME.match(name) or name == "base":
            raise ConfigError(f"{path}: arms.{name}: an arm name is lower-case letters, digits, - and _, and not "
                              "`base` (the untuned model)")
    # Relative paths in the file are relative to the file, like a Makefile's (config_file.resolve_paths).
    workdir = Path(resolve_paths({"workdir": values.get("workdir") or "."}, base, {"workdir": "output"},
                                 source=str(path))["workdir"])
    generate = resolve_paths(generate, base, GenerateConfig.PATHS, source=f"{path}: generate")
    kinds = {**TrainConfig.PATHS, "mix": "data"}
    train = resolve_paths(train, base, kinds, source=f"{path}: train")
    arms = {n: resolve_paths(a, base, kinds, source=f"{path}: arms.{n}") for n, a in arms.items()}
    mix = _as_list(train.pop("mix", None))
    # Inputs read by later stages are checked now, not after hours of generation and training.
    arm_mixes = [m for a in arms.values() for m in _as_list(a.get("mix"))]
    for where, spec in [("generate.input", generate.get("input")), *(("train.mix", m) for m in mix + arm_mixes)]:
        if isinstance(spec, str) and not spec.startswith("hf://") and not Path(split_weight(spec)[0]).exists():
            raise ConfigError(f"{path}: {where}: {split_weight(spec)[0]} does not exist (relative paths in an "
                              f"experiment file are relative to its folder, {base})")
    if isinstance(values.get("eval"), dict) and values["eval"].get("data_dir"):
        values["eval"] = resolve_paths(values["eval"], base, {"data_dir": "input"}, source=f"{path}: eval")
    generate.setdefault("quiet", True)
    generate.setdefault("out", str(workdir / "generated.jsonl"))
    # Outside the run folder, so redoing the stage keeps the answers already paid for.
    generate.setdefault("cache", str(workdir / "cache" / "generate.sqlite"))
    pairs = _pairs_path(generate, path)
    exclude = str(workdir / "bench.exclude.txt")
    train.setdefault("out", str(workdir / "model"))
    shared = _fill(train, generate["out"], mix, pairs, exclude)
    resolved_arms: dict[str, dict[str, Any]] = {}
    arm_from: dict[str, str] = {}
    for name, options in arms.items():
        options = dict(options)
        upstream = options.pop("from", None)
        arm_mix = _as_list(options.pop("mix")) if "mix" in options else mix
        merged = {k: v for k, v in train.items() if k != "out"} | options
        merged.setdefault("out", str(workdir / "arms" / name))
        if upstream is not None:
            if upstream not in resolved_arms:
                raise ConfigError(f"{path}: arms.{name}.from: {upstream!r} is not an arm listed before {name!r}")
            if "model" in options:
                raise ConfigError(f"{path}: arms.{name}: give `from` or `model`, not both")
            before = resolved_arms[upstream]
            if before.get("adapter", "full") != "full":
                before["merge"] = True  # the next arm trains the merged model
            merged["model"] = str(Path(before["out"]) / "merged") if before.get("adapter", "full") != "full" \
                else str(before["out"])
            arm_from[name] = upstream
        resolved_arms[name] = _fill(merged, generate["out"], arm_mix, pairs, exclude, where=f"{path}: arms.{name}")
    values = {**values, "workdir": workdir, "generate": generate, "train": shared, "arms": resolved_arms,
              "arm_from": arm_from, "mix": mix}
    try:
        return validate_config(ExperimentConfig, values, str(path))
    except ConfigError as error:
        if str(error).startswith(f"{path}: "):
            raise  # a cross-field check of `rnr generate`'s options
        raise ConfigError(f"{path}: generate: {error}") from None


_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def substitute_params(values: dict[str, Any], given: dict[str, str], source: str) -> dict[str, Any]:
    """`values` less `params:`, with each `{NAME}` of a declared param replaced by its value."""
    import os

    declared = values.pop("params", None) or {}
    if not isinstance(declared, dict):
        raise ConfigError(f"{source}: params: a mapping of NAME: default value")
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ConfigError(f"--param {unknown[0]}: {source} declares no such param (it has: "
                          f"{', '.join(map(str, declared)) or 'none'})")
    missing = sorted(str(k) for k, v in declared.items() if v is None and k not in given)
    if missing:
        raise ConfigError(f"{source}: param {missing[0]} has no default: give --param {missing[0]}=VALUE")
    table = {str(k): str(v) for k, v in declared.items() if v is not None}
    for name, value in given.items():
        table[name] = os.path.abspath(value) if os.path.exists(value) else value

    def sub(value: Any) -> Any:
        if isinstance(value, str):
            return _PARAM.sub(lambda m: table.get(m.group(1), m.group(0)), value)
        if isinstance(value, list):
            return [sub(v) for v in value]
        if isinstance(value, dict):
            return {k: sub(v) for k, v in value.items()}
        return value

    return {k: sub(v) for k, v in values.items()}


def _fill(options: dict[str, Any], generated: str, mix: list[str], pairs: str | None, exclude: str, *,
          where: str = "") -> dict[str, Any]:
    """A train section with what the experiment fills in, by method: the generated data (plus `mix`,
    for SFT) and the generated pairs (for DPO), held-out system prompts excluded."""
    from rolenrules.train.config import STAGES

    method = options.get("method", "sft")
    stages = STAGES.get(method, ("sft",)) if method not in ("full", "lora", "qlora") else ("sft",)
    filled = dict(options, exclude=exclude)
    if "sft" in stages:
        filled["data"] = [generated, *mix]
    elif "grpo" in stages:
        filled["data"] = [generated]  # prompts with verifiable rules; the original data has none
    if "dpo" in stages:
        if pairs is None:
            raise ConfigError(f"{where or 'train'}: method {method} trains on the generated preference pairs: set "
                              "generate.pairs: true (with generate.best_of above 1, pairs exist for easy rules too)")
        filled["pairs"] = [pairs]
    return filled


def _pairs_path(generate: dict[str, Any], path: str | Path) -> str | None:
    value = generate.get("pairs")
    if value is None or str(value).strip().lower() in ("false", "no", "off", "0", ""):
        return None
    if str(value).strip().lower() in ("true", "yes", "on", "1"):
        return str(generate["out"]).rstrip("/") + ".pairs.jsonl"
    return str(value)


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


class Experiment:
    def __init__(self, config: ExperimentConfig, *, echo: Callable[[str], None] = print,
                 name: str = "EXPERIMENT.yaml") -> None:
        self.config = config
        self.echo = echo
        self.name = name
        self.workdir = config.workdir
        self.arms = config.arm_configs

    # -- stages and what each reads ------------------------------------------------------------
    @staticmethod
    def train_stage(arm: str) -> str:
        return "train" if arm == SINGLE_ARM else f"train-{arm}"

    @property
    def models(self) -> list[str]:
        """Every evaluated model: the base, then each arm."""
        return ["base", *self.arms]

    @property
    def stages(self) -> list[str]:
        """In run order: data, benchmark, the base's evaluation, then each arm trained and evaluated."""
        order = ["generate", "bench", "eval-base"]
        for arm in self.arms:
            order += [self.train_stage(arm), f"eval-{arm}"]
        return [*order, "report"]

    def reads(self, stage: str) -> tuple[str, ...]:
        """The stages whose output `stage` reads: redoing one redoes those that read it."""
        if stage == "generate":
            return ()
        if stage == "bench":
            return ("generate",)
        if stage == "eval-base":
            return ("bench",)
        if stage == "report":
            return tuple(f"eval-{m}" for m in self.models)
        if stage.startswith("eval-"):
            arm = stage.split("-", 1)[1]
            return ("bench", self.train_stage(arm))
        arm = self._arm_of(stage)
        upstream = self.config.arm_from.get(arm)
        return ("generate", "bench", *((self.train_stage(upstream),) if upstream else ()))

    def _arm_of(self, train_stage: str) -> str:
        return SINGLE_ARM if train_stage == "train" else train_stage.split("-", 1)[1]

    # -- paths ---------------------------------------------------------------------------------
    @property
    def generated(self) -> Path:
        return self.config.generate.out_path

    @property
    def bench_path(self) -> Path:
        return self.workdir / "bench.jsonl"

    @property
    def validation_path(self) -> Path:
        return self.workdir / "bench.validation.jsonl"

    def model_dir(self, arm: str = SINGLE_ARM) -> Path:
        return Path(self.arms[arm].out)

    def eval_dir(self, which: str, task: str | None = None) -> Path:
        return self.workdir / f"eval-{which}" if task is None else self.workdir / "tasks" / task / f"eval-{which}"

    @property
    def report_path(self) -> Path:
        return self.workdir / "report.html"

    @property
    def results_path(self) -> Path:
        return self.workdir / "results.md"

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
            bench = config.bench.model_dump()
            if not bench["validation"]:
                del bench["validation"]  # as recorded before validation parts existed
            return {"seed": config.seed, **bench}
        if stage.startswith("eval-"):
            which = stage.split("-", 1)[1]
            judge = config.eval.judge or config.generate.judge or config.generate.teacher
            options = {"model": self.model_spec(which), "judge": judge,
                       **config.eval.model_dump(mode="json", exclude=_OPERATIONAL["eval"])}
            if not config.eval.tasks:  # recorded as before tasks existed, so older experiments still match
                for key in ("tasks", "sample", "sample_seed", "data_dir"):
                    options.pop(key)
            return options
        if stage == "report":
            return {}
        arm = self._arm_of(stage)
        train = self.arms[arm]
        options = train.model_dump(mode="json", exclude=_OPERATIONAL["train"])
        generated = str(self.generated)
        options["mix"] = [{"spec": s.spec(), "content": input_digest(s.path)} for s in train.data
                          if s.path != generated]
        if arm in config.arm_from:
            options["model"] = f"arm:{config.arm_from[arm]}"  # its model is what that arm's stage made
        return options

    def model_spec(self, which: str) -> str:
        if which == "base":
            return self.config.eval.base_model or f"hf:{self.config.train.model}"
        return f"hf:{self.model_dir(which)}"

    def _records(self) -> dict[str, dict[str, Any]]:
        records: dict[str, dict[str, Any]] = {}
        for stage in self.stages:
            record = {"options": self.stage_options(stage),
                      "reads": {up: records[up]["fingerprint"] for up in self.reads(stage)}}
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

            parts = [self.bench_path, exclude_path(self.bench_path)]
            parts += [self.validation_path] if self.config.bench.validation else []
            return all(p.exists() for p in parts)
        if stage == "report":
            return self.report_path.exists() and self.results_path.exists()
        if stage.startswith("eval-"):
            which = stage.split("-", 1)[1]
            folders = [self.eval_dir(which), *(self.eval_dir(which, t) for t in self.config.eval.tasks)]
            return all(_eval_complete(f) for f in folders)
        model = self.model_dir(self._arm_of(stage))
        return any((model / name).exists() for name in ("adapter_config.json", "config.json"))

    # -- the run -------------------------------------------------------------------------------
    def plan(self, redo: Iterable[str] = ()) -> dict[str, str]:
        """What each stage will do: 'skip', 'run' (fresh or resuming its own store) or 'redo' (its
        earlier output is discarded). Raises ConfigError naming the first stage whose options changed."""
        redo = set(redo)
        records = self._records()
        actions: dict[str, str] = {}
        for stage in self.stages:
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
            elif stored.get("reads") != records[stage]["reads"] or any(actions[up] != "skip"
                                                                      for up in self.reads(stage)):
                actions[stage] = "redo"  # what it reads was (or is being) redone
            elif stored.get("status") == "complete" and self.is_complete(stage):
                actions[stage] = "skip"
            else:
                actions[stage] = "run"
        return actions

    def run(self, *, force: Iterable[str] = (), start: str | None = None, until: str | None = None) -> Path:
        """Run the stages that need it. `force`: stages to redo; `start`: redo this stage and every later
        one; `until`: stop after this stage (e.g. look at the data before training on it)."""
        stages = self.stages
        unknown = [s for s in [*force, *([start] if start else []), *([until] if until else [])] if s not in stages]
        if unknown:
            raise ConfigError(f"unknown stage {unknown[0]!r}: choose from {', '.join(stages)}")
        redo = set(force) | (set(stages[stages.index(start):]) if start else set())
        self.workdir.mkdir(parents=True, exist_ok=True)
        actions = self.plan(redo)
        records = self._records()
        for stage in stages:
            if actions[stage] == "skip":
                self.echo(f"[{stage}] already complete, skipped")
                continue
            self.echo(f"[{stage}] {'redoing' if actions[stage] == 'redo' else 'running'}")
            self._save(stage, records[stage], "started")
            self._step(stage, actions[stage] == "redo")
            self._save(stage, records[stage], "complete")
            if stage == until:
                self.echo(f"stopped after [{stage}] (--until); run without it to go on")
                return self.report_path
        self.echo(f"report: {self.report_path}; all results: {self.results_path}")
        return self.report_path

    def _step(self, stage: str, fresh: bool) -> None:
        if stage == "generate":
            self.stage_generate(fresh)
        elif stage == "bench":
            self.stage_bench(fresh)
        elif stage == "report":
            self.stage_report(fresh)
        elif stage.startswith("eval-"):
            self.stage_eval(stage.split("-", 1)[1], fresh)
        else:
            self.stage_train(self._arm_of(stage), fresh)

    # -- stages --------------------------------------------------------------------------------
    def stage_generate(self, fresh: bool) -> None:
        from rolenrules.generate import default_clients, generate

        config = self.config.generate
        if fresh and (config.run_path / "run.sqlite").exists():
            shutil.rmtree(config.run_path)  # our run store, made with other options; the request cache is kept
        result = generate(config, default_clients, command=f"rnr run {self.name}")
        pairs = f", {result.pairs} preference pairs" if result.pairs_path else ""
        self.echo(f"[generate] {result.kept} kept, {result.rejected} rejected, {result.failed} failed{pairs} "
                  f"→ {result.out}")
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
        from rolenrules.io import read_examples, write_examples

        bench = self.config.bench
        stats = build_bench(read_examples(self.generated), self.bench_path, size=bench.size + bench.validation,
                            seed=self.config.seed, per_prompt=bench.per_prompt)
        if bench.validation:
            test, validation = split_bench(list(read_examples(self.bench_path)), bench.validation,
                                           seed=self.config.seed)
            write_examples(validation, self.validation_path)
            write_examples(test, self.bench_path)
            self.echo(f"[bench] {stats.examples} examples under {stats.system_prompts} held-out system prompts (of "
                      f"{stats.candidate_prompts}): {len(test)} to test → {self.bench_path}, {len(validation)} for "
                      f"choosing settings → {self.validation_path}")
            size = len(test)
        else:
            self.echo(f"[bench] {stats.examples} examples under {stats.system_prompts} held-out system prompts "
                      f"(of {stats.candidate_prompts}) → {self.bench_path}")
            size = stats.examples
        if size < MIN_BENCH_EXAMPLES:
            self.echo(f"[bench] warning: only {size} benchmark examples (under {MIN_BENCH_EXAMPLES}): "
                      "its intervals will be wide")

    def _training_examples(self) -> tuple[int, int]:
        """(generated examples left for training, all generated examples)."""
        from rolenrules.heldout import exclude_path, held_out_ids, read_exclusions
        from rolenrules.io import read_examples

        held_out = read_exclusions(exclude_path(self.bench_path))
        generated = [bool(held_out_ids(e) & held_out) for e in read_examples(self.generated)]
        return generated.count(False), len(generated)

    def stage_train(self, arm: str, fresh: bool) -> None:
        from rolenrules.train import train

        stage = self.train_stage(arm)
        config = self.arms[arm]
        left, generated = self._training_examples()
        if left == 0:
            raise ConfigError(f"[{stage}] none of the {generated} generated examples is left for training once the "
                              "benchmark's system prompts are held out: generate more (generate.num_prompts) or "
                              "hold out fewer (bench.size)")
        if left < MIN_TRAIN_EXAMPLES:
            self.echo(f"[{stage}] warning: only {left} generated examples to train on (under {MIN_TRAIN_EXAMPLES}): "
                      "the tuned model will differ little from the base")
        model_dir = self.model_dir(arm)
        if model_dir.exists():
            # Redone: start over in the folder we wrote; otherwise a crashed run resumes from its checkpoint.
            resume = not fresh and any((model_dir / "checkpoints").glob("checkpoint-*"))
            config = config.model_copy(update={"overwrite": True, "resume": resume})
        upstream = self.config.arm_from.get(arm)
        start = time.monotonic()
        out = train(config, echo=lambda text: self.echo(f"[{stage}] {text}"))
        minutes = (time.monotonic() - start) / 60
        what = " + ".join(s.spec() for s in config.data) or ""
        pairs = " + ".join(s.spec() for s in config.pairs)
        self.echo(f"[{stage}] {config.method} ({config.adapter}) from "
                  f"{f'arm {upstream}' if upstream else config.model} on {what}{' and ' if what and pairs else ''}"
                  f"{pairs or ''} ({left} generated examples left after holding out the benchmark) → model {out}; "
                  f"{minutes:.1f} min")

    def _judge(self, examples: list[Any]) -> Any:
        """A judge when the benchmark needs one (judged rules, role adherence), else None."""
        from rolenrules.evaluate.score_example import needs_judge
        from rolenrules.judge import Judge
        from rolenrules.llm.spec import build_llm

        if not needs_judge(examples, role_adherence=self.config.eval.role_adherence):
            return None
        gen = self.config.generate
        spec = self.config.eval.judge or gen.judge or gen.teacher
        base_url = self.config.eval.judge_base_url or (gen.judge_base_url if gen.judge else gen.base_url)
        return Judge(build_llm(spec, base_url=base_url, concurrency=self.config.eval.concurrency,
                               cache=self.workdir / "judge-cache.sqlite", quiet=True))

    def _eval_one(self, which: str, examples: list[Any], folder: Path, bench_name: str, fresh: bool) -> None:
        from rolenrules.evaluate import EvalConfig, run_eval
        from rolenrules.evaluate.report import est_text
        from rolenrules.evaluate.runner import RESULTS, RUN, SUMMARY, USAGE
        from rolenrules.llm import Sampling
        from rolenrules.llm.spec import build_llm

        settings = self.config.eval
        if fresh:
            for name in (RESULTS, SUMMARY, RUN, USAGE):  # files of ours, from the run being redone
                (folder / name).unlink(missing_ok=True)
        spec = self.model_spec(which)
        concurrency = max(settings.concurrency, settings.batch_size or 0)
        model = build_llm(spec, cache=self.workdir / f"eval-{which}-cache.sqlite", concurrency=concurrency,
                          batch_size=settings.batch_size if spec.startswith("hf:") else None)
        config = EvalConfig(sampling=Sampling(temperature=0.0, max_tokens=settings.max_tokens, seed=0),
                            concurrency=concurrency, role_adherence=settings.role_adherence)
        start = time.monotonic()
        run_eval(examples, folder, model=model, judge=self._judge(examples), config=config, bench_name=bench_name)
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        self.echo(f"[eval-{which}] {spec} on {bench_name}: pass-rate {est_text(summary.get('pass_rate'))}, rule "
                  f"accuracy {est_text(summary.get('rule_accuracy'))} over {summary.get('n_examples')} examples → "
                  f"{folder} ({(time.monotonic() - start) / 60:.1f} min)")

    def stage_eval(self, which: str, fresh: bool) -> None:
        from rolenrules.evaluate.bench import load_bench
        from rolenrules.evaluate.subset import seeded_subset
        from rolenrules.evaluate.tasks import load_task

        settings = self.config.eval
        self._eval_one(which, load_bench(self.bench_path), self.eval_dir(which), f"{self.bench_path.name} ({which})",
                       fresh)
        for task in settings.tasks:
            examples = seeded_subset(load_task(task, settings.data_dir), settings.sample, settings.sample_seed)
            name = task + (f" (seeded subset: {settings.sample} of each task, seed {settings.sample_seed})"
                           if settings.sample else "")
            folder = self.eval_dir(which, task)
            folder.mkdir(parents=True, exist_ok=True)
            self._eval_one(which, examples, folder, name, fresh)

    def stage_report(self, fresh: bool) -> None:
        from rolenrules.evaluate import write_report

        models = self.models
        markdown = write_report([self.eval_dir(m) for m in models], self.report_path,
                                markdown=self.workdir / "report.md")
        for task in self.config.eval.tasks:
            folder = self.workdir / "tasks" / task
            write_report([self.eval_dir(m, task) for m in models], folder / "report.html",
                         markdown=folder / "report.md")
        from rolenrules.io import atomic_path

        table = self.results_table()
        with atomic_path(self.results_path) as tmp:
            tmp.write_text(table, encoding="utf-8")
        self.echo("; ".join(f"eval-{m} = {self.model_spec(m)}" for m in models))
        self.echo(markdown)
        self.echo(table)

    def results_table(self) -> str:
        """Every evaluation's pass-rate per model (95% Wilson interval, n), and each arm against the base on
        the same examples: the paired difference with Newcombe's interval and McNemar's exact p."""
        from rolenrules.evaluate.report import comparisons, load_runs

        evaluations = [(f"RNR held-out test ({self.bench_path.name})", None), *((t, t) for t in self.config.eval.tasks)]
        rows = []
        for label, task in evaluations:
            runs = load_runs([self.eval_dir(m, task) for m in self.models])
            compared = {c["b"]: c for c in comparisons(runs)}
            for model, run in zip(self.models, runs):
                rate = run.summary.get("pass_rate") or {}
                c = compared.get(run.name)
                diff = "" if c is None else _diff_text(c["pass_rate"])
                p = "" if c is None else f"{c['mcnemar']['p_value']:.3g}"
                flips = "" if c is None else (f"{c['mcnemar']['a_fail_b_pass']} / "
                                              f"{c['mcnemar']['a_pass_b_fail']}")
                n = rate.get("n")
                rows.append([label, model, "?" if n is None else str(int(n)), _rate_text(rate), diff, p, flips])
        header = ["evaluation", "model", "n", "pass-rate [95% CI]", "vs base (paired) [95% CI]", "McNemar p",
                  "fail→pass / pass→fail"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        models = "; ".join(f"`{m}` = `{self.model_spec(m)}`" for m in self.models)
        return ("## Results\n\n" + "\n".join(lines) + f"\n\nModels: {models}. Pass-rate: every rule of an example "
                "followed (strict); intervals: Wilson (single model), Newcombe's paired score interval (difference); "
                "p: McNemar's exact test on the examples both models answered.\n")


def split_bench(examples: list[Any], validation: int, *, seed: int) -> tuple[list[Any], list[Any]]:
    """(test, validation) parts of a benchmark, split by system prompt (all of a prompt's examples go to
    one part), about `validation` examples in the validation part, seeded."""
    import random

    prompts = sorted({e.system_prompt.id for e in examples})
    random.Random(f"validation-{seed}").shuffle(prompts)
    chosen: set[str] = set()
    count = 0
    by_prompt: dict[str, int] = {}
    for e in examples:
        by_prompt[e.system_prompt.id] = by_prompt.get(e.system_prompt.id, 0) + 1
    for prompt in prompts:
        if count >= validation:
            break
        chosen.add(prompt)
        count += by_prompt[prompt]
    test = [e for e in examples if e.system_prompt.id not in chosen]
    return test, [e for e in examples if e.system_prompt.id in chosen]


def _eval_complete(folder: Path) -> bool:
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(summary.get("complete"))


def _rate_text(rate: dict[str, Any]) -> str:
    if rate.get("value") is None:
        return "n/a"
    return f"{100 * rate['value']:.1f}% [{100 * rate['low']:.1f}, {100 * rate['high']:.1f}]"


def _diff_text(block: dict[str, Any]) -> str:
    if block.get("diff") is None:
        return "n/a"
    ci = "" if block.get("low") is None else f" [{100 * block['low']:+.1f}, {100 * block['high']:+.1f}]"
    return f"{100 * block['diff']:+.1f} pts{ci}"
