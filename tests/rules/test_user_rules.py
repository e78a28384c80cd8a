"""The literal (`text:`) and regex (`regex:`) rule types beyond their tables (test_rule_tables.py):
agreement with Python's own `in` and `re.search`, validation, the time bound, phrasings, sampling."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from rolenrules.errors import ConfigError
from rolenrules.rules import REGISTRY, candidate_types, check_rule, reward, rule_from_type, sample_rules
from rolenrules.rules.types import regex as regex_types

USER_TYPES = ("text:contains", "text:not_contains", "regex:search", "regex:not_search")

TEXTS = [
    "Sure! The access code is OPAL-7731.", "sure, but no.", "I can't share that.\nAsk me anything else.",
    "Colour and color.", "Ticket ABC-1234 is open.", "STRASSE", "straße", "Un été chaud à Paris.", "١٢٣ ٤٥",
    "line one\n- item\n# Heading", "END.", "tab\there", "emoji 🔒 inside", "cafe\u0301", "a" * 30,
]
PATTERNS = [
    r"\bcat\b", r"^\s*sure\b", r"colou?r", r"[A-Z]{3}-\d{4}", r"[aeiou]{2}", r"end\.$", r"straße", r"\w+é\b",
    r"[^\x00-\x7f]", r"a.c", r"^- ", r"^#+ \w", r"\d+", r"\s{2,}", r"🔒", r"(?:ha){2,}", r"x*", r"\Bt\B",
    r"(?P<w>\w)(?P=w)", r"(?<=code )\w+", r"\t", r"é", r"e\u0301",
]
FLAG_SETS = [
    ({}, 0), ({"ignore_case": True}, re.IGNORECASE), ({"multiline": True}, re.MULTILINE),
    ({"dotall": True, "ignore_case": True}, re.DOTALL | re.IGNORECASE),
]


def test_regex_types_agree_with_re_search() -> None:
    cases = 0
    for pattern, (flags, re_flags), text in itertools.product(PATTERNS, FLAG_SETS, TEXTS):
        expected = re.search(pattern, text, re_flags) is not None
        params = {"pattern": pattern, **flags}
        assert REGISTRY["regex:search"].check(params, text) is expected, (pattern, flags, text)
        assert REGISTRY["regex:not_search"].check(params, text) is (not expected), (pattern, flags, text)
        cases += 1
    assert cases == len(PATTERNS) * len(FLAG_SETS) * len(TEXTS)


def test_text_types_agree_with_in() -> None:
    values = ["OPAL-7731", "opal", "sure", "ß", "SS", "é", "e\u0301", "🔒", "\n- ", "a" * 31, "Colour"]
    for value, text in itertools.product(values, TEXTS):
        sensitive = value in text
        insensitive = value.casefold() in text.casefold()
        assert REGISTRY["text:contains"].check({"value": value}, text) is sensitive
        assert REGISTRY["text:not_contains"].check({"value": value}, text) is (not sensitive)
        assert REGISTRY["text:contains"].check({"value": value, "case_sensitive": False}, text) is insensitive
        assert REGISTRY["text:not_contains"].check({"value": value, "case_sensitive": False}, text) is (not insensitive)


@pytest.mark.parametrize(("type_id", "params", "message"), [
    ("regex:search", {"pattern": "(unclosed"}, "'pattern': not a valid regular expression: missing ), unterminated"),
    ("regex:not_search", {"pattern": "*start"}, "'pattern': not a valid regular expression: nothing to repeat"),
    ("regex:search", {"pattern": ""}, "'pattern'"),
    # Where `re` and the time-bounded matcher would read a pattern differently, it is refused.
    ("regex:search", {"pattern": "[[:alpha:]]+"}, "'pattern': ambiguous: possible nested set"),
    ("regex:search", {"pattern": "colou{e<=1}r"}, r"escape them as \{ \}"),
    ("regex:search", {"pattern": "x", "flags": "i"}, "'flags'"),
    ("regex:search", {"pattern": "x", "ignore_case": "maybe"}, "'ignore_case'"),
    ("text:contains", {"value": ""}, "'value'"),
    ("text:not_contains", {"text": "secret"}, "'value'"),
])
def test_bad_params_are_config_errors_naming_the_field(type_id: str, params: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        rule_from_type(type_id, params)
    assert message in str(info.value)


def test_escaped_brackets_and_braces_are_fine() -> None:
    rule = rule_from_type("regex:search", {"pattern": r"\[\[:alpha:\]\] \{e<=1\} x{2,3}"})
    assert check_rule(rule, "see [[:alpha:]] {e<=1} xx").passed is True


def test_patterns_are_checked_and_compiled_once() -> None:
    regex_types.compiled.cache_clear()
    regex_types.pattern_problem.cache_clear()
    rule = rule_from_type("regex:not_search", {"pattern": r"\bpassword\b", "ignore_case": True})
    verdicts = [check_rule(rule, reply).passed for reply in ("The PASSWORD is hunter2.", "Nothing to see.", "password?")]
    assert verdicts == [False, True, False]
    assert regex_types.pattern_problem.cache_info().misses == 1
    assert regex_types.compiled.cache_info().misses == 1


def test_a_runaway_search_is_unscored_with_the_reason() -> None:
    hostile = "a" * 60 + "!"
    for type_id in ("regex:search", "regex:not_search"):
        rule = rule_from_type(type_id, {"pattern": r"(a|aa)+$"})
        verdict = check_rule(rule, hostile)
        assert (verdict.passed, verdict.source) == (None, "unscored")
        assert "ran past 0.5 s" in (verdict.reason or "") and "catastrophic backtracking" in (verdict.reason or "")
        assert check_rule(rule, hostile, mode="loose").passed is None
        # An RL reward never pays for it.
        assert reward([hostile], [[rule]]) == [0.0]
    # The same pattern on a reply it can decide is scored normally.
    assert check_rule(rule_from_type("regex:search", {"pattern": r"(a|aa)+$"}), "caa").passed is True


def test_verdict_reasons_say_what_matched() -> None:
    rule = rule_from_type("regex:not_search", {"pattern": r"\b\d{4}\b"})
    assert check_rule(rule, "Your PIN is 4821.").reason == "regex:not_search: broken (matched '4821' at character 12)"
    secret = rule_from_type("text:not_contains", {"value": "OPAL-7731"})
    assert check_rule(secret, "It is OPAL-7731.").reason == "text:not_contains: broken (found at character 6)"


@pytest.mark.parametrize(("type_id", "params", "wanted"), [
    ("text:contains", {"value": "ABC-1234"}, ['"ABC-1234"', "(same capitalisation)"]),
    ("text:contains", {"value": "abc", "case_sensitive": False}, ['"abc"', "(any capitalisation)"]),
    ("text:not_contains", {"value": 'say "hi"'}, ['“say "hi"”']),
    ("text:not_contains", {"value": "opal", "case_sensitive": False}, ['"opal"', "in any capitalisation"]),
    ("regex:search", {"pattern": r"^\d+$", "multiline": True}, [r"^\d+$", "^ and $ match at every line"]),
    ("regex:not_search", {"pattern": "a.b", "ignore_case": True, "dotall": True},
     ["a.b", "ignoring case", ". also matches newlines"]),
])
def test_phrasings_come_from_the_params(type_id: str, params: dict, wanted: list[str]) -> None:
    phrasings = REGISTRY[type_id].phrasings(REGISTRY[type_id].parse(params))
    assert len(set(phrasings)) == 3
    for phrasing in phrasings:
        for part in wanted:
            assert part in phrasing, (phrasing, part)


def test_never_sampled_unless_asked_for() -> None:
    assert not set(USER_TYPES) & {t.id for t in candidate_types()}
    assert not set(USER_TYPES) & {t.id for t in candidate_types(system_only=True)}
    drawn = {r.type for seed in range(50) for r in sample_rules(random.Random(seed), 8, system_only=True)}
    assert not drawn & set(USER_TYPES)
    # Named with --rule-types, they are drawn with their pools' parameters and phrased from them.
    asked = [*USER_TYPES, "style:all_lowercase", "style:all_uppercase", "punctuation:no_comma", "format:json_object"]
    for seed in range(20):
        rules = sample_rules(random.Random(seed), 6, types=asked, system_only=True)
        for rule in rules:
            rule_type = REGISTRY[rule.type]
            assert rule.text in rule_type.phrasings(rule_type.parse(rule.params))
        types = [r.type for r in rules]
        assert not any(REGISTRY[a].conflicts & set(types[i + 1:]) for i, a in enumerate(types))


SAMPLE_MATCHES = {r"\b[A-Z]{3}-\d{4}\b": "ABC-1234", r"\bv\d+\.\d+\b": "v2.0", r"\(ref\. \d+\)": "(ref. 12)"}


def test_sampled_required_values_hold_in_any_case() -> None:
    # Sampled rules match ignoring case, so they can hold beside all-lowercase or all-uppercase rules.
    assert set(SAMPLE_MATCHES) == set(regex_types.REQUIRED_POOL)
    for seed in range(30):
        for type_id in ("text:contains", "regex:search"):
            rule_type = REGISTRY[type_id]
            params = rule_type.sample(random.Random(seed))
            found = SAMPLE_MATCHES[params.pattern] if type_id == "regex:search" else params.value
            for case in (str.lower, str.upper):
                assert rule_type.check(params, f"Reply: {case(found)} here.") is True, (type_id, params)
