"""A fixed, seeded subset of a benchmark (`rnr eval --sample N --sample-seed S`), for runs that cannot
afford every example: the same examples for every model evaluated with the same N and seed.

Each example is ranked by a hash of the seed and its key — the IFEval key where it has one, else its
id — and the N lowest are kept, in file order. Ranking by key rather than by position makes the
subset independent of the file's order and picks the same prompts in `ifeval` and `sys-ifeval`
(paired by that key in `rnr compare`), even though the two files differ in length.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from rolenrules.records import Example


def subset_key(example: Example) -> str:
    block = example.metadata.get("ifeval")
    key = block.get("key") if isinstance(block, dict) else None
    return f"ifeval:{key}" if isinstance(key, (str, int)) else f"id:{example.id}"


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}\0{key}".encode()).hexdigest()


def seeded_subset(examples: Sequence[Example], n: int | None, seed: int = 0) -> list[Example]:
    """`n` examples of `examples` (all of them when n is None or not smaller), in their order."""
    if n is None or n >= len(examples):
        return list(examples)
    chosen = set(sorted(range(len(examples)), key=lambda i: _rank(seed, subset_key(examples[i])))[:n])
    return [e for i, e in enumerate(examples) if i in chosen]


__all__ = ["seeded_subset", "subset_key"]
