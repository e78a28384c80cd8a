"""Sharded generation on Ray (`--executor ray --shards N`).

The plan (groups of K seeds, one per system prompt) is cut into N contiguous spans of prompt
indices, the same for every run of the same options. Each shard is one Ray task that runs the
normal pipeline (`pipeline.Session`) over its span with a run store of its own,
`RUN/shards/III-of-NNN/run.sqlite` (and its own request cache beside it), so each shard resumes
on its own and a finished shard is not run again. Before the shards, one task calibrates the
judge into the run's own store, once: every shard uses the same decision on judged rules.

When every shard has returned, their stores are merged into one output: records, rejects, pairs,
transcripts, one card. Near-duplicate system prompts are found here, over all shards' prompts in
index order, and their conversations become the same dedup rejections a local run writes; so the
same `--seed` gives the same records as a local run. (A shard answers conversations under a
prompt that turns out to duplicate another shard's: those requests are spent, then dropped.)

The run folder and the input must be on storage every Ray node sees (one machine, or a shared
file system): the shards read the seeds from the run's store and write their own beside it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rolenrules._lock import FolderLock
from rolenrules.errors import BusyError, ConfigError, ExitCode, RnrError
from rolenrules.generate.calibrate import JudgedRules, decide_before_calibration, summarise_calibration
from rolenrules.generate.config import GenerateConfig
from rolenrules.generate.dedup import near_duplicates
from rolenrules.generate.output import Dedup, OutputPart, Provenance, write_outputs, written_prompts
from rolenrules.generate.progress import LogProgress, ProgressReporter, StageTracker
from rolenrules.generate.seeds import PlanTable, SeedTable, plan_groups
from rolenrules.generate.store import RunStore
from rolenrules.llm import LLM
from rolenrules.llm.stats import CallStats
from rolenrules.records import SystemPrompt, Usage

log = logging.getLogger("rolenrules.generate")

RAY_INSTALL = "pip install 'rolenrules[ray]'"
#: How long a shard waits for its folder's lock: the task of a killed driver may take a moment to be stopped.
LOCK_WAIT_S = 120.0


class ShardFailed(RnrError):
    """A shard's task stopped on an error (its work so far is kept; the same command resumes it)."""

    exit_code = ExitCode.ERROR


def require_ray() -> None:
    """Ray is importable, or a ConfigError with the line that installs it."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ConfigError(f"--executor ray needs Ray, which is not installed: {RAY_INSTALL}") from None


def shard_spans(prompts: int, shards: int) -> list[tuple[int, int]]:
    """N contiguous spans of prompt indices, as even as can be (empty ones when N > prompts)."""
    return [(i * prompts // shards, (i + 1) * prompts // shards) for i in range(shards)]


def shard_folder(config: GenerateConfig, index: int) -> Path:
    return config.run_path / "shards" / f"{index:03d}-of-{config.shards:03d}"


def _shard_config(config: GenerateConfig, index: int) -> GenerateConfig:
    # The shard's run folder holds its store, its request cache (unless --cache names one) and its partial.jsonl.
    return config.model_copy(update={"run_dir": str(shard_folder(config, index)), "executor": "local"})


# -- the tasks (run in Ray workers) --------------------------------------------------------------

def fewer_collections() -> Any:
    from rolenrules.generate.pipeline import fewer_collections

    return fewer_collections()


def _session(config: GenerateConfig, store: RunStore, seeds_store: RunStore, make_clients: Callable[..., Any],
             library_max: int, **options: Any) -> Any:
    from rolenrules.generate.pipeline import make_session

    count = seeds_store.get_meta("seeds")["count"]
    return make_session(config, store, plan_groups(config, count), SeedTable(seeds_store, count), make_clients,
                        library_max, LogProgress(every=30.0), **options)


def _summary(session: Any) -> dict[str, Any]:
    from rolenrules.generate.pipeline import provenance_of

    stats = [getattr(llm, "stats", None) for llm in (session.teacher.llm, session.judge.llm)]
    measured = [asdict(s()) for s in stats if callable(s)]
    return {"usage": [session.teacher.llm.usage.model_dump(), session.judge.usage.model_dump()],
            "stats": measured[:1] if session.judge.llm is session.teacher.llm else measured,
            "provenance": asdict(provenance_of(session.teacher, session.judge))}


def _as_error(error: RnrError) -> dict[str, Any]:
    return {"error": str(error), "exit_code": int(error.exit_code), "label": error.label}


def run_calibration(config: GenerateConfig, make_clients: Callable[..., Any], library_max: int) -> dict[str, Any]:
    """The judge calibration and the decision on judged rules, into the run's own store."""
    store = RunStore(config.run_path / "run.sqlite")
    try:
        session = _session(config, store, store, make_clients, library_max, span=(0, 0))
        with fewer_collections():
            asyncio.run(session.main())
        decision = asdict(session.decision) if session.decision is not None else None
        return {"calibration_failed": session.calibration_failed, "decision": decision, **_summary(session)}
    except RnrError as error:
        return _as_error(error)
    finally:
        store.close()


def run_shard(config: GenerateConfig, index: int, span: tuple[int, int], identity: dict[str, Any],
              decision: dict[str, Any], make_clients: Callable[..., Any], library_max: int) -> dict[str, Any]:
    """One shard: the pipeline over its span of prompts, in its own run store; near-duplicates are left
    to the merge. Returns what it did (or the error that stopped it, as one line)."""
    shard = _shard_config(config, index)
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            lock = FolderLock(shard.run_path, what="shard folder").__enter__()
            break
        except BusyError as error:
            if time.monotonic() > deadline:
                return _as_error(error)
            time.sleep(1.0)
    store = RunStore(shard.run_path / "run.sqlite")
    seeds = RunStore(config.run_path / "run.sqlite")
    try:
        store.claim({**identity, "shard": [index, config.shards]})
        if store.complete:
            return {"complete": True, "skipped": True, "provenance": store.get_meta("provenance")}
        session = _session(shard, store, seeds, make_clients, library_max, span=span, dedup=False,
                           decision=JudgedRules(**decision), calibrate=False)
        with fewer_collections():
            asyncio.run(session.main())
        summary = _summary(session)
        complete = store.counts().get("failed", 0) == 0
        store.set_meta("provenance", summary["provenance"])
        store.set_complete(complete)
        return {"complete": complete, "skipped": False, **summary}
    except RnrError as error:
        return _as_error(error)
    finally:
        seeds.close()
        store.close()
        lock.__exit__(None, None, None)


# -- the driver ----------------------------------------------------------------------------------

def _start_ray(config: GenerateConfig) -> bool:
    """Connect to (or start) Ray; True when this call started it (and so shuts it down)."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(address=config.ray_address, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING, configure_logging=False)
    return True


def _raise(result: dict[str, Any]) -> None:
    if "error" in result:
        error = ShardFailed(f"judge calibration: {result['error']}")
        error.exit_code, error.label = result["exit_code"], result["label"]
        raise error


def run_sharded(config: GenerateConfig, store: RunStore, seeds: SeedTable, plans: PlanTable,
                make_clients: Callable[[GenerateConfig], tuple[LLM, LLM]], library_max: int, *,
                progress: ProgressReporter | None = None, command: str | None = None) -> Any:
    """Run (or resume) a generation run as shards on Ray, then merge them (see the module's doc)."""
    import ray

    from rolenrules.generate.pipeline import RunResult

    started = _start_ray(config)
    try:
        identity = _identity(store)
        resources = {"num_cpus": config.shard_cpus, "num_gpus": config.shard_gpus}
        results: list[dict[str, Any]] = []
        stored = store.get_meta("judged_rules")
        calibration_failed = 0
        if stored is None and config.judged_rules == "off":  # nothing to measure: decided here
            stored = asdict(decide_before_calibration("off", ""))
            store.set_meta("judged_rules", stored)
        # As a local run: calibrate until decided, and while judged rules are on, until every check is done.
        on = stored is None or stored["on"]
        if stored is None or (on and len(store.calibration()) < config.judge_calibration):
            log.info("judge calibration (one Ray task)")
            task = ray.remote(run_calibration).options(**resources, max_retries=0)
            result = ray.get(task.remote(config, make_clients, library_max))
            _raise(result)
            results.append(result)
            calibration_failed = result["calibration_failed"]
            stored = result["decision"]
        spans = shard_spans(len(plans), config.shards)
        teacher_usage, judge_usage = Usage(), Usage()
        stats: list[CallStats] = []
        provenance: dict[str, Any] | None = None
        shard_phase = time.perf_counter()
        if stored is not None:
            outcomes = _run_shards(config, spans, identity, stored, make_clients, library_max, resources, progress)
            for result in outcomes:
                if not result.get("skipped"):
                    t, j = result["usage"]
                    teacher_usage, judge_usage = teacher_usage.add(Usage(**t)), judge_usage.add(Usage(**j))
                    stats += [CallStats(**s) for s in result["stats"]]
                provenance = provenance or result.get("provenance")
        else:
            log.warning("judge calibration: %d check(s) failed on server errors; whether to use teacher-written "
                        "rules is decided once they are done: run the same command again", calibration_failed)
        for result in results:
            stats += [CallStats(**s) for s in result.get("stats", [])]
            provenance = provenance or result.get("provenance")
            t, j = result["usage"]
            teacher_usage, judge_usage = teacher_usage.add(Usage(**t)), judge_usage.add(Usage(**j))
        timing = _timing(stats, time.perf_counter() - shard_phase)
        decision = JudgedRules(**stored) if stored else None
        written, complete = _merge(config, store, seeds, plans, decision, calibration_failed, provenance,
                                   command, timing)
        teacher_total, judge_total = store.usage_with_shards(config.run_path / "shards")
        return RunResult(written.kept, written.rejected, written.failed, config.out_path, config.rejects_path,
                         config.card_path, False, teacher_usage, judge_usage, teacher_total.add(judge_total),
                         calibration_failed=calibration_failed, judged_rules=decision,
                         pairs=written.pairs if config.pairs_path is not None else 0, pairs_path=config.pairs_path,
                         transcripts=config.transcripts_path, timing=timing)
    finally:
        if started:
            ray.shutdown()


def _identity(store: RunStore) -> dict[str, Any]:
    value = store.get_meta("identity")
    assert isinstance(value, dict)
    return value


def _run_shards(config: GenerateConfig, spans: list[tuple[int, int]], identity: dict[str, Any],
                decision: dict[str, Any], make_clients: Callable[..., Any], library_max: int,
                resources: dict[str, float], progress: ProgressReporter | None) -> list[dict[str, Any]]:
    """Submit every shard not yet complete, wait for all, and report their progress."""
    import ray

    tracker = StageTracker(progress or LogProgress(), Usage)
    pending: dict[Any, int] = {}
    results: dict[int, dict[str, Any]] = {}
    task = ray.remote(run_shard).options(**resources, max_retries=0)
    for i, span in enumerate(spans):
        if _shard_complete(config, i):
            results[i] = {"complete": True, "skipped": True, "provenance": _shard_meta(config, i, "provenance")}
            continue
        pending[task.remote(config, i, span, identity, decision, make_clients, library_max)] = i
    log.info("%d shard(s) to run, %d already complete", len(pending), len(results))
    tracker.start("shards", len(spans), len(results))
    errors: list[tuple[int, dict[str, Any]]] = []
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
        tracker.tick()
        for ref in ready:
            i = pending.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as error:  # a bug or a crashed worker: one line, the shard's work so far is kept
                result = {"error": f"{type(error).__name__}: {str(error).strip().splitlines()[-1][:300]}",
                          "exit_code": int(ExitCode.ERROR), "label": "error"}
            results[i] = result
            if "error" in result:
                errors.append((i, result))
                tracker.advance("failed")
            else:
                tracker.advance("kept" if result["complete"] else "failed")
    tracker.end()
    if errors:
        i, result = errors[0]
        more = f" (and {len(errors) - 1} more shard(s))" if len(errors) > 1 else ""
        error = ShardFailed(f"shard {i + 1} of {len(spans)}: {result['error']}{more}; run the same command again "
                            "to resume it (finished shards are kept)")
        error.exit_code, error.label = result["exit_code"], result["label"]
        raise error
    return [results[i] for i in range(len(spans))]


def _shard_meta(config: GenerateConfig, index: int, key: str) -> Any:
    path = shard_folder(config, index) / "run.sqlite"
    if not path.exists():
        return None
    store = RunStore(path)
    try:
        return store.get_meta(key) if key != "complete" else store.complete
    finally:
        store.close()


def _shard_complete(config: GenerateConfig, index: int) -> bool:
    return bool(_shard_meta(config, index, "complete"))


def _timing(stats: list[CallStats], wall: float) -> str | None:
    """The shards' clients together: counts and time at the servers add up; wall time is the shard phase's."""
    if not stats:
        return None
    total = CallStats(**{f.name: sum(getattr(s, f.name) for s in stats) for f in dataclasses.fields(CallStats)})
    return dataclasses.replace(total, wall_s=wall).summary() + f" (over {len(stats)} client(s) in the shards)"


def _merge(config: GenerateConfig, store: RunStore, seeds: SeedTable, plans: PlanTable,
           decision: JudgedRules | None, calibration_failed: int, provenance: dict[str, Any] | None,
           command: str | None, timing: str | None) -> tuple[Any, bool]:
    """One output from every shard's store; near-duplicates dropped across shards, in index order."""
    from rolenrules.generate.pipeline import near_duplicate_record

    paths = [shard_folder(config, i) / "run.sqlite" for i in range(config.shards)] if decision else []
    shards = [RunStore(p) for p in paths if p.exists()]
    try:
        parts = [OutputPart(s) for s in shards]
        duplicate_of = near_duplicates(((idx, sp.render()) for idx, sp in written_prompts(parts)),
                                       config.dedup_threshold)
        prompts: dict[int, SystemPrompt] = {}

        def rejection(idx: int, position: int) -> dict[str, Any]:
            if idx not in prompts:
                prompts.clear()  # conversations come prompt by prompt
                prompt = next(s.prompt(idx) for s in shards if s.prompt(idx) is not None)
                assert isinstance(prompt, SystemPrompt)
                prompts[idx] = prompt
            record = near_duplicate_record(config, plans.plan(idx, seeds), position, prompts[idx], duplicate_of[idx])
            return record.model_dump(mode="json")

        calibration = summarise_calibration(store.calibration(), config.judge_calibration) \
            if store.calibration() else None
        usage = store.usage_with_shards(config.run_path / "shards")
        written = write_outputs(
            config, parts, top=store, calibration=calibration, calibration_failed=calibration_failed,
            judged_rules=decision, provenance=Provenance(**provenance) if provenance else _no_provenance(config),
            usage=usage, command=command, timing=timing, dedup=Dedup(duplicate_of, rejection))
        complete = decision is not None and written.failed == 0 and calibration_failed == 0 and \
            len(shards) == config.shards and sum(s.counts().get("kept", 0) + s.counts().get("rejected", 0)
                                                 + s.counts().get("failed", 0) for s in shards) == plans.conversations
        store.set_meta("result", {"kept": written.kept, "rejected": written.rejected})
        store.set_complete(complete)
        if written.failed:
            log.warning("%d conversation(s) failed on server errors and were left out; run the same command again "
                        "to retry them", written.failed)
        return written, complete
    finally:
        for shard in shards:
            shard.close()


def _no_provenance(config: GenerateConfig) -> Provenance:
    return Provenance(teacher=config.teacher or "?", judge=config.judge or config.teacher or "?", templates={})
