"""Training data: read each source, drop held-out system prompts, sample by weight, mix.

A weight is a sampling proportion of that source's rows: 0.5 keeps a random half, 1.0 all of
them, 2.5 every row twice plus a random half. That is how RNR data is mixed with the original
instruction data (the paper trains on both) without rewriting either file.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rolenrules.errors import DataError
from rolenrules.heldout import is_excluded
from rolenrules.io import ReadStats, read_examples
from rolenrules.records import Example
from rolenrules.train.config import DataSource


@dataclass
class SourceSummary:
    """What happened to one source: rows read, dropped (and why), and rows in the mix."""

    path: str
    weight: float
    read: int = 0
    excluded: int = 0
    no_reply: int = 0
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


def mix_examples(sources: Iterable[DataSource], *, exclude: set[str] | None = None,
                 seed: int = 42) -> tuple[list[Example], MixSummary]:
    """Read, filter and sample each source, then shuffle them together (same seed, same mix)."""
    rng = random.Random(seed)
    exclude = exclude or set()
    summary = MixSummary()
    mixed: list[Example] = []
    for source in sources:
        stats = ReadStats()
        item = SourceSummary(path=source.path, weight=source.weight)
        kept: list[Example] = []
        for example in read_examples(source.path, stats=stats):
            if exclude and is_excluded(example, exclude):
                item.excluded += 1
                continue
            if not any(m.role == "assistant" for m in example.messages):
                # Nothing to learn from: assistant-only loss would be empty.
                item.no_reply += 1
                continue
            kept.append(example)
        item.read, item.format = stats.read, stats.format
        picked = _sample(kept, source.weight, rng)
        item.used = len(picked)
        mixed += picked
        summary.sources.append(item)
    rng.shuffle(mixed)
    return mixed, summary


def to_dataset(examples: Sequence[Example]) -> Any:
    """A `datasets.Dataset` with one `messages` column, the conversational format TRL trains on."""
    from datasets import Dataset

    return Dataset.from_list([{"messages": [m.model_dump() for m in e.messages]} for e in examples])


def build_dataset(sources: Sequence[DataSource], *, exclude: set[str] | None = None,
                  seed: int = 42, what: str = "training") -> tuple[Any, MixSummary]:
    examples, summary = mix_examples(sources, exclude=exclude, seed=seed)
    if not examples:
        detail = ", ".join(f"{s.path}: {s.read} read, {s.excluded} held out, {s.no_reply} without a reply"
                           for s in summary.sources)
        raise DataError(f"no {what} examples left ({detail})")
    return to_dataset(examples), summary
