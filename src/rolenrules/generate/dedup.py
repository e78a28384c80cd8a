"""Near-duplicate system prompts, by MinHash LSH over word 3-gram shingles (datasketch)."""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable
from typing import TypeVar

_WORD = re.compile(r"\w+")
K = TypeVar("K", bound=Hashable)


def _minhash(text: str, num_perm: int):  # noqa: ANN202 (datasketch.MinHash, imported lazily)
    from datasketch import MinHash

    words = _WORD.findall(text.lower())
    shingles = {" ".join(words[i : i + 3]) for i in range(max(1, len(words) - 2))}
    mh = MinHash(num_perm=num_perm, seed=1)
    mh.update_batch([s.encode("utf-8") for s in shingles])
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
