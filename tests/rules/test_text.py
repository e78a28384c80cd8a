"""The offline text measurements: fast language detection and tokenizers match their references."""

from __future__ import annotations

import collections

import pytest

from rolenrules.rules import _text

TEXTS = [
    "The quick brown fox jumps over the lazy dog. It was a sunny day in the park.",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG AND KEEPS RUNNING ACROSS THE FIELD.",
    "Bonjour à tous, je m'appelle Claire et j'habite à Lyon depuis dix ans.",
    "Der schnelle braune Fuchs springt über den faulen Hund. Das Wetter ist schön.",
    "Привет! Как у тебя дела? Сегодня отличная погода для прогулки.",
    "これは日本語の文章です。今日はとても良い天気ですね。",
    "今天天气很好，我们一起去公园散步吧。",
    "안녕하세요. 오늘 날씨가 정말 좋네요.",
    "مرحبا بكم في موقعنا. نتمنى لكم يوما سعيدا.",
    "Xin chào các bạn, hôm nay trời đẹp quá.",
    "Visit https://example.com or mail me@example.org for the NASA and ESA reports, ok?",
    "Mixed English text with un peu de français et ein bisschen Deutsch.",
    "12345 67890 !!! ???",
    "",
    "a",
]


def test_fast_language_detection_matches_seeded_langdetect() -> None:
    for text in TEXTS:
        assert _text.detect_language(text) == _text.detect_language_reference(text), text


def test_detection_failures_return_none() -> None:
    assert _text.detect_language("12345 !!!") is None
    assert _text.detect_language("") is None


def test_sentences_and_tokens_match_nltk_with_the_offline_punkt_model() -> None:
    import punkt
    from nltk.tokenize.destructive import NLTKWordTokenizer
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    model = punkt.load_model("english")
    params = PunktParameters()
    params.abbrev_types, params.collocations = set(model.abbrev_types), set(model.collocations)
    params.sent_starters = set(model.sent_starters)
    params.ortho_context = collections.defaultdict(int, model.ortho_context)
    reference_sentences = PunktSentenceTokenizer(params)
    treebank = NLTKWordTokenizer()
    samples = TEXTS + [
        "Dr. Smith arrived at 5 p.m. on Friday. He said \"Stop.\" Then he left... Really?! Yes.",
        "I DON'T KNOW, said the U.S.A. team. They'll win (probably) -- or not; it's 3.5% odds.",
        "Ends with a postscript P.S.? and “curly quotes.” And «guillemets.»",
        "*Bold* list:\n* one\n* two\n\n1. first\n2. second",
    ]
    for text in samples:
        assert _text.sentences(text) == reference_sentences.tokenize(text), text
        expected = [t for s in reference_sentences.tokenize(text) for t in treebank.tokenize(s)]
        assert _text.word_tokens(text) == expected, text


@pytest.mark.parametrize(("text", "words", "syllables"), [
    ("it's well-known", 4, None),
    ("café naïve", 2, None),
    ("table", 1, 2),
    ("cake", 1, 1),
    ("beautiful", 1, 3),
])
def test_word_counting(text: str, words: int, syllables: int | None) -> None:
    assert _text.count_words(text) == words
    if syllables is not None:
        assert _text.syllables(text) == syllables


def test_counting_needs_no_nltk_data(monkeypatch: pytest.MonkeyPatch) -> None:
    import nltk

    def no_data(*args: object, **kwargs: object) -> None:
        raise LookupError("no NLTK data in this test")

    monkeypatch.setattr(nltk.data, "find", no_data)
    monkeypatch.setattr(nltk.data, "load", no_data)
    splitter = _text._sentence_splitter.__wrapped__()  # built afresh, under the patch
    assert splitter.tokenize("Dr. Smith left at 5 p.m. today. He was tired.") == [
        "Dr. Smith left at 5 p.m. today.", "He was tired."]
    assert _text._treebank.__wrapped__().tokenize("DON'T panic.") == ["DO", "N'T", "panic", "."]
