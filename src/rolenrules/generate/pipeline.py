"""`generate`: the RNR run from seed instructions to a verified dataset, crash-safe and resumable.

Before any model call: the options, the templates, the outputs (never over something rnr did not
write) and the input are checked, the run folder is locked, and the teacher and judge answer one
cheap request each. Then, each unit of work committed to the run store as it finishes:

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
                are written atomically; the run is complete only when nothing failed on a server
                error
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rolenrules._lock import LOCK_FILE, FolderLock
from rolenrules.errors import ConfigError
from rolenrules.generate.calibrate import (CalibrationSummary, JudgedRules, calibrate_item, decide,
                                           decide_before_calibration, low_kappa, plan_calibration,
                                           summarise_calibration)
from rolenrules.generate.card import CardInputs, render_card
from rolenrules.generate.config import GenerateConfig
from rolenrules.generate.dedup import near_duplicates
from rolenrules.generate.outcomes import (Failure, Outcome, PromptDropped, PromptOutcome, StageFailure, Status,
                                          Trials, dropped, prompt_dropped)
from rolenrules.generate.roles import is_file as is_role_file, read_roles
from rolenrules.generate.progress import LogProgress, ProgressReporter, StageTracker
from rolenrules.generate.stages import Answered, RuleMix, Teacher, answer_conversation
from rolenrules.generate.store import RunStore
from rolenrules.io import (atomic_path, check_writable, ensure_writable_output, read_examples, write_examples,
                          write_jsonl)
from rolenrules.judge import Judge, transcript_tag
from rolenrules.llm import LLM, LLMError, build_llm, parse_spec
from rolenrules.llm.preflight import preflight
from rolenrules.prompts import load_template
from rolenrules.records import Example, SystemPrompt, Usage, stable_id
from rolenrules.rules import candidate_types, choose_types, get_rule_type, load_rule_plugins

log = logging.getLogger("rolenrules.generate")


@dataclass(frozen=True)
class Plan:
    idx: int
    seeds: list[Example]


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

    @property
    def complete(self) -> bool:
        return self.failed == 0 and self.calibration_failed == 0


def load_seeds(config: GenerateConfig) -> list[Example]:
    seeds = read_examples(config.input, format=config.format)
    return list(itertools.islice(seeds, config.limit) if config.limit else seeds)


def make_plans(config: GenerateConfig, seeds: list[Example]) -> list[Plan]:
    """Groups of K seeds, one per system prompt. By default every seed is used once (a seeded
    shuffle cut into groups); with --num-prompts, seeds are drawn from successive shuffles, so a
    seed may serve several prompts but never appears twice in one group."""
    if config.k > len(seeds):
        raise ConfigError(f"--k {config.k} is larger than the dataset ({len(seeds)} seed records)")
    rng = random.Random(f"plan-{config.seed}")
    order = list(range(len(seeds)))
    rng.shuffle(order)
    if config.num_prompts is None:
        groups = [order[i : i + config.k] for i in range(0, len(order), config.k)]
    else:
        groups = []
        queue = list(order)
        for _ in range(config.num_prompts):
            group: list[int] = []
            deferred: list[int] = []
            while len(group) < config.k:
                if not queue:
                    queue = list(range(len(seeds)))
                    rng.shuffle(queue)
                candidate = queue.pop(0)
                (deferred if candidate in group else group).append(candidate)
            queue = deferred + queue
            groups.append(group)
    return [Plan(idx=i, seeds=[seeds[j] for j in group]) for i, group in enumerate(groups)]


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
    types = config.sampled_rule_types  # checks --exclude-rule-types
    if is_role_file(config.roles):
        read_roles(config.roles)  # a bad line stops here, before any model call
    for spec in (config.teacher, config.judge):
        if spec:
            parse_spec(spec)
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
    finished run loads no model and sends no request.

    `progress` receives each stage's counts (default: log lines through the `rolenrules` logger at
    least every 10 s); `command` is the command line the card records.

    Returns a `RunResult`; `result.complete` False means work failed on server errors and the same
    call should be made again to retry it.
    """
    if config.dry_run:
        raise ConfigError("dry_run: generate() writes data; use rolenrules.generate.estimate() for a dry run")
    library_max = validate(config)
    check_outputs(config)
    seeds = load_seeds(config)
    plans = make_plans(config, seeds)
    with FolderLock(config.run_path, what="run folder"):
        identity = run_identity(config)
        store = RunStore(config.run_path / "run.sqlite")
        try:
            resumed = store.claim(identity)
            if store.complete and _outputs_exist(config):
                kept, rejected = len(store.kept()), len(store.dropped())
                log.info("run already complete: %d kept, %d rejected; nothing to do", kept, rejected)
                teacher_total, judge_total = store.usage()
                decision = store.get_meta("judged_rules")
                return RunResult(kept, rejected, 0, config.out_path, config.rejects_path, config.card_path, True,
                                 Usage(), Usage(), teacher_total.add(judge_total),
                                 judged_rules=JudgedRules(**decision) if decision else None,
                                 pairs_path=config.pairs_path, transcripts=config.transcripts_path)
            if resumed:
                log.info("resuming run in %s", config.run_path)
            teacher_llm, judge_llm = make_clients(config)
            teacher = Teacher(teacher_llm, templates_dir=config.templates, temperature=config.temperature,
                              prompt_temperature=config.prompt_temperature, max_tokens=config.max_tokens,
                              roles=config.roles)
            transcripts = _Transcripts()
            judge = Judge(judge_llm, templates_dir=config.templates, transcripts=transcripts)
            tracker = StageTracker(progress or LogProgress(), lambda: teacher.llm.usage.add(judge.usage))
            session = _Session(config, store, plans, seeds, teacher, judge, library_max, tracker, transcripts)
            asyncio.run(session.main())
            return _write_outputs(config, store, session, command)
        finally:
            store.close()


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


async def _bounded(limit: int, jobs: list[Callable[[], Awaitable[None]]]) -> None:
    semaphore = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        async with semaphore:
            await job()

    await asyncio.gather(*(one(j) for j in jobs))


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


@dataclass
class UseSystemPrompt:
    """The conversation's system prompt was written (else it shares the prompt's failure)."""

    prompts: dict[int, PromptOutcome]

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


def conversation_steps(config: GenerateConfig, prompts: dict[int, PromptOutcome], duplicate_of: dict[int, int],
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
        sp = draft.system_prompt
        return dropped(failure, id=draft.id, seed_id=draft.seed.id, prompt_index=draft.plan.idx,
                       source=draft.seed.metadata.get("source"), system_prompt_id=sp.id if sp else None,
                       system_prompt=sp.render() if sp else None, user_turns=draft.user_turns)
    assert draft.answered is not None and draft.system_prompt is not None
    usage = draft.usage
    return Example(id=draft.id, messages=draft.answered.messages, system_prompt=draft.system_prompt,
                   verdicts=draft.answered.verdicts, metadata={
                       "seed_id": draft.seed.id, "source": draft.seed.metadata.get("source"),
                       "prompt_index": draft.plan.idx, **provenance, "attempts": draft.answered.attempts,
                       "conflict": draft.conflict,
                       "usage": {"requests": usage.requests, "prompt_tokens": usage.prompt_tokens,
                                 "completion_tokens": usage.completion_tokens}})


def has_unscored(outcome: Outcome) -> bool:
    """The conversation ended with a rule nobody could check: kept with one (--no-drop-unscored), or
    rejected because of one."""
    if isinstance(outcome, Example):
        return any(v.passed is None for v in outcome.verdicts)
    return any(v.get("passed") is None for v in outcome.details.get("verdicts", []))


def _template_versions(teacher: Teacher, judge: Judge) -> dict[str, str]:
    return teacher.template_versions | {"judge": judge.template.version}


class _Session:
    """This invocation's work, in one event loop (the HTTP clients belong to it)."""

    def __init__(self, config: GenerateConfig, store: RunStore, plans: list[Plan], seeds: list[Example],
                 teacher: Teacher, judge: Judge, library_max: int, tracker: StageTracker,
                 transcripts: _Transcripts) -> None:
        self.config, self.store, self.plans, self.seeds = config, store, plans, seeds
        self.teacher, self.judge, self.library_max, self.tracker = teacher, judge, library_max, tracker
        self.transcripts = transcripts
        self.limit = max(2, config.concurrency * 2)
        self.calibration: CalibrationSummary | None = None
        self.calibration_failed = 0
        stored = store.get_meta("judged_rules")
        self.decision: JudgedRules | None = JudgedRules(**stored) if stored else None

    def committed(self) -> None:
        self.store.record_usage(self.teacher.llm.usage, self.judge.usage)

    async def main(self) -> None:
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            await self._work()
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            self.committed()
            await _close(self.teacher.llm, self.judge.llm)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.tracker.tick()

    async def _work(self) -> None:
        config = self.config
        decision = self.decision or decide_before_calibration(config.judged_rules, self.judge.identity)
        calibrate = config.judge_calibration > 0 and (decision is None or decision.on)
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
        log.info("%s", decision.line())
        log.info("%s", self.teacher.role_source.line())
        if decision.on and low_kappa(self.calibration, config.min_judge_kappa):
            assert self.calibration is not None
            log.warning("the judge agrees little with exact checks (kappa %s, n=%d): its verdicts on teacher-written "
                        "rules are doubtful", _kappa_text(self.calibration), self.calibration.agreement.n)
        await self._prompts(decision)
        await self._conversations()

    async def _calibrate(self) -> None:
        config = self.config
        items = plan_calibration(config.judge_calibration, self.seeds, seed=config.seed, types=config.sampled_rule_types,
                                 library_max=self.library_max)
        done = self.store.calibration()
        todo = [item for item in items if item.index not in done]
        self.tracker.start("judge calibration", len(items), len(items) - len(todo))

        def job(item: Any) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                try:
                    record = await calibrate_item(item, self.teacher, self.judge)
                except (StageFailure, LLMError) as error:
                    self.calibration_failed += 1
                    self.transcripts.take(f"calibration-{item.index}")  # redone by the next run
                    log.debug("calibration item %d failed: %s", item.index, error)
                    self.tracker.advance("failed")
                    return
                self.store.put_calibration(item.index, record, self.transcripts.take(f"calibration-{item.index}"))
                self.committed()
                self.tracker.advance("kept" if record["reply"] is not None else "rejected")
            return run

        await _bounded(self.limit, [job(item) for item in todo])
        self.tracker.end()
        self.calibration = summarise_calibration(self.store.calibration(), len(items))

    async def _prompts(self, decision: JudgedRules) -> None:
        config, store = self.config, self.store
        stored = store.prompts()
        todo = [p for p in self.plans if p.idx not in stored or (
            isinstance(stored[p.idx], PromptDropped) and stored[p.idx].status == Status.FAILED)]
        self.tracker.start("system prompts", len(self.plans), len(self.plans) - len(todo))
        mix = RuleMix(config.rules_range, config.verifiable_range, config.sampled_rule_types, judged=decision.on,
                      library_max=self.library_max)

        def job(plan: Plan) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                rng = random.Random(f"prompt-{config.seed}-{plan.idx}")
                outcome: PromptOutcome
                try:
                    outcome, _ = await self.teacher.system_prompt([s.user_turns[0] for s in plan.seeds], rng, mix,
                                                                  tries=config.max_attempts)
                except StageFailure as failure:
                    outcome = prompt_dropped(failure)
                store.put_prompt(plan.idx, outcome)
                self.committed()
                self.tracker.advance("kept" if isinstance(outcome, SystemPrompt) else outcome.status)
            return run

        await _bounded(self.limit, [job(p) for p in todo])
        self.tracker.end()

    async def _conversations(self) -> None:
        config, store, teacher, judge = self.config, self.store, self.teacher, self.judge
        # Dedup in index order, so the same prompts survive on every run.
        prompts = store.prompts()
        written = {idx: sp for idx, sp in prompts.items() if isinstance(sp, SystemPrompt)}
        duplicate_of = near_duplicates(((idx, written[idx].render()) for idx in sorted(written)),
                                       config.dedup_threshold)
        finished = store.finished_ids()
        units = [(plan, pos) for plan in self.plans for pos in range(len(plan.seeds))]
        pending = [(p, pos) for p, pos in units if conversation_id(config, p, pos) not in finished]
        self.tracker.start("conversations", len(units), len(units) - len(pending))
        partial = config.run_path / "partial.jsonl"
        steps = conversation_steps(config, prompts, duplicate_of, teacher, judge)
        provenance = {"teacher": teacher.identity, "judge": judge.identity,
                      "templates": _template_versions(teacher, judge)}

        def job(plan: Plan, position: int) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                seed = plan.seeds[position]
                draft = Draft(id=conversation_id(config, plan, position), plan=plan, position=position, seed=seed,
                              user_turns=seed.user_turns[: config.max_turns])
                outcome = await run_steps(steps, draft, provenance)
                # A failed (retryable) conversation is redone by the next run: its judge calls with it.
                calls = self.transcripts.take(draft.id)
                store.put_conversation(plan.idx, position, outcome, draft.trials,
                                       calls if not isinstance(outcome, Failure) else ())
                self.committed()
                if isinstance(outcome, Example):
                    with open(partial, "a", encoding="utf-8") as handle:
                        handle.write(outcome.model_dump_json() + "\n")
                status = "kept" if isinstance(outcome, Example) else outcome.status
                self.tracker.advance(status, unscored=has_unscored(outcome))
            return run

        await _bounded(self.limit, [job(p, pos) for p, pos in pending])
        self.tracker.end()


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


def _write_outputs(config: GenerateConfig, store: RunStore, session: _Session, command: str | None) -> RunResult:
    teacher, judge = session.teacher, session.judge
    kept = store.kept()
    rejects = store.dropped()
    failed = sum(1 for r in rejects if isinstance(r, Failure))
    trials = store.trials()
    teacher_total, judge_total = store.usage()
    write_examples(kept, config.out)
    write_jsonl((r.model_dump(mode="json") for r in rejects), config.rejects_path)
    finished = set(trials) | {e.id for e in kept} | {r.id for r in rejects if not isinstance(r, Failure)}
    units = finished | {f"calibration-{i}" for i in store.calibration()}
    write_jsonl(store.transcripts(units), config.transcripts_path)
    pairs = [pair for t in trials.values() for pair in t.pairs]
    if config.pairs_path is not None:
        write_jsonl(pairs, config.pairs_path)
    calibration = session.calibration
    if calibration is None and store.calibration():
        calibration = summarise_calibration(store.calibration(), config.judge_calibration)
    card = render_card(CardInputs(
        config=config, kept=kept, rejects=rejects, prompts=store.prompts(), trials=trials,
        calibration=calibration, calibration_failed=session.calibration_failed, judged_rules=session.decision,
        teacher=teacher.identity, judge=judge.identity, teacher_usage=teacher_total, judge_usage=judge_total,
        templates=_template_versions(teacher, judge), command=command, roles=teacher.role_source,
        pairs_written=config.pairs_path is not None, timing=_timing(teacher.llm, judge.llm)))
    with atomic_path(config.card_path) as tmp:
        tmp.write_text(card, encoding="utf-8")
    complete = failed == 0 and session.calibration_failed == 0 and session.decision is not None
    store.set_complete(complete)
    if failed:
        log.warning("%d conversation(s) failed on server errors and were left out; run the same command again "
                    "to retry them", failed)
    return RunResult(len(kept), len(rejects) - failed, failed, config.out_path, config.rejects_path, config.card_path,
                     False, teacher.llm.usage, judge.usage, teacher_total.add(judge_total),
                     calibration_failed=session.calibration_failed, judged_rules=session.decision,
                     pairs=len(pairs) if config.pairs_path is not None else 0, pairs_path=config.pairs_path,
                     transcripts=config.transcripts_path)


__all__ = ["Plan", "RunResult", "check_outputs", "conversation_id", "default_clients", "generate", "library_capacity",
           "load_seeds", "make_plans", "run_identity", "validate"]
