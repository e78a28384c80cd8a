"""Near-duplicate system prompts, by MinHash LSH over word 3-gram shingles (datasketch)."""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable
from typing import TypeVar

_WORD = re.compile(r"\w+")
K = TypeVar("K", bound=Hashable)


def shingles(text: str) -> set[str]:
    """The word 3-grams of a text, lower-cased (a text under three words is one shingle)."""
    words = _WORD.findall(text.lower())
    return {" ".join(words[i : i + 3]) for i in range(max(1, len(words) - 2))}


def similarity(a: str, b: str) -> float:
    """Exact Jaccard similarity of two texts' shingles: what the MinHash in `near_duplicates`
    estimates, for comparing a few texts directly."""
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def overlap(a: str, b: str) -> float:
    """Shared shingles over the shorter text's: 1.0 when one text is copied whole into the other,
    which Jaccard similarity understates when their lengths differ."""
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / min(len(sa), len(sb)) if sa and sb else 0.0


def _minhash(text: str, num_perm: int):  # noqa: ANN202 (datasketch.MinHash, imported lazily)
    from datasketch import MinHash

    mh = MinHash(num_perm=num_perm, seed=1)
    mh.update_batch([s.encode("utf-8") for s in shingles(text)])
    return mh


def near_duplicates(items: Iterable[tuple[K, str]], threshold: float, num_perm: int = 128) -> dict[K, K]:
    """Map each near-duplicate key to the earlier key it duplicates. `items` are (key, text) in a
    fixed order: the first of a group is kept, so the result is deterministic."""
    from datasketch import MinHashLSH  # pulls in scipy: keep it off the CLI's start-up path

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    hashes: dict = {}
    dropped: dict[K, K] = {}
    for key, text in items:
        mh = _minhash(text, num_perm)
        matches = [m for m in lsh.query(mh) if hashes[m].jaccard(mh) >= threshold]
        if matches:
            dropped[key] = sorted(matches)[0]
            continue
        lsh.insert(key, mh)
        hashes[key] = mh
    return dropped
