"""Training data: read each source, drop held-out system prompts, sample by weight, mix.

A weight is a sampling proportion of that source's rows: 0.5 keeps a random half, 1.0 all of
them, 2.5 every row twice plus a random half. That is how RNR data is mixed with the original
instruction data (the paper trains on both) without rewriting either file. The same mixing
serves SFT conversations, DPO pairs (`train.pairs`) and GRPO prompts.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rolenrules.errors import DataError
from rolenrules.heldout import held_out_ids
from rolenrules.io import ReadStats, read_examples
from rolenrules.records import Example, Message, Rule
from rolenrules.train.config import DataSource

T = TypeVar("T")


@dataclass
class SourceSummary:
    """What happened to one source: rows read, held out, dropped (count per reason), and rows in the mix."""

    path: str
    weight: float
    read: int = 0
    excluded: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    used: int = 0
    format: str | None = None


@dataclass
class MixSummary:
    sources: list[SourceSummary] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(s.used for s in self.sources)

    @property
    def excluded(self) -> int:
        return sum(s.excluded for s in self.sources)

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "excluded": self.excluded, "sources": [asdict(s) for s in self.sources]}


def _sample(rows: Sequence[Example], weight: float, rng: random.Random) -> list[Example]:
    whole, fraction = divmod(weight, 1.0)
    picked = list(rows) * int(whole)
    extra = round(fraction * len(rows))
    if extra:
        picked += rng.sample(list(rows), extra)
    return picked


def mix(sources: Iterable[DataSource], read: Callable[[DataSource, ReadStats], Iterable[T]], *,
        ids: Callable[[T], set[str]], drop: Callable[[T], str | None] = lambda row: None,
        exclude: set[str] | None = None, seed: int = 42) -> tuple[list[T], MixSummary]:
    """Read each source, drop held-out rows (`ids` meets `exclude`) and unusable ones (`drop` gives the
    reason), sample by weight, then shuffle them together (same seed, same mix)."""
    rng = random.Random(seed)
    exclude = exclude or set()
    summary = MixSummary()
    mixed: list[T] = []
    for source in sources:
        stats = ReadStats()
        item = SourceSummary(path=source.path, weight=source.weight)
        dropped: Counter[str] = Counter()
        kept: list[T] = []
        for row in read(source, stats):
            if exclude and ids(row) & exclude:
                item.excluded += 1
                continue
            reason = drop(row)
            if reason:
                dropped[reason] += 1
                continue
            kept.append(row)
        item.read, item.format, item.dropped = stats.read, stats.format, dict(dropped)
        picked = _sample(kept, source.weight, rng)
        item.used = len(picked)
        mixed += picked
        summary.sources.append(item)
    rng.shuffle(mixed)
    return mixed, summary


def _read_examples(source: DataSource, stats: ReadStats) -> Iterable[Example]:
    return read_examples(source.path, stats=stats)


def _no_reply(example: Example) -> str | None:
    # Nothing to learn from: assistant-only loss would be empty.
    return None if any(m.role == "assistant" for m in example.messages) else "no assistant reply"


def mix_examples(sources: Iterable[DataSource], *, exclude: set[str] | None = None,
                 seed: int = 42) -> tuple[list[Example], MixSummary]:
    """SFT conversations: every source read, held-out system prompts dropped, sampled by weight, shuffled."""
    return mix(sources, _read_examples, ids=held_out_ids, drop=_no_reply, exclude=exclude, seed=seed)


def no_rows_left(summary: MixSummary, what: str) -> DataError:
    detail = ", ".join(f"{s.path}: {s.read} read, {s.excluded} held out"
                       + "".join(f", {n} {reason}" for reason, n in s.dropped.items()) for s in summary.sources)
    return DataError(f"no {what} left ({detail})")


def to_dataset(examples: Sequence[Example]) -> Any:
    """A `datasets.Dataset` with one `messages` column, the conversational format TRL trains on."""
    from datasets import Dataset

    return Dataset.from_list([{"messages": [m.model_dump() for m in e.messages]} for e in examples])


def build_dataset(sources: Sequence[DataSource], *, exclude: set[str] | None = None,
                  seed: int = 42, what: str = "training") -> tuple[Any, MixSummary]:
    examples, summary = mix_examples(sources, exclude=exclude, seed=seed)
    if not examples:
        raise no_rows_left(summary, f"{what} examples")
    return to_dataset(examples), summary


# -- GRPO prompts ----------------------------------------------------------------------------------


def verifiable_rules(example: Example) -> list[Rule]:
    """The rules a GRPO reward checks: the verifiable ones of the system prompt, else of `metadata.rules`
    (a benchmark whose constraints are not in a structured system prompt)."""
    from pydantic import ValidationError

    from rolenrules.evaluate.bench import bench_rules

    try:
        rules = bench_rules(example)
    except ValidationError as error:
        source = example.metadata.get("source") or {}
        raise DataError(f"invalid rule ({str(error).splitlines()[0][:200]})", path=source.get("path"),
                        line=source.get("line"), field="metadata.rules") from None
    return [r for r in rules if r.kind == "verifiable"]


def _no_prompt(example: Example) -> str | None:
    if not any(m.role == "user" for m in example.messages):
        return "no user turn"
    return None if verifiable_rules(example) else "no verifiable rule"


def prompt_row(example: Example) -> dict[str, Any]:
    """One GRPO row: the conversation up to its last user turn (system message first) and its verifiable
    rules as JSON text (rule parameters differ per type, which an Arrow column of structs would mangle)."""
    from rolenrules.evaluate.bench import final_user_prefix

    messages = list(example.messages)
    if example.system_prompt is not None and (not messages or messages[0].role != "system"):
        messages.insert(0, Message(role="system", content=example.system_prompt.render()))
    return {"prompt": [m.model_dump() for m in final_user_prefix(messages)],
            "rules": json.dumps([r.model_dump(mode="json") for r in verifiable_rules(example)])}


def build_prompt_dataset(sources: Sequence[DataSource], *, exclude: set[str] | None = None,
                         seed: int = 42, what: str = "training") -> tuple[Any, MixSummary]:
    """GRPO prompts from RNR data or a benchmark file: records with at least one verifiable rule."""
    from datasets import Dataset

    examples, summary = mix(sources, _read_examples, ids=held_out_ids, drop=_no_prompt, exclude=exclude, seed=seed)
    if not examples:
        raise no_rows_left(summary, f"{what} prompts with a verifiable rule")
    return Dataset.from_list([prompt_row(e) for e in examples]), summary
