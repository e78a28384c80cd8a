"""The language detector's profile rows, computed on demand, are langdetect's own."""

from __future__ import annotations

import random


def test_profile_rows_on_demand_equal_langdetects() -> None:
    from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

    from rolenrules.rules._text import _language_factory

    eager = DetectorFactory()
    eager.load_profile(PROFILES_DIRECTORY)
    lazy = _language_factory()
    assert lazy.langlist == eager.langlist
    assert set(lazy.word_lang_prob_map) == set(eager.word_lang_prob_map)
    grams = sorted(eager.word_lang_prob_map)
    sample = random.Random(0).sample(grams, 2000) + ["a", "th", "the", "é", "の", "zzzz"]
    for gram in sample:
        if gram in eager.word_lang_prob_map:
            assert lazy.word_lang_prob_map[gram] == eager.word_lang_prob_map[gram], gram
            assert lazy.word_lang_prob_map.get(gram) == eager.word_lang_prob_map[gram]
        else:
            assert gram not in lazy.word_lang_prob_map and lazy.word_lang_prob_map.get(gram) is None
