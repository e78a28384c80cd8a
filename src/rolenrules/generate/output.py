"""A run's files, streamed from its run store(s): the kept records (`--out`), the rejects, the judge
transcripts, the preference pairs and the dataset card.

One pass over the stored conversations, in output order (prompt, then position), writes every file
and tallies the card, so memory does not grow with the run. A sharded run (`executors`) has one
store per shard, each holding a contiguous span of the plan: their parts are read in order, and
near-duplicate system prompts are dropped here, over every shard's prompts in index order — exactly
as a local run drops them before answering, so both make the same records.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from rolenrules.generate.calibrate import CalibrationSummary, JudgedRules
from rolenrules.generate.card import CardInputs, CardTally, render_card
from rolenrules.generate.config import GenerateConfig
from rolenrules.generate.outcomes import PromptOutcome, Status
from rolenrules.generate.store import RunStore
from rolenrules.io import atomic_path, write_records
from rolenrules.records import SystemPrompt, Usage


@dataclass(frozen=True)
class OutputPart:
    """A run store whose conversations go to the output (the run's own, or one shard's)."""

    store: RunStore


@dataclass(frozen=True)
class Provenance:
    """What made the records: the models and the prompt templates (for the card)."""

    teacher: str
    judge: str
    templates: dict[str, str]
    #: The card's line on where the roles came from (`card.roles_line`).
    roles: str | None = None


@dataclass
class Written:
    kept: int = 0
    rejected: int = 0
    failed: int = 0
    pairs: int = 0


@dataclass
class Dedup:
    """Near-duplicate system prompts found at the merge: `duplicate_of` maps a prompt index to the one
    it repeats; `rejection(prompt_idx, position)` makes the record a local run would have written for
    a conversation under such a prompt."""

    duplicate_of: dict[int, int]
    rejection: Callable[[int, int], dict[str, Any]]
    #: Conversation ids dropped here (their transcripts are left out too).
    dropped: set[str] = field(default_factory=set)


def write_outputs(config: GenerateConfig, parts: Sequence[OutputPart], *, top: RunStore,
                  calibration: CalibrationSummary | None, calibration_failed: int, judged_rules: JudgedRules | None,
                  provenance: Provenance, usage: tuple[Usage, Usage], command: str | None, timing: str | None,
                  dedup: Dedup | None = None) -> Written:
    """Write every output file of the run atomically; returns what was written. `top` is the store that
    holds the judge calibration (the run's own store, or a sharded run's top store)."""
    tally = CardTally()
    for part in parts:
        for _, prompt in part.store.iter_prompts():
            tally.add_prompt(prompt)
    written = Written()
    with contextlib.ExitStack() as files:
        rejects = files.enter_context(_jsonl(config.rejects_path))
        pairs = files.enter_context(_jsonl(config.pairs_path)) if config.pairs_path is not None else None
        kept_rows = _conversations(parts, tally, written, rejects, pairs, dedup)
        write_records(kept_rows, config.out)
        with atomic_path(config.transcripts_path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
            stores = [top] + [p.store for p in parts if p.store is not top]
            for store in stores:
                for unit, payload in store.iter_transcripts():
                    if dedup is None or unit not in dedup.dropped:
                        handle.write(_ensure_unicode(payload) + "\n")
    card = render_card(CardInputs(
        config=config, tally=tally, calibration=calibration, calibration_failed=calibration_failed,
        judged_rules=judged_rules, teacher=provenance.teacher, judge=provenance.judge, teacher_usage=usage[0],
        judge_usage=usage[1], templates=provenance.templates, command=command,
        pairs_written=config.pairs_path is not None, timing=timing, roles=provenance.roles))
    with atomic_path(config.card_path) as tmp:
        tmp.write_text(card, encoding="utf-8")
    return written


def _conversations(parts: Sequence[OutputPart], tally: CardTally, written: Written, rejects: TextIO,
                   pairs: TextIO | None, dedup: Dedup | None) -> Iterator[dict[str, Any]]:
    """The kept records, in output order; rejects and pairs are written and the card tallied on the way."""
    for part in parts:
        prompt_idx, prompt = -1, None
        for cid, idx, position, status, payload, tries, pair_rows in part.store.iter_conversations():
            if idx != prompt_idx:
                prompt_idx, prompt = idx, part.store.prompt(idx)
            if dedup is not None and idx in dedup.duplicate_of:
                dedup.dropped.add(cid)
                record = dedup.rejection(idx, position)
                status, tries, pair_rows = Status.REJECTED.value, None, None
            else:
                record = json.loads(payload)
            finished = status != Status.FAILED.value
            tried = json.loads(tries) if tries and finished else None
            made = json.loads(pair_rows) if pair_rows and finished else None
            tally.add_conversation(record, prompt, tried, made)
            for pair in made or ():
                written.pairs += 1
                if pairs is not None:
                    pairs.write(json.dumps(pair, ensure_ascii=False) + "\n")
            if status == Status.KEPT.value:
                written.kept += 1
                yield record
                continue
            if status == Status.FAILED.value:
                written.failed += 1
            else:
                written.rejected += 1
            rejects.write(json.dumps(record, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def _jsonl(path: Path) -> Iterator[TextIO]:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        yield handle


def _ensure_unicode(payload: str) -> str:
    # Transcripts are stored with json.dumps' ASCII escapes; the file has always had them as UTF-8 text.
    return json.dumps(json.loads(payload), ensure_ascii=False) if "\\u" in payload else payload


def written_prompts(parts: Sequence[OutputPart]) -> Iterator[tuple[int, SystemPrompt]]:
    """Every written system prompt of these parts, in index order."""
    for part in parts:
        for idx, prompt in part.store.iter_prompts():
            if isinstance(prompt, SystemPrompt):
                yield idx, prompt


def all_prompts(parts: Sequence[OutputPart]) -> dict[int, PromptOutcome]:
    return {idx: prompt for part in parts for idx, prompt in part.store.iter_prompts()}
