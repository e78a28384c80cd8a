"""Running a model under test on a benchmark, scoring it, and writing the run folder.

    DIR/run.json        what was run: benchmark fingerprint, model, judge, sampling
    DIR/results.jsonl   one `EvalResult` per example, appended as each completes (resume point)
    DIR/summary.json    every metric with bootstrap intervals (`metrics.summarise`)
    DIR/usage.json      token usage and time of each invocation that built the folder
    DIR/transcripts.jsonl  every judge call's prompt and raw reply, by example, to audit its verdicts
    DIR/cache.sqlite    the request cache of the model and the judge

Re-running the same command skips examples already in `results.jsonl`; the cache answers any
request already made. A model or a judge that cannot be reached leaves its examples out (a
server failure is not a verdict: they are redone on the next run) and makes the run end
incomplete (`EvalIncomplete`) after the summary of what did finish is written. One process at a
time works in a run folder.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rolenrules import __version__
from rolenrules._lock import FolderLock
from rolenrules.errors import ConfigError, DataError, Incomplete
from rolenrules.evaluate import metrics
from rolenrules.evaluate.score_example import check_types, make_result, needs_judge, score_example
from rolenrules.evaluate.bench import bench_rules, load_bench
from rolenrules.evaluate.results import EvalResult, read_results
from rolenrules.io import atomic_path
from rolenrules.judge import Judge, transcript_tag
from rolenrules.llm import LLM, InvalidReplyError, LLMError, Sampling
from rolenrules.records import Example, Usage

RESULTS = "results.jsonl"
SUMMARY = "summary.json"
RUN = "run.json"
USAGE = "usage.json"
CACHE = "cache.sqlite"
TRANSCRIPTS = "transcripts.jsonl"

Progress = Callable[[int, int], None]


class EvalIncomplete(Incomplete):
    """Some examples could not be answered or judged (a server unreachable); re-run the command to resume."""


@dataclass(frozen=True)
class EvalConfig:
    """How a run generates and scores. Greedy decoding by default: evaluation should not depend
    on sampling luck (set a temperature and seed to study that)."""

    sampling: Sampling = field(default_factory=lambda: Sampling(temperature=0.0, max_tokens=1024, seed=0))
    concurrency: int = 8
    role_adherence: bool = True
    calibrate_judge: bool = False
    resamples: int = metrics.DEFAULT_RESAMPLES
    seed: int = 0
    confidence: float = 0.95
    rescore: bool = False


def bench_fingerprint(examples: Sequence[Example]) -> str:
    """A hash of what the model is asked and what is scored, to refuse resuming onto another bench."""
    digest = hashlib.sha256()
    for e in examples:
        payload = [e.id, [m.model_dump() for m in e.messages], [r.model_dump(mode="json") for r in bench_rules(e)]]
        digest.update(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()[:16]


def _run_info(examples: Sequence[Example], bench_name: str, model: LLM, judge: Judge | None,
              config: EvalConfig) -> dict[str, Any]:
    return {
        "bench": bench_name,
        "bench_fingerprint": bench_fingerprint(examples),
        "n_bench": len(examples),
        "model": model.identity,
        "judge": judge.identity if judge else None,
        "judge_votes": judge.votes if judge else None,
        "judge_prompt": judge.template.tag if judge else None,
        "sampling": config.sampling.model_dump(),
        "role_adherence": config.role_adherence,
        "calibrate_judge": config.calibrate_judge,
        "rnr_version": __version__,
    }


def _same_example(result: EvalResult, example: Example) -> bool:
    return result.messages == example.messages and [r.rule_id for r in result.rules] == [r.id for r in bench_rules(example)]


def _check_resume(out_dir: Path, info: dict[str, Any], examples: Sequence[Example], rescore: bool) -> None:
    """Refuse to mix runs in one folder: another model, sampling or judge, or stored results whose
    examples differ from this benchmark's. A benchmark that only grew or shrank (another --limit)
    resumes."""
    path = out_dir / RUN
    if not path.exists():
        return
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return
    keys = ["model", "sampling"] + ([] if rescore else ["judge", "judge_votes", "calibrate_judge", "role_adherence"])
    changed = [k for k in keys if previous.get(k) != info.get(k)]
    if previous.get("bench_fingerprint") != info["bench_fingerprint"]:
        by_id = {e.id: e for e in examples}
        stored = read_results(out_dir / RESULTS)
        if any(r.id in by_id and not _same_example(r, by_id[r.id]) for r in stored):
            changed.append("bench_fingerprint")
    if changed:
        detail = "; ".join(f"{k}: {previous.get(k)!r} -> {info.get(k)!r}" for k in changed)
        raise ConfigError(f"{out_dir} holds another run ({detail}). Use a new --out folder"
                          + ("" if rescore else ", or --rescore to re-judge its stored responses") + ".")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _rewrite_results(path: Path, results: Sequence[EvalResult]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for r in results:
            handle.write(r.model_dump_json() + "\n")


def ifeval_summaries(results: Sequence[EvalResult]) -> dict[str, Any]:
    """The official IFEval summary (prompt/instruction level, strict/loose) per IFEval-style task."""
    by_task: dict[str, list[EvalResult]] = {}
    for r in results:
        if "ifeval" in r.metadata:
            by_task.setdefault(r.task, []).append(r)
    if not by_task:
        return {}
    from rolenrules.rules.ifeval_accuracy import accuracy_summary, score_rows

    out = {}
    for task, rows in sorted(by_task.items()):
        data = [{**r.metadata["ifeval"], "response": r.response} for r in rows]
        out[task] = accuracy_summary(data, score_rows(data))
    return out


def write_summary(out_dir: str | Path, *, resamples: int = metrics.DEFAULT_RESAMPLES, seed: int = 0,
                  confidence: float = 0.95, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """(Re)compute `summary.json` from `results.jsonl` and `run.json`; returns it."""
    out_dir = Path(out_dir)
    results = read_results(out_dir / RESULTS)
    run = json.loads((out_dir / RUN).read_text(encoding="utf-8")) if (out_dir / RUN).exists() else {}
    summary: dict[str, Any] = {"run": run, "complete": len(results) >= run.get("n_bench", len(results))}
    summary.update(extra or {})
    summary["complete"] = summary["complete"] and not summary.get("n_errors")
    summary.update(metrics.summarise(results, resamples=resamples, seed=seed, confidence=confidence))
    summary["ifeval"] = ifeval_summaries(results)
    _write_json(out_dir / SUMMARY, summary)
    return summary


async def _answer(model: LLM, example: Example, sampling: Sampling) -> tuple[str, str | None, str | None]:
    """(response, finish_reason, error). A model that keeps replying with nothing has answered
    with an empty response, which is scored like any other; an unreachable model raises."""
    try:
        result = await model.chat(example.messages, sampling=sampling)
    except InvalidReplyError as error:
        return "", None, str(error)[:300]
    return result.text, result.finish_reason, None


async def _evaluate(examples: Sequence[Example], out_dir: Path, model: LLM, judge: Judge | None,
                    config: EvalConfig, progress: Progress | None,
                    sessions: _Sessions | None = None) -> tuple[int, list[str]]:
    results_path = out_dir / RESULTS
    by_id = {e.id: e for e in examples}
    existing = [r for r in read_results(results_path) if r.id in by_id]
    failures: list[str] = []
    limit = asyncio.Semaphore(config.concurrency)
    judge_name = judge.identity if judge else None

    if config.rescore:
        # Re-judge stored responses (a new judge, more votes, calibration) without new generations.
        async def rescore(old: EvalResult) -> EvalResult:
            async with limit:
                example = by_id[old.id]
                try:
                    with transcript_tag(example=old.id):
                        scored, role, calibration = await score_example(example, old.response, judge=judge,
                                                                role_adherence=config.role_adherence,
                                                                calibrate=config.calibrate_judge)
                except LLMError as failure:  # keeps its old verdicts; counted, so the run is incomplete
                    failures.append(f"{old.id}: judge: {failure}")
                    return old
                return make_result(example, old.response, scored, role, calibration, model=old.model,
                                   judge=judge_name, finish_reason=old.finish_reason, error=old.error)

        existing = list(await asyncio.gather(*(rescore(r) for r in existing)))
    _rewrite_results(results_path, existing)  # also drops a line cut short by a killed run
    done = {r.id for r in existing}
    todo = [e for e in examples if e.id not in done]
    total, finished = len(examples), len(done)
    if progress:
        progress(finished, total)

    async def one(example: Example, handle: Any) -> None:
        nonlocal finished
        async with limit:
            try:
                response, finish_reason, error = await _answer(model, example, config.sampling)
            except LLMError as failure:
                failures.append(f"{example.id}: {failure}")
                return
            try:
                with transcript_tag(example=example.id):
                    scored, role, calibration = await score_example(example, response, judge=judge,
                                                            role_adherence=config.role_adherence,
                                                            calibrate=config.calibrate_judge)
            except LLMError as failure:
                # No verdict: left out of the results (the cached response makes the retry cheap).
                failures.append(f"{example.id}: judge: {failure}")
                return
        result = make_result(example, response, scored, role, calibration, model=model.identity, judge=judge_name,
                             finish_reason=finish_reason, error=error)
        handle.write(result.model_dump_json() + "\n")
        handle.flush()
        finished += 1
        if sessions is not None:
            sessions.update(model, judge)
        if progress:
            progress(finished, total)

    with open(results_path, "a", encoding="utf-8") as handle:
        await asyncio.gather(*(one(e, handle) for e in todo))
    # Completion order depends on timing; benchmark order makes the file the same on every run.
    order = {e.id: i for i, e in enumerate(examples)}
    _rewrite_results(results_path, sorted(read_results(results_path), key=lambda r: order.get(r.id, len(order))))
    return finished, failures


def run_eval(bench: str | Path | Sequence[Example], out_dir: str | Path, *, model: LLM, judge: Judge | None = None,
             config: EvalConfig | None = None, bench_name: str | None = None,
             progress: Progress | None = None) -> Path:
    """Answer every benchmark example with `model`, score it, and write the run folder.

    `bench` is a benchmark file or already-loaded examples (e.g. `tasks.load_task(...)`).
    Returns `out_dir`; its `summary.json` holds the metrics. Closes `model` and `judge.llm`.
    """
    config = config or EvalConfig()
    out_dir = Path(out_dir)
    if isinstance(bench, (str, Path)):
        bench_name = bench_name or str(bench)
        examples = load_bench(bench)
    else:
        examples = list(bench)
        bench_name = bench_name or "examples"
    if not examples:
        raise ConfigError("nothing to evaluate: the benchmark is empty")
    check_types(examples)
    if judge is None and needs_judge(examples, role_adherence=config.role_adherence):
        raise ConfigError("this benchmark has judged rules (or role adherence to judge): pass --judge SPEC "
                          "(an OpenAI-compatible model, --judge-base-url for a local server), or --no-role-adherence "
                          "if only role adherence needs it")
    if config.calibrate_judge and judge is None:
        raise ConfigError("--calibrate-judge needs a judge (--judge SPEC)")
    info = _run_info(examples, bench_name, model, judge, config)
    out_dir.mkdir(parents=True, exist_ok=True)
    with FolderLock(out_dir, what="evaluation folder"):
        _check_resume(out_dir, info, examples, config.rescore)
        if config.rescore and not (out_dir / RESULTS).exists():
            raise ConfigError(f"--rescore: {out_dir} has no {RESULTS} to re-judge")
        _write_json(out_dir / RUN, info)
        sessions = _Sessions(out_dir)
        if judge is not None and judge.transcripts is None:
            if config.rescore:
                (out_dir / TRANSCRIPTS).unlink(missing_ok=True)  # every stored response is judged again
            judge.transcripts = _append_transcript(out_dir / TRANSCRIPTS)

        async def go() -> tuple[int, list[str]]:
            try:
                return await _evaluate(examples, out_dir, model, judge, config, progress, sessions)
            finally:
                closing = {id(model): model}
                if judge is not None:
                    closing[id(judge.llm)] = judge.llm
                for llm in closing.values():
                    await llm.aclose()

        try:
            finished, failures = asyncio.run(go())
        finally:
            sessions.update(model, judge, force=True)
            _tidy_transcripts(out_dir)
        totals = sessions.totals()
        write_summary(out_dir, resamples=config.resamples, seed=config.seed, confidence=config.confidence,
                      extra={"usage": totals["usage"], "seconds": totals["seconds"], "n_errors": len(failures)})
    if failures:
        raise EvalIncomplete(f"{len(failures)} of {len(examples)} examples got no response or no verdict (first: "
                             f"{failures[0]}); results so far are in {out_dir}; re-run the same command to resume")
    return out_dir


def _append_transcript(path: Path) -> Callable[[dict[str, Any]], None]:
    def keep(record: dict[str, Any]) -> None:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return keep


def _tidy_transcripts(out_dir: Path) -> None:
    """Keep the transcripts of examples with a result, the latest per call (a resumed run judges an
    example again when an earlier run was stopped before writing its result)."""
    path = out_dir / TRANSCRIPTS
    if not path.exists():
        return
    done = {r.id for r in read_results(out_dir / RESULTS)}
    latest: dict[str, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by a killed run
        if record.get("example") in done:
            key = json.dumps([record.get(k) for k in ("example", "kind", "vote")] + [
                [r.get("id") for r in record.get("rules", [])]])
            latest.pop(key, None)
            latest[key] = record
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for record in latest.values():
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


class _Sessions:
    """Usage and time of each invocation that worked in a run folder (`usage.json`), written as
    results are, so a killed run still counts what it paid for; the summary reports their sum."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / USAGE
        self.sessions: dict[str, Any] = {}
        try:
            self.sessions = json.loads(self.path.read_text(encoding="utf-8"))["sessions"]
        except (OSError, ValueError, KeyError, TypeError):
            legacy = _legacy_totals(out_dir)  # a folder written before usage.json existed
            if legacy:
                self.sessions = {"earlier": legacy}
        self.id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        self.start = time.perf_counter()
        self.last_write = 0.0

    def update(self, model: LLM, judge: Judge | None, *, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.last_write < 1.0:
            return
        self.last_write = now
        entry: dict[str, Any] = {"usage": {"model": model.usage.model_dump()}, "seconds": round(now - self.start, 2)}
        if judge is not None:
            entry["usage"]["judge"] = judge.usage.model_dump()
        self.sessions[self.id] = entry
        _write_json(self.path, {"sessions": self.sessions})

    def totals(self) -> dict[str, Any]:
        usage: dict[str, Usage] = {}
        seconds = 0.0
        for entry in self.sessions.values():
            seconds += float(entry.get("seconds") or 0.0)
            for who, value in (entry.get("usage") or {}).items():
                usage[who] = usage.get(who, Usage()).add(Usage.model_validate(value))
        return {"usage": {k: v.model_dump() for k, v in usage.items()}, "seconds": round(seconds, 2)}


def _legacy_totals(out_dir: Path) -> dict[str, Any] | None:
    try:
        old = json.loads((out_dir / SUMMARY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(old, dict) or not old.get("usage"):
        return None
    return {"usage": old["usage"], "seconds": float(old.get("seconds") or 0.0)}


def load_summary(out_dir: str | Path) -> dict[str, Any]:
    """A run folder's `summary.json`, checked against its `results.jsonl`: a summary that is not
    JSON, or results fewer or more than the summary counts (a truncated or edited file, a run
    still going), stop with one line rather than report n beside other rows."""
    path = Path(out_dir) / SUMMARY
    if not path.exists():
        raise ConfigError(f"{out_dir} is not an evaluation run folder (no {SUMMARY}); run `rnr eval --out {out_dir}` first")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(f"not a readable summary ({str(error).splitlines()[0][:120]}); re-run `rnr eval` with the "
                        "same options to rebuild it", path=str(path)) from None
    if not isinstance(summary, dict):
        raise DataError("not a summary (expected a JSON object)", path=str(path))
    expected = summary.get("n_examples")
    if isinstance(expected, int):
        found = len(read_results(Path(out_dir) / RESULTS))
        if found != expected:
            raise DataError(f"holds {found} results but {SUMMARY} counts {expected} (truncated, edited, or a run "
                            f"still going?); re-run the same `rnr eval` command to finish and rebuild it",
                            path=str(Path(out_dir) / RESULTS))
    return summary


__all__ = ["EvalConfig", "EvalIncomplete", "bench_fingerprint", "ifeval_summaries", "load_summary", "run_eval",
           "write_summary"]
