"""langdetect's detection, computed faster and with identical answers.

langdetect (Nakatani Shuyo's naive-Bayes n-gram detector) spends most of its time in
per-character Python loops and in a 55-language inner loop per sampled n-gram. This module runs
the same procedure on langdetect's own profiles and character normalisation, but:

* normalises characters through a memoised translation table and extracts n-grams word by word,
  memoising each word's n-grams (langdetect's n-gram window restarts at every space);
* keeps the language probabilities in a numpy vector, so one update is one vector multiply.

Every arithmetic step is the same IEEE operation in the same order as langdetect's (elementwise
products, a left-to-right `sum` for normalisation), and the random stream is drawn identically
(`random.Random(seed)`, one `gauss` per trial, one `choice` per iteration), so the result is the
same language code. `tests/rules/test_text.py` checks that against langdetect itself.
"""

from __future__ import annotations

import functools
import random
import re
from typing import Any

import numpy as np

# langdetect's detector settings, mirrored here and checked against the installed library.
_ALPHA = 0.5
_ALPHA_WIDTH = 0.05
_ITERATION_LIMIT = 1000
_PROB_THRESHOLD = 0.1
_CONV_THRESHOLD = 0.99999
_BASE_FREQ = 10000
_N_TRIAL = 7
_MAX_TEXT_LENGTH = 10000

# Memo sizes (entries) before a reset: bounded memory in long generation runs.
_WORD_CACHE_LIMIT = 50_000
_ROW_CACHE_LIMIT = 20_000

_SPACES_RE = re.compile(r" {2,}")
_LATIN_RE = re.compile(r"[A-z]")
_NON_LATIN_RE = re.compile("[\u0300-\U0010ffff]")


class _Normaliser(dict):
    """`str.translate` table that computes langdetect's per-character normalisation on demand."""

    def __init__(self, normalise: Any) -> None:
        super().__init__()
        self._normalise = normalise

    def __missing__(self, code: int) -> str:
        value = self._normalise(chr(code))
        self[code] = value
        return value


class FastDetector:
    """Language detection with langdetect's profiles and procedure (see the module docstring)."""

    def __init__(self, factory: Any, seed: int) -> None:
        from langdetect.detector import Detector
        from langdetect.utils.ngram import NGram

        # Guard the constants this module mirrors: a langdetect release that changes them
        # would silently change answers.
        probe = factory.create()
        expected = (probe.alpha, Detector.ALPHA_WIDTH, Detector.ITERATION_LIMIT, Detector.PROB_THRESHOLD,
                    Detector.CONV_THRESHOLD, Detector.BASE_FREQ, probe.n_trial, probe.max_text_length, NGram.N_GRAM)
        if expected != (_ALPHA, _ALPHA_WIDTH, _ITERATION_LIMIT, _PROB_THRESHOLD, _CONV_THRESHOLD, _BASE_FREQ, _N_TRIAL,
                        _MAX_TEXT_LENGTH, 3):
            raise RuntimeError("langdetect's detector constants changed; update rolenrules.rules._langid")
        self._url_re = Detector.URL_RE
        self._mail_re = Detector.MAIL_RE
        self._normalize_vi = NGram.normalize_vi
        self._table = _Normaliser(NGram.normalize)
        self._profiles: dict[str, list[float]] = factory.word_lang_prob_map
        self._langs: list[str] = list(factory.langlist)
        self._rows: dict[str, np.ndarray] = {}
        self._word_cache: dict[str, tuple[str, ...]] = {}
        self._seed = seed

    def _prepare(self, text: str) -> str:
        text = self._url_re.sub(" ", text)
        text = self._mail_re.sub(" ", text)
        text = self._normalize_vi(text)
        text = _SPACES_RE.sub(" ", text[:_MAX_TEXT_LENGTH])
        # Mostly non-Latin text: drop the Latin letters (langdetect's `cleaning_text`).
        if len(_LATIN_RE.findall(text)) * 2 < len(_NON_LATIN_RE.findall(text)):
            text = _LATIN_RE.sub("", text)
        return text

    def clear_caches(self) -> None:
        """Forget memoised per-word n-grams (benchmarks time cold work). Profile rows converted
        to arrays are model data, like the profiles themselves, and are kept."""
        self._word_cache.clear()

    def _word_grams(self, padded: str) -> tuple[str, ...]:
        """The n-grams langdetect emits for one word, seen as ' ' + word (+ ' ' when a space
        follows): its 3-character window restarts at every space, so a word's n-grams depend
        on the word alone."""
        known = self._profiles
        found: list[str] = []
        for i in range(1, len(padded)):
            char = padded[i]
            if char.isupper() and padded[i - 1].isupper():
                continue  # inside an all-capitals word langdetect emits nothing
            if char != " " and char in known:
                found.append(char)
            gram = padded[i - 1:i + 1]
            if gram in known:
                found.append(gram)
            if i >= 2:
                gram = padded[i - 2:i + 1]
                if gram in known:
                    found.append(gram)
        return tuple(found)

    def _ngrams(self, text: str) -> list[str]:
        """The 1-, 2- and 3-grams langdetect extracts, in its order, known to the profiles."""
        cache = self._word_cache
        if len(cache) > _WORD_CACHE_LIMIT:
            cache.clear()
        found: list[str] = []
        segments = text.translate(self._table).split(" ")
        last = len(segments) - 1
        for position, word in enumerate(segments):
            if not word:
                continue
            padded = " " + word + " " if position < last else " " + word
            grams = cache.get(padded)
            if grams is None:
                grams = cache[padded] = self._word_grams(padded)
            found += grams
        return found

    def detect(self, text: str) -> str | None:
        """The most probable language code; None when the text has no usable n-grams."""
        grams = self._ngrams(self._prepare(text))
        if not grams:
            return None
        rows = self._rows
        if len(rows) > _ROW_CACHE_LIMIT:
            rows.clear()
        n_langs = len(self._langs)
        total = np.zeros(n_langs)
        rng = random.Random()
        rng.seed(self._seed)
        getrandbits, count, inline_choice = rng.getrandbits, len(grams), _INLINE_CHOICE
        bits = count.bit_length()
        for _ in range(_N_TRIAL):
            prob = np.full(n_langs, 1.0 / n_langs)
            alpha = _ALPHA + rng.gauss(0.0, 1.0) * _ALPHA_WIDTH
            weight = alpha / _BASE_FREQ
            factors: dict[str, np.ndarray] = {}
            i = 0
            while True:
                if inline_choice:
                    r = getrandbits(bits)
                    while r >= count:
                        r = getrandbits(bits)
                    gram = grams[r]
                else:
                    gram = rng.choice(grams)
                factor = factors.get(gram)
                if factor is None:
                    row = rows.get(gram)
                    if row is None:
                        row = rows[gram] = np.array(self._profiles[gram], dtype=np.float64)
                    factor = factors[gram] = weight + row
                prob *= factor
                if i % 5 == 0:
                    # langdetect normalises with Python's left-to-right float sum. Division by a
                    # positive number is monotone under rounding, so max(p)/s is max(p/s) exactly.
                    values = prob.tolist()
                    norm = sum(values)
                    prob /= norm
                    if max(values) / norm > _CONV_THRESHOLD or i >= _ITERATION_LIMIT:
                        break
                i += 1
            total += prob / _N_TRIAL
        best = int(np.argmax(total))
        if total[best] <= _PROB_THRESHOLD:
            return "unknown"
        return self._langs[best]


def _inline_choice_matches() -> bool:
    """Whether `random.Random.choice` draws `getrandbits(n.bit_length())` until below n, as
    CPython 3.11 does; the detector then inlines that draw (same stream), else calls `choice`."""
    for size in (1, 2, 3, 37, 64, 1000, 4099):
        reference, inline = random.Random(7), random.Random(7)
        items = list(range(size))
        for _ in range(200):
            r = inline.getrandbits(size.bit_length())
            while r >= size:
                r = inline.getrandbits(size.bit_length())
            if reference.choice(items) != items[r]:
                return False
    return True


_INLINE_CHOICE = _inline_choice_matches()


@functools.cache
def fast_detector(factory: Any, seed: int) -> FastDetector:
    return FastDetector(factory, seed)
