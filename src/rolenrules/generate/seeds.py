"""The seeds of a run and its plan, without holding either in memory.

`SeedTable` copies the input's records, normalised, into the run store once (one streaming pass,
so a bad record is named before any model call) and reads them back by index; a resumed run
reads none of the input again. `PlanTable` is the plan — groups of K seed indices, one group per
system prompt — as one flat array of integers: 1M seeds plan in a few MB.
"""

from __future__ import annotations

import itertools
import random
from array import array
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, overload

from rolenrules.errors import ConfigError
from rolenrules.io import read_examples
from rolenrules.records import Example

if TYPE_CHECKING:
    from rolenrules.generate.config import GenerateConfig
    from rolenrules.generate.store import RunStore


@dataclass(frozen=True)
class Plan:
    """One system prompt's group of seeds; `idx` is its place in the whole plan."""

    idx: int
    seeds: list[Example]


class SeedTable(Sequence[Example]):
    """The run's seed records by index (0-based, in input order), read from the run store."""

    def __init__(self, store: RunStore, count: int, *, cache: int = 4096) -> None:
        self.store, self.count = store, count
        self._cache: OrderedDict[int, Example] = OrderedDict()
        self._cache_size = cache

    @classmethod
    def load(cls, config: GenerateConfig, store: RunStore, digest: str) -> SeedTable:
        """The seeds of this input (copied into the store on the first call for this input's content)."""
        count = store.seed_count(digest)
        if count is None:
            rows = read_examples(config.input, format=config.format)
            count = store.put_seeds(itertools.islice(rows, config.limit) if config.limit else rows, digest)
        return cls(store, count)

    def __len__(self) -> int:
        return self.count

    @overload
    def __getitem__(self, index: int) -> Example: ...
    @overload
    def __getitem__(self, index: slice) -> list[Example]: ...

    def __getitem__(self, index: int | slice) -> Example | list[Example]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.count))]
        if index < 0:
            index += self.count
        if not 0 <= index < self.count:
            raise IndexError(index)
        hit = self._cache.get(index)
        if hit is not None:
            self._cache.move_to_end(index)
            return hit
        example = self.store.seed(index)
        self._cache[index] = example
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return example

    def __iter__(self) -> Iterator[Example]:
        return self.store.iter_seeds()


class PlanTable:
    """Groups of seed indices, one per system prompt (all of size K but possibly the last)."""

    def __init__(self, indices: array, k: int) -> None:
        self.indices, self.k = indices, k

    def __len__(self) -> int:
        return -(-len(self.indices) // self.k)

    @property
    def conversations(self) -> int:
        return len(self.indices)

    def group(self, idx: int) -> list[int]:
        return list(self.indices[idx * self.k: (idx + 1) * self.k])

    def plan(self, idx: int, seeds: Sequence[Example]) -> Plan:
        return Plan(idx=idx, seeds=[seeds[i] for i in self.group(idx)])

    def plans(self, seeds: Sequence[Example], start: int = 0, stop: int | None = None) -> Iterator[Plan]:
        for idx in range(start, len(self) if stop is None else min(stop, len(self))):
            yield self.plan(idx, seeds)


def plan_groups(config: GenerateConfig, n_seeds: int) -> PlanTable:
    """Groups of K seeds, one per system prompt. By default every seed is used once (a seeded
    shuffle cut into groups); with --num-prompts, seeds are drawn from successive shuffles, so a
    seed may serve several prompts but never appears twice in one group."""
    if config.k > n_seeds:
        raise ConfigError(f"--k {config.k} is larger than the dataset ({n_seeds} seed records)")
    rng = random.Random(f"plan-{config.seed}")
    order = list(range(n_seeds))
    rng.shuffle(order)
    if config.num_prompts is None:
        return PlanTable(array("q", order), config.k)
    flat = array("q")
    queue: deque[int] = deque(order)
    del order
    for _ in range(config.num_prompts):
        group: list[int] = []
        deferred: list[int] = []
        while len(group) < config.k:
            if not queue:
                refill = list(range(n_seeds))
                rng.shuffle(refill)
                queue = deque(refill)
            candidate = queue.popleft()
            (deferred if candidate in group else group).append(candidate)
        queue.extendleft(reversed(deferred))
        flat.extend(group)
    return PlanTable(flat, config.k)
