"""Near-duplicate system prompts, by MinHash LSH over word 3-gram shingles.

The MinHash signatures are datasketch's (`datasketch.minhash.MinHash`). The LSH index over them is
datasketch's `MinHashLSH` banding, here in a few lines: importing `datasketch` imports SciPy (its
LSH picks the number of bands by numerical integration, `scipy.integrate.quad`), which was 0.5 s
of a 4-second `rnr generate` run. The bands are chosen exactly as datasketch chooses them (its
error integrals are of polynomials, which Gauss-Legendre quadrature computes exactly), so the same
prompts are found; `tests/generate/test_dedup.py` holds both to datasketch's own classes.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import re
import sys
from collections.abc import Hashable, Iterable
from typing import Any, TypeVar

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


@functools.cache
def _minhash_class() -> Any:
    """`datasketch.minhash.MinHash`, without running `datasketch/__init__.py` (which imports SciPy)
    when datasketch is not imported yet. The package module is a stand-in while the submodule loads,
    then leaves `sys.modules`, so a later `import datasketch` anywhere is the whole, ordinary one
    (and reuses this `MinHash` class)."""
    if "datasketch" in sys.modules:
        return importlib.import_module("datasketch.minhash").MinHash
    spec = importlib.util.find_spec("datasketch")
    assert spec is not None
    sys.modules["datasketch"] = importlib.util.module_from_spec(spec)  # not executed
    try:
        return importlib.import_module("datasketch.minhash").MinHash
    finally:
        del sys.modules["datasketch"]


@functools.cache
def _permutations(num_perm: int) -> Any:
    # Drawn from the seed by every MinHash(seed=1); drawn once and shared (read-only) instead.
    template = _minhash_class()(num_perm=num_perm, seed=1)
    return {"permutations": template.permutations, "scheme": template.scheme}


def _minhash(text: str, num_perm: int):  # noqa: ANN202 (datasketch's MinHash, imported lazily)
    mh = _minhash_class()(num_perm=num_perm, seed=1, **_permutations(num_perm))
    mh.update_batch([s.encode("utf-8") for s in shingles(text)])
    return mh


@functools.cache
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) minimising the false-positive plus false-negative probability mass at
    `threshold`, equally weighted, first minimum in (bands, rows) order: `datasketch.lsh._optimal_param`."""
    import numpy as np

    # The integrands, 1 - (1 - s^r)^b, are polynomials of degree r*b <= num_perm: exact with
    # num_perm // 2 + 1 Gauss-Legendre nodes.
    nodes, weights = np.polynomial.legendre.leggauss(num_perm // 2 + 2)

    def integral(low: float, high: float, b: np.ndarray, r: np.ndarray, positive: bool) -> np.ndarray:
        s = (high - low) / 2 * nodes + (high + low) / 2
        p = 1 - (1 - s[None, :] ** r[:, None]) ** b[:, None]
        values = p if positive else 1 - p
        return (high - low) / 2 * (values @ weights)

    pairs = [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)]
    b = np.array([p[0] for p in pairs], dtype=float)
    r = np.array([p[1] for p in pairs], dtype=float)
    error = 0.5 * integral(0.0, threshold, b, r, True) + 0.5 * integral(threshold, 1.0, b, r, False)
    return pairs[int(np.argmin(error))]


class _Bands:
    """MinHash LSH banding (as datasketch's `MinHashLSH`): keys whose signatures agree on every row of
    at least one band are candidates."""

    def __init__(self, threshold: float, num_perm: int) -> None:
        self.bands, self.rows = lsh_params(threshold, num_perm)
        if self.bands < 2:
            raise ValueError("The number of bands are too small (b < 2)")  # as datasketch says it
        self.tables: list[dict[bytes, list[Any]]] = [{} for _ in range(self.bands)]

    def _keys(self, mh: Any) -> list[bytes]:
        values = mh.hashvalues
        return [bytes(values[i * self.rows: (i + 1) * self.rows].byteswap().data) for i in range(self.bands)]

    def query(self, mh: Any) -> set[Any]:
        return {key for table, band in zip(self.tables, self._keys(mh)) for key in table.get(band, ())}

    def insert(self, key: Any, mh: Any) -> None:
        for table, band in zip(self.tables, self._keys(mh)):
            table.setdefault(band, []).append(key)


def near_duplicates(items: Iterable[tuple[K, str]], threshold: float, num_perm: int = 128) -> dict[K, K]:
    """Map each near-duplicate key to the earlier key it duplicates. `items` are (key, text) in a
    fixed order: the first of a group is kept, so the result is deterministic."""
    lsh = _Bands(threshold, num_perm)
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
