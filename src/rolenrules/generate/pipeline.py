"""`generate`: the RNR run from seed instructions to a verified dataset, crash-safe and resumable.

Before any model call: the options, the templates, the outputs (never over something rnr did not
write) and the input are checked, the run folder is locked, and the teacher and judge answer one
cheap request each. Then, each unit of work committed to the run store as it finishes:

  0. seeds      the input's records are copied into the run store in one streaming pass (a bad
                record stops the run here, naming file, line and field); a resumed or finished run
                does not read the input again
  1. plan       seeded shuffle of the seeds into groups of K, one group per system prompt
  2. calibrate  the judge is checked against the rule library on a sample (`calibrate`); with
                the embedded judge, or one that agrees too little, teacher-written (judged)
                rules are left out and every rule comes from the rule library
  3. prompts    the teacher writes a role + rules for each group; library rules are mixed in; a
                copy of the template's example is asked for again, then rejected
  4. dedup      near-duplicate system prompts are dropped, in index order (deterministic)
  5. answers    each conversation goes down `conversation_steps` (below), ending kept, rejected
                or failed; every reply checked, and the preference pairs they make, are kept too
  6. output     kept records, rejects, judge transcripts, pairs (`--pairs`) and the dataset card
                are streamed from the run store into their files, written atomically (`output`);
                the run is complete only when nothing failed on a server error

Each stage keeps a bounded window of units in flight (twice `--concurrency`) fed from a lazy
iterator over the plan, so memory does not grow with the input; finished units are committed in
batches (every ~50 ms or 256 units) and count as done only once committed. With `--executor ray`
the plan is cut into shards, each run by this same code in a Ray task (`executors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import itertools
import logging
import random
import shutil
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from rolenrules._lock import LOCK_FILE, FolderLock
from rolenrules.errors import ConfigError, DataError
from rolenrules.generate.calibrate import (CalibrationSummary, JudgedRules, calibrate_item, decide,
                                           decide_before_calibration, low_kappa, plan_calibration,
                                           summarise_calibration)
from rolenrules.generate.card import roles_line
from rolenrules.generate.config import GenerateConfig
from rolenrules.generate.dedup import near_duplicates
from rolenrules.generate.outcomes import (Failure, Outcome, PromptDropped, PromptOutcome, Rejection, StageFailure,
                                          Status, Trials, dropped, prompt_dropped)
from rolenrules.generate.output import OutputPart, Provenance, write_outputs
from rolenrules.generate.roles import is_file as is_role_file, read_roles
from rolenrules.generate.progress import LogProgress, ProgressReporter, StageTracker
from rolenrules.generate.seeds import Plan, PlanTable, SeedTable, plan_groups
from rolenrules.generate.stages import Answered, RuleMix, Teacher, answer_conversation
from rolenrules.generate.store import RunStore
from rolenrules.io import check_writable, ensure_writable_output, read_examples
from rolenrules.judge import Judge, transcript_tag
from rolenrules.llm import LLM, LLMError, build_llm, parse_spec
from rolenrules.llm.preflight import preflight
from rolenrules.prompts import load_template
from rolenrules.records import Example, SystemPrompt, Usage, stable_id
from rolenrules.rules import candidate_types, choose_types, get_rule_type, load_rule_plugins

log = logging.getLogger("rolenrules.generate")

T = TypeVar("T")


@dataclass
class RunResult:
    kept: int
    rejected: int
    #: Conversations that failed on server errors: left out, retried by the next run.
    failed: int
    out: Path
    rejects: Path
    card: Path
    already_complete: bool
    #: This invocation's usage.
    teacher_usage: Usage
    judge_usage: Usage
    #: Usage of every invocation of this run, this one included.
    total_usage: Usage = field(default_factory=Usage)
    #: Judge-calibration checks that failed on server errors (retried by the next run).
    calibration_failed: int = 0
    #: Whether teacher-written rules were used, and why (None: not decided yet).
    judged_rules: JudgedRules | None = None
    #: Preference pairs written (`--pairs`), and where.
    pairs: int = 0
    pairs_path: Path | None = None
    transcripts: Path | None = None
    #: Calls/s, tokens/s and time at the servers vs in rnr, this invocation (`LLM.stats()`), when measured.
    timing: str | None = None

    @property
    def complete(self) -> bool:
        return self.failed == 0 and self.calibration_failed == 0


def load_seeds(config: GenerateConfig) -> list[Example]:
    """Every seed record in memory (for small jobs such as the dry run; a run streams them: `SeedTable`)."""
    seeds = read_examples(config.input, format=config.format)
    return list(itertools.islice(seeds, config.limit) if config.limit else seeds)


def make_plans(config: GenerateConfig, seeds: Sequence[Example]) -> list[Plan]:
    """Groups of K seeds, one per system prompt, as `Plan`s (`plan_groups` says how they are drawn)."""
    return list(plan_groups(config, len(seeds)).plans(seeds))


def conversation_id(config: GenerateConfig, plan: Plan, position: int) -> str:
    return "rnr-" + stable_id(config.seed, plan.idx, position, plan.seeds[position].id)


# -- checks before any work ----------------------------------------------------------------------

def validate(config: GenerateConfig) -> int:
    """Everything that can be wrong with the options, found before any model is loaded or called.
    Returns how many library rules one system prompt can hold (up to the most --rules asks for)."""
    for name in (*Teacher.TEMPLATES, "judge", "role_adherence"):
        load_template(name, config.templates)
    load_rule_plugins(config.rules_plugin)
    for type_id in config.rule_types or []:
        get_rule_type(type_id)
    for spec in (config.teacher, config.judge):
        if spec:
            parse_spec(spec)
    types = config.sampled_rule_types  # checks --exclude-rule-types
    if is_role_file(config.roles):
        read_roles(config.roles)  # a bad line stops here, before any model call
    library_max = library_capacity(types, config.rules_range[1])
    if library_max == 0:
        raise ConfigError("--rule-types: none of these types can go into a system prompt")
    low = config.verifiable_range[0]
    if low > library_max:
        raise ConfigError(f"--verifiable-rules {config.verifiable_rules}: the rule types allowed "
                          f"({', '.join(types or ['the defaults'])}) give at most {library_max} "
                          "compatible rules per system prompt")
    return library_max


def library_capacity(types: list[str] | None, most: int) -> int:
    """The most mutually compatible library rules one system prompt can take, up to `most` (0 when
    no type can be drawn). The search is exhaustive, so this is exact."""
    pool = candidate_types(types, system_only=True)
    for n in range(min(most, len(pool)), 0, -1):
        try:
            choose_types(random.Random(0), pool, n)
        except ConfigError:
            continue
        return n
    return 0


def check_outputs(config: GenerateConfig) -> None:
    """Outputs that collide, replace the input or something rnr did not write, or cannot be
    written, are refused before anything is written or any model is called."""
    named = {"--out": config.out_path, "--rejects": config.rejects_path, "--card": config.card_path,
             "--transcripts": config.transcripts_path, "--run-dir": config.run_path}
    if config.pairs_path is not None:
        named["--pairs"] = config.pairs_path
    if config.cache:
        named["--cache"] = Path(config.cache)
    seen: dict[Path, str] = {}
    for option, path in named.items():
        resolved = path.resolve()
        if resolved in seen:
            raise ConfigError(f"{option} {path} is the same path as {seen[resolved]}: each output needs its own")
        seen[resolved] = f"{option} {path}"
    inputs = [config.input]
    ensure_writable_output(config.out, inputs=inputs, what="--out")
    ensure_writable_output(config.rejects_path, inputs=inputs, folder=False, what="--rejects")
    ensure_writable_output(config.card_path, inputs=inputs, folder=False, what="--card")
    ensure_writable_output(config.transcripts_path, inputs=inputs, folder=False, what="--transcripts")
    if config.pairs_path is not None:
        ensure_writable_output(config.pairs_path, inputs=inputs, folder=False, what="--pairs")
    if config.cache:
        ensure_writable_output(config.cache, inputs=inputs, folder=False, what="--cache")
    run = config.run_path
    local = [Path(i).resolve() for i in inputs if not i.startswith("hf://")]
    if any(run.resolve() == i or run.resolve() in i.parents for i in local):
        raise ConfigError(f"--run-dir {run} holds the input {config.input}: give another folder")
    if run.exists() and not run.is_dir():
        raise ConfigError(f"--run-dir {run} is an existing file where a folder is needed")
    if run.is_dir() and any(p.name != LOCK_FILE for p in run.iterdir()) and not (run / "run.sqlite").exists():
        raise ConfigError(f"--run-dir {run} is a folder that holds no rnr run (no run.sqlite): give a new or empty folder")
    check_writable(run, what=f"--run-dir {run}")


def input_digest(path: str) -> str:
    """A digest of the input's content, so a run resumed on an edited input is refused rather than
    mixing old and new records. Files up to 256 MiB are hashed whole; larger ones by size and their
    first and last 16 MiB; a folder by each of its files; an `hf://` id by its name."""
    if path.startswith("hf://"):
        return "hub:" + path
    root = Path(path)
    if not root.exists():
        return "missing"
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    digest = hashlib.sha256()
    block = 16 << 20
    for file in files:
        size = file.stat().st_size
        digest.update(f"{file.relative_to(root) if root.is_dir() else file.name}:{size}\n".encode())
        with open(file, "rb") as handle:
            if size <= 256 << 20:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            else:
                digest.update(handle.read(block))
                handle.seek(size - block)
                digest.update(handle.read(block))
    return digest.hexdigest()[:20]


def run_identity(config: GenerateConfig) -> dict[str, Any]:
    """What decides the run's content: the options (operational knobs excluded) and the input's content."""
    roles = {"roles_content": input_digest(config.roles)} if is_role_file(config.roles) else {}
    return {**config.identity(), "input_content": input_digest(config.input), **roles}


# -- the run -------------------------------------------------------------------------------------



def _is_local(spec: str | None) -> bool:
    # --parallel applies to whichever of teacher and judge runs in llama.cpp (no spec: the default
    # model, which build_llm checks); the other may be a server.
    return spec is None or spec.startswith("local:")


def default_clients(config: GenerateConfig) -> tuple[LLM, LLM]:
    """The teacher, and the judge (a sibling of the teacher unless --judge names another model)."""
    cache = Path(config.cache) if config.cache else config.run_path / "cache.sqlite"
    if config.parallel is not None and not (_is_local(config.teacher) or (config.judge and _is_local(config.judge))):
        raise ConfigError(f"--parallel sets the llama.cpp contexts of a local: model; the teacher ({config.teacher}) "
                          f"and judge ({config.judge or 'the teacher'}) are not local: models")
    teacher = build_llm(config.teacher, base_url=config.base_url, timeout=config.timeout,
                        max_retries=config.max_retries, concurrency=config.concurrency, cache=cache,
                        parallel=config.parallel if _is_local(config.teacher) else None)
    if not config.judge:
        return teacher, teacher.sibling()
    judge = build_llm(config.judge, base_url=config.judge_base_url, timeout=config.timeout,
                      max_retries=config.max_retries, concurrency=config.concurrency, cache=cache,
                      parallel=config.parallel if _is_local(config.judge) else None)
    return teacher, judge


def generate(config: GenerateConfig, make_clients: Callable[[GenerateConfig], tuple[LLM, LLM]], *,
             progress: ProgressReporter | None = None, command: str | None = None) -> RunResult:
    """Run (or resume) generation. `make_clients(config)` returns the (teacher, judge) clients
    (`default_clients` builds them from the config); it is only called when there is work to do, so a
    finished run loads no model and sends no request. With `config.executor == "ray"` the work is
    sharded over a Ray cluster (`make_clients` then runs in each shard's task, so it must pickle:
    a module-level function such as `default_clients`).

    `progress` receives each stage's counts (default: log lines through the `rolenrules` logger at
    least every 10 s); `command` is the command line the card records.

    Returns a `RunResult`; `result.complete` False means work failed on server errors and the same
    call should be made again to retry it.
    """
    if config.dry_run:
        raise ConfigError("dry_run: generate() writes data; use rolenrules.generate.estimate() for a dry run")
    library_max = validate(config)
    if config.executor == "ray":
        from rolenrules.generate.executors import require_ray

        require_ray()
    check_outputs(config)
    new_folder = not config.run_path.exists()
    try:
        return _generate(config, make_clients, library_max, progress, command)
    except (ConfigError, DataError):
        # Bad input or options found while reading the seeds: leave no run folder behind (none existed).
        if new_folder and config.run_path.is_dir() and not _has_work(config.run_path):
            shutil.rmtree(config.run_path, ignore_errors=True)
        raise


def _has_work(run: Path) -> bool:
    store = RunStore(run / "run.sqlite")
    try:
        return store.has_work()
    finally:
        store.close()


def _generate(config: GenerateConfig, make_clients: Callable[[GenerateConfig], tuple[LLM, LLM]], library_max: int,
              progress: ProgressReporter | None, command: str | None) -> RunResult:
    with FolderLock(config.run_path, what="run folder"):
        identity = run_identity(config)
        store = RunStore(config.run_path / "run.sqlite")
        try:
            resumed = store.claim(identity)
            check_layout(config, store)
            if store.complete and _outputs_exist(config):
                return _already_complete(config, store)
            if resumed:
                log.info("resuming run in %s", config.run_path)
            seeds = SeedTable.load(config, store, identity["input_content"])
            plans = plan_groups(config, len(seeds))
            if config.executor == "ray":
                from rolenrules.generate.executors import run_sharded

                return run_sharded(config, store, seeds, plans, make_clients, library_max,
                                   progress=progress, command=command)
            session = make_session(config, store, plans, seeds, make_clients, library_max, progress or LogProgress())
            with fewer_collections():
                asyncio.run(session.main())
            return _finish(config, store, session, command)
        finally:
            store.close()


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Python's cyclic garbage collector, less often, for the length of a run. A run allocates a few
    objects per request, so the default thresholds start a collection every few requests, and the
    older generations hold the hundreds of thousands of objects that imports leave: collections were
    ~20% of the client's CPU (benchmarks/generate_throughput.md). Those objects are frozen out of the
    collector's way and collections come every 50,000 allocations; both are restored afterwards."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def check_layout(config: GenerateConfig, store: RunStore) -> None:
    """A run folder is worked on by one executor with one number of shards: a sharded run's work lives
    in its shards' stores, which another layout would not see."""
    layout = {"executor": config.executor, "shards": config.shards if config.executor == "ray" else None}
    stored = store.get_meta("layout") or {"executor": "local", "shards": None}
    if stored == layout:
        return
    if store.has_work() or store.get_meta("layout") is not None and (config.run_path / "shards").is_dir():
        def name(value: dict[str, Any]) -> str:
            return "--executor local" if value["executor"] == "local" else f"--executor ray --shards {value['shards']}"

        raise ConfigError(f"{config.run_path}: this run folder holds a run made with {name(stored)}; run it again "
                          f"with those options to resume it (not {name(layout)}), or use another --out/--run-dir")
    store.set_meta("layout", layout)


def _already_complete(config: GenerateConfig, store: RunStore) -> RunResult:
    counts = store.get_meta("result") or {"kept": store.counts().get("kept", 0),
                                          "rejected": store.counts().get("rejected", 0)}
    log.info("run already complete: %d kept, %d rejected; nothing to do", counts["kept"], counts["rejected"])
    teacher_total, judge_total = store.usage_with_shards(config.run_path / "shards")
    decision = store.get_meta("judged_rules")
    return RunResult(counts["kept"], counts["rejected"], 0, config.out_path, config.rejects_path, config.card_path,
                     True, Usage(), Usage(), teacher_total.add(judge_total),
                     judged_rules=JudgedRules(**decision) if decision else None,
                     pairs_path=config.pairs_path, transcripts=config.transcripts_path)


def _outputs_exist(config: GenerateConfig) -> bool:
    paths = [config.out_path, config.rejects_path, config.transcripts_path]
    return all(p.exists() for p in paths) and (config.pairs_path is None or config.pairs_path.exists())


class _Transcripts:
    """Judge transcripts held by the unit of work they belong to (a conversation, a calibration item)
    until the unit is committed with them, in one transaction."""

    def __init__(self) -> None:
        self._held: dict[str, list[dict[str, Any]]] = {}

    def __call__(self, record: dict[str, Any]) -> None:
        if "conversation" in record:
            unit = str(record["conversation"])
        elif "calibration" in record:
            unit = f"calibration-{record['calibration']}"
        else:
            return
        self._held.setdefault(unit, []).append(record)

    def take(self, unit: str) -> list[dict[str, Any]]:
        return self._held.pop(unit, [])


async def _close(*llms: LLM) -> None:
    closed: set[int] = set()
    for llm in llms:
        if id(llm.backend) not in closed:  # a judge sibling shares the teacher's backend
            closed.add(id(llm.backend))
            await llm.aclose()


class _Batches:
    """Finished units committed to the run store together: every `every` seconds or `size` units,
    whichever comes first. What a unit reports (progress, the kept record in `partial.jsonl`) happens
    only after its commit, so nothing counts as done that a `kill -9` could still take back."""

    def __init__(self, store: RunStore, usage: Callable[[], None], partial: Path | None, *, every: float = 0.05,
                 size: int = 256) -> None:
        self.store, self.usage, self.partial, self.every, self.size = store, usage, partial, every, size
        self._after: list[Callable[[], None]] = []
        self._kept: list[str] = []
        self._since = time.monotonic()

    def done(self, after: Callable[[], None], kept: Example | None = None) -> None:
        """A unit's rows were put in the store; `after` runs once they are committed."""
        self._after.append(after)
        if kept is not None and self.partial is not None:
            self._kept.append(kept.model_dump_json())
        if len(self._after) >= self.size or time.monotonic() - self._since >= self.every:
            self.flush()

    def flush(self) -> None:
        self._since = time.monotonic()
        if not self._after:
            return
        self.usage()
        self.store.commit()
        if self._kept:
            assert self.partial is not None
            with open(self.partial, "a", encoding="utf-8") as handle:
                handle.write("\n".join(self._kept) + "\n")
            self._kept = []
        after, self._after = self._after, []
        for callback in after:
            callback()

    async def run(self) -> None:
        """Commit what is waiting at least every `every` seconds, even when no unit finishes."""
        while True:
            await asyncio.sleep(self.every)
            if time.monotonic() - self._since >= self.every:
                self.flush()


class _PromptLookup:
    """The written system prompts by index, read from the store on demand; the few recent ones kept
    (a window of conversations spans a few consecutive prompts)."""

    def __init__(self, store: RunStore, size: int) -> None:
        self.store, self.size = store, max(8, size)
        self._recent: OrderedDict[int, PromptOutcome | None] = OrderedDict()

    def get(self, idx: int) -> PromptOutcome | None:
        if idx in self._recent:
            self._recent.move_to_end(idx)
            return self._recent[idx]
        prompt = self._recent[idx] = self.store.prompt(idx)
        if len(self._recent) > self.size:
            self._recent.popitem(last=False)
        return prompt


# -- one conversation: a plain list of steps ----------------------------------------------------

@dataclass
class Draft:
    """A conversation in the making, handed down the steps; a step drops it by raising StageFailure."""

    id: str
    plan: Plan
    position: int
    seed: Example
    user_turns: list[str]
    system_prompt: SystemPrompt | None = None
    conflict: dict[str, Any] | None = None
    answered: Answered | None = None
    usage: Usage = field(default_factory=Usage)
    #: Every reply checked and the preference pairs they make (kept even when the conversation is rejected).
    trials: Trials = field(default_factory=Trials)


class Step(Protocol):
    async def __call__(self, draft: Draft) -> None: ...


class PromptSource(Protocol):
    def get(self, idx: int) -> PromptOutcome | None: ...


@dataclass
class UseSystemPrompt:
    """The conversation's system prompt was written (else it shares the prompt's failure)."""

    prompts: PromptSource

    async def __call__(self, draft: Draft) -> None:
        outcome = self.prompts.get(draft.plan.idx)
        if isinstance(outcome, SystemPrompt):
            draft.system_prompt = outcome
            return
        reason = outcome.reason if isinstance(outcome, PromptDropped) else "not written"
        raise StageFailure("system_prompt", f"its system prompt could not be written: {reason}",
                           retryable=not isinstance(outcome, PromptDropped) or outcome.status == Status.FAILED,
                           last_reply=outcome.last_reply if isinstance(outcome, PromptDropped) else None)


@dataclass
class DropNearDuplicates:
    """The system prompt is not a near-duplicate of an earlier one."""

    duplicate_of: dict[int, int]

    async def __call__(self, draft: Draft) -> None:
        self.check(draft)

    def check(self, draft: Draft) -> None:
        if draft.plan.idx in self.duplicate_of:
            raise StageFailure("dedup", f"system prompt is a near-duplicate of prompt {self.duplicate_of[draft.plan.idx]}")


@dataclass
class AddConflictTurn:
    """With probability `rate`, a user turn that pushes against one of the rules (a verifiable one when there is)."""

    teacher: Teacher
    rate: float
    seed: int

    async def __call__(self, draft: Draft) -> None:
        rng = random.Random(f"conflict-{self.seed}-{draft.id}")
        if not self.rate or rng.random() >= self.rate:
            return
        assert draft.system_prompt is not None
        rules = draft.system_prompt.rules
        rule = rng.choice([r for r in rules if r.kind == "verifiable"] or rules)
        message, usage = await self.teacher.conflict_turn(rule, draft.user_turns[-1])
        draft.usage = draft.usage.add(usage)
        draft.user_turns = [*draft.user_turns, message]
        draft.conflict = {"rule_id": rule.id, "message": message, "turn": len(draft.user_turns) - 1}


@dataclass
class AnswerAndVerify:
    """Every user turn answered under the system prompt and verified, regenerated with feedback when a rule broke."""

    teacher: Teacher
    judge: Judge
    max_attempts: int
    drop_unscored: bool
    best_of: int = 1

    async def __call__(self, draft: Draft) -> None:
        assert draft.system_prompt is not None
        draft.answered = await answer_conversation(self.teacher, self.judge, draft.system_prompt, draft.user_turns,
                                                   max_attempts=self.max_attempts, drop_unscored=self.drop_unscored,
                                                   best_of=self.best_of, conversation_id=draft.id,
                                                   trials=draft.trials)
        draft.usage = draft.usage.add(draft.answered.usage)


def conversation_steps(config: GenerateConfig, prompts: PromptSource, duplicate_of: dict[int, int],
                       teacher: Teacher, judge: Judge) -> list[Step]:
    """What happens to each conversation, in order."""
    return [
        UseSystemPrompt(prompts),
        DropNearDuplicates(duplicate_of),
        AddConflictTurn(teacher, config.conflict_rate, config.seed),
        AnswerAndVerify(teacher, judge, config.max_attempts, config.drop_unscored, config.best_of),
    ]


async def run_steps(steps: list[Step], draft: Draft, provenance: dict[str, Any]) -> Outcome:
    """A conversation down the steps: kept, or dropped (rejected or failed) by the step that stopped it."""
    try:
        with transcript_tag(conversation=draft.id):
            for step in steps:
                await step(draft)
    except StageFailure as failure:
        return dropped_draft(failure, draft)
    assert draft.answered is not None and draft.system_prompt is not None
    usage = draft.usage
    return Example(id=draft.id, messages=draft.answered.messages, system_prompt=draft.system_prompt,
                   verdicts=draft.answered.verdicts, metadata={
                       "seed_id": draft.seed.id, "source": draft.seed.metadata.get("source"),
                       "prompt_index": draft.plan.idx, **provenance, "attempts": draft.answered.attempts,
                       "conflict": draft.conflict,
                       "usage": {"requests": usage.requests, "prompt_tokens": usage.prompt_tokens,
                                 "completion_tokens": usage.completion_tokens}})


def dropped_draft(failure: StageFailure, draft: Draft) -> Rejection | Failure:
    """The record of a conversation that `failure` stopped, with what it had got to."""
    sp = draft.system_prompt
    return dropped(failure, id=draft.id, seed_id=draft.seed.id, prompt_index=draft.plan.idx,
                   source=draft.seed.metadata.get("source"), system_prompt_id=sp.id if sp else None,
                   system_prompt=sp.render() if sp else None, user_turns=draft.user_turns)


def near_duplicate_record(config: GenerateConfig, plan: Plan, position: int, system_prompt: SystemPrompt,
                          duplicate_of: int) -> Rejection | Failure:
    """What a conversation under a near-duplicate system prompt ends as (the steps stop it before any request)."""
    seed = plan.seeds[position]
    draft = Draft(id=conversation_id(config, plan, position), plan=plan, position=position, seed=seed,
                  user_turns=seed.user_turns[: config.max_turns], system_prompt=system_prompt)
    try:
        DropNearDuplicates({plan.idx: duplicate_of}).check(draft)
    except StageFailure as failure:
        return dropped_draft(failure, draft)
    raise AssertionError("not a near-duplicate")


def has_unscored(outcome: Outcome) -> bool:
    """The conversation ended with a rule nobody could check: kept with one (--no-drop-unscored), or
    rejected because of one."""
    if isinstance(outcome, Example):
        return any(v.passed is None for v in outcome.verdicts)
    return any(v.get("passed") is None for v in outcome.details.get("verdicts", []))


def _template_versions(teacher: Teacher, judge: Judge) -> dict[str, str]:
    return teacher.template_versions | {"judge": judge.template.version}


class Session:
    """One invocation's work on one run store, in one event loop (the HTTP clients belong to it): the
    whole plan, or the prompts `span` of it (a shard). A shard is given the run's decision on judged
    rules (`decision`) and does no calibration; `dedup` False leaves near-duplicates to the merge."""

    def __init__(self, config: GenerateConfig, store: RunStore, plans: PlanTable, seeds: Sequence[Example],
                 teacher: Teacher, judge: Judge, library_max: int, tracker: StageTracker,
                 transcripts: _Transcripts, *, span: tuple[int, int] | None = None, dedup: bool = True,
                 decision: JudgedRules | None = None, calibrate: bool = True) -> None:
        self.config, self.store, self.plans, self.seeds = config, store, plans, seeds
        self.teacher, self.judge, self.library_max, self.tracker = teacher, judge, library_max, tracker
        self.transcripts = transcripts
        self.span = span if span is not None else (0, len(plans))
        self.dedup, self.calibrates = dedup, calibrate
        #: Units worked on at once: enough to keep --concurrency requests in flight while some units
        #: are between requests, and no more (memory does not grow with the plan).
        self.window = max(2, config.concurrency * 2)
        self.calibration: CalibrationSummary | None = None
        self.calibration_failed = 0
        stored = store.get_meta("judged_rules")
        self.decision: JudgedRules | None = decision or (JudgedRules(**stored) if stored else None)
        self.batches = _Batches(store, self.committed, store.path.parent / "partial.jsonl")

    def committed(self) -> None:
        self.store.record_usage(self.teacher.llm.usage, self.judge.usage)

    async def main(self) -> None:
        heartbeat = asyncio.create_task(self._heartbeat())
        flusher = asyncio.create_task(self.batches.run())
        try:
            await self._work()
        finally:
            for task in (heartbeat, flusher):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.batches.flush()
            self.committed()
            self.store.commit()
            await _close(self.teacher.llm, self.judge.llm)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.tracker.tick()

    async def _drain(self, items: Iterator[T], job: Callable[[T], Awaitable[None]]) -> None:
        """Run `job` over `items` with at most `window` at once, taking items only as room frees up."""
        async def worker() -> None:
            for item in items:  # a shared iterator: each item goes to one worker
                self.tracker.enter()
                try:
                    await job(item)
                finally:
                    self.tracker.leave()

        await asyncio.gather(*(worker() for _ in range(self.window)))
        self.batches.flush()

    async def _work(self) -> None:
        config = self.config
        decision = self.decision or decide_before_calibration(config.judged_rules, self.judge.identity)
        calibrate = self.calibrates and config.judge_calibration > 0 and (decision is None or decision.on)
        models = [("teacher", self.teacher.llm)]
        if decision is None or decision.on:
            models.append(("judge", self.judge.llm))
        await preflight(*models)
        if calibrate:
            await self._calibrate()
        if decision is None:
            if self.calibration_failed:
                log.warning("judge calibration: %d check(s) failed on server errors; whether to use teacher-written "
                            "rules is decided once they are done: run the same command again", self.calibration_failed)
                return
            decision = decide(config.judged_rules, self.judge.identity, self.calibration, config.min_judge_kappa)
            self.store.set_meta("judged_rules", asdict(decision))
        self.decision = decision
        if self.calibrates:
            log.info("%s", decision.line())
            log.info("%s", self.teacher.role_source.line())
        if decision.on and low_kappa(self.calibration, config.min_judge_kappa):
            assert self.calibration is not None
            log.warning("the judge agrees little with exact checks (kappa %s, n=%d): its verdicts on teacher-written "
                        "rules are doubtful", _kappa_text(self.calibration), self.calibration.agreement.n)
        if self.span[0] < self.span[1]:
            await self._prompts(decision)
            await self._conversations()

    async def _calibrate(self) -> None:
        config = self.config
        items = plan_calibration(config.judge_calibration, self.seeds, seed=config.seed, types=config.sampled_rule_types,
                                 library_max=self.library_max)
        done = self.store.calibration()
        todo = [item for item in items if item.index not in done]
        self.tracker.start("judge calibration", len(items), len(items) - len(todo))

        async def run(item: Any) -> None:
            try:
                record = await calibrate_item(item, self.teacher, self.judge)
            except (StageFailure, LLMError) as error:
                self.calibration_failed += 1
                self.transcripts.take(f"calibration-{item.index}")  # redone by the next run
                log.debug("calibration item %d failed: %s", item.index, error)
                self.tracker.advance("failed")
                return
            self.store.put_calibration(item.index, record, self.transcripts.take(f"calibration-{item.index}"))
            self.batches.done(lambda: self.tracker.advance("kept" if record["reply"] is not None else "rejected"))

        await self._drain(iter(todo), run)
        self.tracker.end()
        self.calibration = summarise_calibration(self.store.calibration(), len(items))

    async def _prompts(self, decision: JudgedRules) -> None:
        config, store = self.config, self.store
        start, stop = self.span
        stored = store.prompt_statuses()
        # A prompt is (re)done when it is missing or failed on a server error.
        todo = [idx for idx in range(start, stop) if stored.get(idx) in (None, Status.FAILED.value)]
        self.tracker.start("system prompts", stop - start, stop - start - len(todo))
        mix = RuleMix(config.rules_range, config.verifiable_range, config.sampled_rule_types, judged=decision.on,
                      library_max=self.library_max)

        async def run(idx: int) -> None:
            plan = self.plans.plan(idx, self.seeds)
            rng = random.Random(f"prompt-{config.seed}-{plan.idx}")
            outcome: PromptOutcome
            try:
                outcome, _ = await self.teacher.system_prompt([s.user_turns[0] for s in plan.seeds], rng, mix,
                                                              tries=config.max_attempts)
            except StageFailure as failure:
                outcome = prompt_dropped(failure)
            store.put_prompt(plan.idx, outcome)
            status = "kept" if isinstance(outcome, SystemPrompt) else outcome.status
            self.batches.done(lambda: self.tracker.advance(status))

        await self._drain(iter(todo), run)
        self.tracker.end()

    def _pending(self) -> Iterator[tuple[Plan, int]]:
        """The conversations still to do, plan by plan (seeds read as they are reached), walked beside
        the store's finished ones in the same order, so no set of finished ids is held."""
        finished = self.store.iter_finished(*self.span)
        done = next(finished, None)
        for idx in range(*self.span):
            plan = None
            for position in range(len(self.plans.group(idx))):
                while done is not None and done < (idx, position):
                    done = next(finished, None)
                if done == (idx, position):
                    continue
                plan = plan or self.plans.plan(idx, self.seeds)
                yield plan, position

    async def _conversations(self) -> None:
        config, store, teacher, judge = self.config, self.store, self.teacher, self.judge
        start, stop = self.span
        # Dedup in index order, so the same prompts survive on every run.
        duplicate_of: dict[int, int] = {}
        if self.dedup:
            written = ((idx, sp.render()) for idx, sp in store.iter_prompts(start, stop) if isinstance(sp, SystemPrompt))
            duplicate_of = near_duplicates(written, config.dedup_threshold)
        total = min(stop * config.k, self.plans.conversations) - start * config.k
        self.tracker.start("conversations", total, store.finished_count())
        prompts = _PromptLookup(store, 2 * self.window // max(1, config.k) + 8)
        steps = conversation_steps(config, prompts, duplicate_of, teacher, judge)
        provenance = {"teacher": teacher.identity, "judge": judge.identity,
                      "templates": _template_versions(teacher, judge)}

        async def run(unit: tuple[Plan, int]) -> None:
            plan, position = unit
            seed = plan.seeds[position]
            draft = Draft(id=conversation_id(config, plan, position), plan=plan, position=position, seed=seed,
                          user_turns=seed.user_turns[: config.max_turns])
            outcome = await run_steps(steps, draft, provenance)
            # A failed (retryable) conversation is redone by the next run: its judge calls with it.
            calls = self.transcripts.take(draft.id)
            store.put_conversation(plan.idx, position, outcome, draft.trials,
                                   calls if not isinstance(outcome, Failure) else ())
            kept = isinstance(outcome, Example)
            status = "kept" if kept else outcome.status
            unscored = has_unscored(outcome)
            self.batches.done(lambda: self.tracker.advance(status, unscored=unscored),
                              outcome if kept else None)  # type: ignore[arg-type]

        await self._drain(self._pending(), run)
        self.tracker.end()

    def timing(self) -> str | None:
        return _timing(self.teacher.llm, self.judge.llm)


def _timing(teacher: LLM, judge: LLM) -> str | None:
    """Calls/s and time at the servers vs in this process, where the client measures them (`LLM.stats`)."""
    stats = [getattr(llm, "stats", None) for llm in (teacher, judge)]
    if not all(callable(s) for s in stats):
        return None
    teacher_stats, judge_stats = (s() for s in stats)  # type: ignore[misc]
    total = teacher_stats + judge_stats if judge is not teacher else teacher_stats
    return total.summary() if hasattr(total, "summary") else None


def _kappa_text(summary: CalibrationSummary) -> str:
    return "undefined" if summary.agreement.kappa is None else f"{summary.agreement.kappa:.2f}"


def make_session(config: GenerateConfig, store: RunStore, plans: PlanTable, seeds: SeedTable,
                 make_clients: Callable[[GenerateConfig], tuple[LLM, LLM]], library_max: int,
                 progress: ProgressReporter, **options: Any) -> Session:
    """A session over `plans` with the run's teacher and judge (a local run, or one shard of a sharded run)."""
    teacher_llm, judge_llm = make_clients(config)
    teacher = Teacher(teacher_llm, templates_dir=config.templates, temperature=config.temperature,
                      prompt_temperature=config.prompt_temperature, max_tokens=config.max_tokens, roles=config.roles)
    transcripts = _Transcripts()
    judge = Judge(judge_llm, templates_dir=config.templates, transcripts=transcripts)
    tracker = StageTracker(progress, lambda: teacher.llm.usage.add(judge.usage))
    return Session(config, store, plans, seeds, teacher, judge, library_max, tracker, transcripts, **options)


def provenance_of(teacher: Teacher, judge: Judge) -> Provenance:
    return Provenance(teacher=teacher.identity, judge=judge.identity, templates=_template_versions(teacher, judge),
                      roles=roles_line(teacher.role_source))


def _finish(config: GenerateConfig, store: RunStore, session: Session, command: str | None) -> RunResult:
    """Write the outputs from the run store; the run is complete when nothing failed on a server error."""
    calibration = session.calibration
    if calibration is None and store.calibration():
        calibration = summarise_calibration(store.calibration(), config.judge_calibration)
    timing = session.timing()
    written = write_outputs(config, [OutputPart(store)], top=store, calibration=calibration,
                            calibration_failed=session.calibration_failed, judged_rules=session.decision,
                            provenance=provenance_of(session.teacher, session.judge), usage=store.usage(),
                            command=command, timing=timing)
    complete = written.failed == 0 and session.calibration_failed == 0 and session.decision is not None
    store.set_meta("result", {"kept": written.kept, "rejected": written.rejected})
    store.set_complete(complete)
    if written.failed:
        log.warning("%d conversation(s) failed on server errors and were left out; run the same command again "
                    "to retry them", written.failed)
    teacher_total, judge_total = store.usage()
    return RunResult(written.kept, written.rejected, written.failed, config.out_path, config.rejects_path,
                     config.card_path, False, session.teacher.llm.usage, session.judge.usage,
                     teacher_total.add(judge_total), calibration_failed=session.calibration_failed,
                     judged_rules=session.decision, pairs=written.pairs if config.pairs_path is not None else 0,
                     pairs_path=config.pairs_path, transcripts=config.transcripts_path, timing=timing)


__all__ = ["Plan", "RunResult", "Session", "check_outputs", "conversation_id", "default_clients", "generate",
           "library_capacity", "load_seeds", "make_plans", "run_identity", "validate"]
