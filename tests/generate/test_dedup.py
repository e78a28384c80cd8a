"""Near-duplicate system prompts: `near_duplicates` finds what datasketch's own MinHash LSH finds."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
from datasketch import MinHash, MinHashLSH
from datasketch.lsh import _optimal_param

from rolenrules.generate.dedup import lsh_params, near_duplicates, shingles


@pytest.mark.parametrize("num_perm", [32, 128, 256])
def test_bands_are_chosen_as_datasketch_chooses_them(num_perm: int) -> None:
    for step in range(1, 20):
        threshold = step / 20
        assert lsh_params(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.5, 0.5), threshold


def _datasketch_near_duplicates(items: list[tuple[int, str]], threshold: float) -> dict[int, int]:
    """The same greedy pass, on datasketch's MinHashLSH."""
    lsh = MinHashLSH(threshold=threshold, num_perm=128)
    hashes: dict[int, MinHash] = {}
    dropped: dict[int, int] = {}
    for key, text in items:
        mh = MinHash(num_perm=128, seed=1)
        mh.update_batch([s.encode() for s in shingles(text)])
        matches = [m for m in lsh.query(mh) if hashes[m].jaccard(mh) >= threshold]
        if matches:
            dropped[key] = sorted(matches)[0]
            continue
        lsh.insert(key, mh)
        hashes[key] = mh
    return dropped


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.8])
def test_the_same_prompts_are_found_as_with_datasketch(threshold: float) -> None:
    rng = random.Random(threshold)
    words = "you are nova the assistant of acme shop keep a friendly tone never share data reply briefly".split()
    base = [" ".join(rng.choice(words) for _ in range(30)) for _ in range(20)]
    # Variants of a few bases with some words changed: near-duplicates at various similarities.
    items = []
    for i in range(300):
        text = base[rng.randrange(len(base))].split()
        for _ in range(rng.randrange(12)):
            text[rng.randrange(len(text))] = rng.choice(words)
        items.append((i, " ".join(text)))
    ours = near_duplicates(items, threshold)
    assert ours and len(ours) < len(items)  # the case finds some, not all
    assert ours == _datasketch_near_duplicates(items, threshold)


def test_dedup_does_not_import_scipy() -> None:
    code = ("import sys; from rolenrules.generate.dedup import near_duplicates; "
            "print(near_duplicates([(0, 'a b c d'), (1, 'a b c d')], 0.8)); print('scipy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["{1:", "0}", "False"]
