"""`generate`: the RNR run from seed instructions to a verified dataset, crash-safe and resumable.

Stages (each unit of work is committed to the run store as it finishes):
  1. plan       seeded shuffle of the seeds into groups of K, one group per system prompt
  2. prompts    the teacher writes a role + rules for each group; library rules are mixed in
  3. dedup      near-duplicate system prompts are dropped, in index order (deterministic)
  4. answers    each seed conversation is answered under its system prompt, verified, and
                regenerated with feedback or rejected with its reason
  5. output     kept records, rejects and the dataset card are written atomically
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rolenrules.errors import ConfigError
from rolenrules.generate.card import render_card
from rolenrules.generate.config import GenerateConfig
from rolenrules.generate.dedup import near_duplicates
from rolenrules.generate.progress import StageProgress
from rolenrules.generate.stages import (StageFailure, Teacher, answer_conversation,
                                        write_conflict_turn, write_system_prompt)
from rolenrules.generate.store import RunStore
from rolenrules.io import atomic_path, read_examples, write_examples, write_jsonl
from rolenrules.judge import Judge
from rolenrules.llm import LLM, build_llm
from rolenrules.prompts import load_template
from rolenrules.records import Example, SystemPrompt, Usage, stable_id
from rolenrules.rules import get_rule_type

log = logging.getLogger("rolenrules.generate")


@dataclass(frozen=True)
class Plan:
    idx: int
    seeds: list[Example]


@dataclass
class RunResult:
    kept: int
    rejected: int
    out: Path
    rejects: Path
    card: Path
    already_complete: bool
    teacher_usage: Usage
    judge_usage: Usage


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


def _validate(config: GenerateConfig) -> None:
    """Everything that can be wrong with the options, found before any model is loaded or called."""
    for name in ("system_prompt", "feedback", "conflict_turn", "judge", "role_adherence"):
        load_template(name, config.templates)
    for type_id in config.rule_types or []:
        get_rule_type(type_id)


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


def generate(config: GenerateConfig, make_teacher: Callable[[GenerateConfig], tuple[LLM, LLM]]) -> RunResult:
    """Run (or resume) generation. `make_teacher(config)` returns the (teacher, judge) clients
    (`default_clients` builds them from the config); it is only called when there is work to do, so a
    finished run loads no model and sends no request."""
    _validate(config)
    seeds = load_seeds(config)
    plans = make_plans(config, seeds)
    store = RunStore(config.run_path / "run.sqlite")
    try:
        resumed = store.claim(config.fingerprint())
        if store.get_meta("complete") == "1" and config.out_path.exists() and config.rejects_path.exists():
            kept, rejected = len(store.conversations("kept")), len(store.conversations("rejected", "failed"))
            log.info("run already complete: %d kept, %d rejected; nothing to do", kept, rejected)
            return RunResult(kept, rejected, config.out_path, config.rejects_path, config.card_path, True, Usage(), Usage())
        if resumed:
            log.info("resuming run in %s", config.run_path)
        teacher_llm, judge_llm = make_teacher(config)
        judge = Judge(judge_llm, templates_dir=config.templates)
        teacher = Teacher.create(config, teacher_llm, judge)
        try:
            asyncio.run(_run(teacher, store, plans))
        finally:
            asyncio.run(_close(teacher_llm, judge_llm))
        return _write_outputs(config, store, teacher)
    finally:
        store.close()


async def _close(*llms: LLM) -> None:
    closed: set[int] = set()
    for llm in llms:
        if id(llm.backend) not in closed:  # a judge sibling shares the teacher's backend
            closed.add(id(llm.backend))
            await llm.aclose()


def _usage_total(teacher: Teacher) -> Usage:
    return teacher.llm.usage.add(teacher.judge.llm.usage)


async def _bounded(limit: int, jobs: list[Callable[[], Awaitable[None]]]) -> None:
    semaphore = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        async with semaphore:
            await job()

    await asyncio.gather(*(one(j) for j in jobs))


async def _run(teacher: Teacher, store: RunStore, plans: list[Plan]) -> None:
    config = teacher.config
    limit = max(2, config.concurrency * 2)
    with StageProgress(config.quiet, lambda: _usage_total(teacher)) as progress:
        # -- system prompts --------------------------------------------------------------------
        todo = [p for p in plans if _prompt_pending(store.prompt(p.idx))]
        progress.stage("system prompts", len(plans), len(plans) - len(todo))

        def prompt_job(plan: Plan) -> Callable[[], Awaitable[None]]:
            async def job() -> None:
                rng = random.Random(f"prompt-{config.seed}-{plan.idx}")
                instructions = [s.user_turns[0] for s in plan.seeds]
                try:
                    sp, usage = await write_system_prompt(teacher, instructions, rng)
                except StageFailure as failure:
                    store.put_prompt(plan.idx, "rejected", {"stage": failure.stage, "reason": failure.reason,
                                                            "retryable": failure.retryable})
                    progress.advance(failed=True)
                    return
                store.put_prompt(plan.idx, "ok", {"system_prompt": sp.model_dump(mode="json"), "usage": usage.model_dump()})
                progress.advance()
            return job

        await _bounded(limit, [prompt_job(p) for p in todo])

        # -- dedup (in index order, so the same prompts survive on every run) ---------------------
        stored = store.prompts()
        prompts = {idx: payload for idx, status, payload in stored if status == "ok"}
        failed_prompts = {idx: payload for idx, status, payload in stored if status != "ok"}
        dropped = near_duplicates(
            ((str(idx), SystemPrompt.model_validate(prompts[idx]["system_prompt"]).render()) for idx in sorted(prompts)),
            config.dedup_threshold)

        # -- conversations -----------------------------------------------------------------------
        done = store.done_ids()
        units = [(plan, pos) for plan in plans for pos in range(len(plan.seeds))]
        pending = [(p, pos) for p, pos in units if conversation_id(config, p, pos) not in done]
        progress.stage("conversations", len(units), len(units) - len(pending))
        partial = config.run_path / "partial.jsonl"

        def conversation_job(plan: Plan, position: int) -> Callable[[], Awaitable[None]]:
            async def job() -> None:
                cid = conversation_id(config, plan, position)
                seed = plan.seeds[position]
                base = {"id": cid, "seed_id": seed.id, "prompt_index": plan.idx, "source": seed.metadata.get("source")}
                status, payload = await _one_conversation(teacher, plan, seed, cid, base, prompts, failed_prompts,
                                                          dropped)
                if status != "kept":
                    payload["status"] = status
                store.put_conversation(cid, plan.idx, position, status, payload)
                if status == "kept":
                    with open(partial, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps(payload, ensure_ascii=False) + "\n")
                progress.advance(failed=status != "kept")
            return job

        await _bounded(limit, [conversation_job(p, pos) for p, pos in pending])


def _prompt_pending(record: tuple[str, dict[str, Any]] | None) -> bool:
    return record is None or (record[0] != "ok" and bool(record[1].get("retryable")))


def _final(failure: StageFailure) -> str:
    return "failed" if failure.retryable else "rejected"


async def _one_conversation(teacher: Teacher, plan: Plan, seed: Example, cid: str, base: dict[str, Any],
                            prompts: dict[int, dict[str, Any]], failed_prompts: dict[int, dict[str, Any]],
                            dropped: dict[str, str]) -> tuple[str, dict[str, Any]]:
    config = teacher.config
    user_turns = seed.user_turns[: config.max_turns]
    if plan.idx not in prompts:
        failure = failed_prompts.get(plan.idx, {})
        return "failed" if failure.get("retryable") else "rejected", {
            **base, "stage": "system_prompt", "user_turns": user_turns,
            "reason": f"its system prompt could not be written: {failure.get('reason', 'unknown')}"}
    sp = SystemPrompt.model_validate(prompts[plan.idx]["system_prompt"])
    if str(plan.idx) in dropped:
        return "rejected", {**base, "stage": "dedup", "system_prompt_id": sp.id, "user_turns": user_turns,
                            "reason": f"system prompt is a near-duplicate of prompt {dropped[str(plan.idx)]}"}
    usage = Usage()
    conflict = None
    try:
        rng = random.Random(f"conflict-{config.seed}-{cid}")
        if config.conflict_rate and rng.random() < config.conflict_rate:
            targets = [r for r in sp.rules if r.kind == "verifiable"] or sp.rules
            rule = rng.choice(targets)
            message, conflict_usage = await write_conflict_turn(teacher, rule, user_turns[-1])
            usage = usage.add(conflict_usage)
            user_turns = [*user_turns, message]
            conflict = {"rule_id": rule.id, "message": message, "turn": len(user_turns) - 1}
        answered = await answer_conversation(teacher, sp, user_turns)
    except StageFailure as failure:
        return _final(failure), {**base, "stage": failure.stage, "reason": failure.reason, "system_prompt_id": sp.id,
                                 "user_turns": user_turns, "details": failure.details}
    usage = usage.add(answered.usage)
    example = Example(id=cid, messages=answered.messages, system_prompt=sp, verdicts=answered.verdicts, metadata={
        "seed_id": seed.id, "source": seed.metadata.get("source"), "prompt_index": plan.idx,
        "teacher": teacher.llm.identity, "judge": teacher.judge.identity, "templates": teacher.template_versions,
        "attempts": answered.attempts, "conflict": conflict,
        "usage": {"requests": usage.requests, "prompt_tokens": usage.prompt_tokens,
                  "completion_tokens": usage.completion_tokens},
    })
    return "kept", example.model_dump(mode="json")


def _write_outputs(config: GenerateConfig, store: RunStore, teacher: Teacher) -> RunResult:
    kept = [Example.model_validate(p) for p in store.conversations("kept")]
    rejects = store.conversations("rejected", "failed")
    prompts = store.prompts()
    ok = sum(1 for _, status, _ in prompts if status == "ok")
    dropped_prompts = Counter("teacher failed" for _, status, _ in prompts if status != "ok")
    dedup_dropped = {r["prompt_index"] for r in rejects if r.get("stage") == "dedup"}
    if dedup_dropped:
        dropped_prompts["near-duplicate"] = len(dedup_dropped)
    judge_usage = teacher.judge.llm.usage
    write_examples(kept, config.out_path)
    write_jsonl(rejects, config.rejects_path)
    card = render_card(config, kept, rejects, prompts_ok=ok - len(dedup_dropped), prompts_dropped=dropped_prompts,
                       teacher=teacher.llm.identity, judge=teacher.judge.identity, teacher_usage=teacher.llm.usage,
                       judge_usage=judge_usage, templates=teacher.template_versions)
    with atomic_path(config.card_path) as tmp:
        tmp.write_text(card, encoding="utf-8")
    retry = sum(1 for r in rejects if r.get("status") == "failed")
    store.set_meta("complete", "0" if retry else "1")
    if retry:
        log.warning("%d conversation(s) failed on server errors; run the same command again to retry them", retry)
    return RunResult(len(kept), len(rejects), config.out_path, config.rejects_path, config.card_path, False,
                     teacher.llm.usage, judge_usage)
