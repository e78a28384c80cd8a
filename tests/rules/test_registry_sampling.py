"""Registry invariants, sampling of compatible rule sets (property-tested), and pool hygiene."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rolenrules.errors import ConfigError
from rolenrules.records import CATEGORIES
from rolenrules.rules import IFEVAL_IDS, REGISTRY, CheckContext, get_rule_type, rule_from_type, sample_rules
from rolenrules.rules import _text
from rolenrules.rules.sampling import candidate_types
from rolenrules.rules.types import content, ifeval, persona, text
from rolenrules.rules.types import format as format_
from rolenrules.rules.types.length import TYPES as LENGTH_TYPES
from rolenrules.rules.types.style import first_person_words

IFEVAL_25 = {
    "keywords:existence", "keywords:frequency", "keywords:forbidden_words", "keywords:letter_frequency",
    "language:response_language", "length_constraints:number_sentences", "length_constraints:number_paragraphs",
    "length_constraints:number_words", "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders", "detectable_content:postscript",
    "detectable_format:number_bullet_lists", "detectable_format:constrained_response",
    "detectable_format:number_highlighted_sections", "detectable_format:multiple_sections",
    "detectable_format:json_format", "detectable_format:title", "combination:two_responses",
    "combination:repeat_prompt", "startend:end_checker", "startend:quotation", "change_case:capital_word_frequency",
    "change_case:english_capital", "change_case:english_lowercase", "punctuation:no_comma",
}


def test_registry_holds_ifeval_and_at_least_20_system_types() -> None:
    assert IFEVAL_IDS == IFEVAL_25 and IFEVAL_25 <= set(REGISTRY)
    assert len(set(REGISTRY) - IFEVAL_25) >= 20


@pytest.mark.parametrize("type_id", sorted(REGISTRY))
def test_type_contract(type_id: str) -> None:
    rule_type = REGISTRY[type_id]
    assert rule_type.id == type_id and type_id.count(":") == 1 and rule_type.group == type_id.split(":")[0]
    assert rule_type.category in CATEGORIES
    assert rule_type.summary
    assert type_id in rule_type.conflicts  # a type never appears twice in one set
    for other in rule_type.conflicts:
        assert type_id in REGISTRY[other].conflicts, f"{type_id} -> {other} is not symmetric"
    if rule_type.sampleable:
        params = rule_type.sample(random.Random(3))
        assert rule_type.params_model.model_config.get("frozen") is True
        assert rule_type.parse(params.model_dump(mode="json")) == params  # plain-dict round trip
        phrasings = rule_type.phrasings(params)
        assert len(phrasings) >= 2 and len(set(phrasings)) == len(phrasings)
        assert rule_type.describe(params, variant=1) == phrasings[1]
        assert rule_type.describe(params, rng=random.Random(0)) in phrasings


@pytest.mark.parametrize(("type_id", "message"), [
    ("length:max_wordz", "unknown rule type 'length:max_wordz'; did you mean 'length:max_words', "),
    ("max_words", "did you mean 'length:max_words'"),
    ("text:not_contain", "did you mean 'text:not_contains' or 'text:contains'?"),
    # Nothing close: the groups, and where a plugin's types come from.
    ("acme:house_style", "known groups: change_case, combination, content, "),
    ("acme:house_style", "--rules-plugin"),
])
def test_get_rule_type_unknown_suggests_close_ids(type_id: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        get_rule_type(type_id)
    assert message in str(info.value)


def test_rule_from_type_validates_params_and_names_the_field() -> None:
    rule = rule_from_type("length:max_words", {"max_words": 120})
    assert rule.kind == "verifiable" and rule.category == "length" and rule.params == {"max_words": 120}
    assert rule.text == "Always answer in 120 words or fewer."
    with pytest.raises(ConfigError, match="max_words"):
        rule_from_type("length:max_words", {"max_words": "lots"})
    with pytest.raises(ConfigError, match="nth_paragraph"):
        rule_from_type("length_constraints:nth_paragraph_first_word",
                       {"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "so"})
    with pytest.raises(ConfigError, match="unknown rule type"):
        rule_from_type("nope:nope", {})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 8), system_only=st.booleans(),
       response=st.text(max_size=300))
def test_sampled_sets_are_compatible_and_checkable(seed: int, n: int, system_only: bool, response: str) -> None:
    rules = sample_rules(random.Random(seed), n, system_only=system_only)
    assert len(rules) == n
    types = [REGISTRY[r.type] for r in rules]
    for i, a in enumerate(types):
        assert not (system_only and not a.system_prompt_ok)
        for b in types[i + 1:]:
            assert b.id not in a.conflicts, f"{a.id} conflicts with {b.id}"
    context = CheckContext(system_prompt="You are a helpful guide. " + " ".join(r.text for r in rules))
    for rule, rule_type in zip(rules, types):
        params = rule_type.parse(rule.params)
        assert rule.text in rule_type.phrasings(params) and rule.category == rule_type.category
        strict = rule_type.check(rule.params, response, context=context)
        loose = rule_type.check(rule.params, response, mode="loose", context=context)
        assert (strict, loose) == rule_type.check_modes(params, response, context)
        assert strict is None or type(strict) is bool
        if strict is True:
            assert loose is True  # loose mode only adds ways to pass
        if not response.strip():
            assert (strict, loose) == (False, False)  # an empty reply follows no rule


def test_sampling_is_deterministic_and_respects_filters() -> None:
    first = sample_rules(random.Random(5), 5, system_only=True)
    assert first == sample_rules(random.Random(5), 5, system_only=True)
    picked = sample_rules(random.Random(1), 2, types=["style:no_emojis", "content:no_urls", "format:opening"],
                          exclude={"format:opening"})
    assert {r.type for r in picked} == {"style:no_emojis", "content:no_urls"}
    assert all(t.system_prompt_ok and t.sampleable for t in candidate_types(system_only=True))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n": 2, "types": ["format:bullets_only", "format:numbered_list"]}, "mutually compatible"),
    ({"n": 3, "types": ["style:no_emojis", "content:no_urls"]}, "only 2"),
    ({"n": 1, "types": ["combination:repeat_prompt"]}, "cannot be sampled"),
    ({"n": 1, "types": ["keywords:letter_frequency"], "system_only": True}, "not a system-prompt rule"),
    ({"n": 1, "types": ["no:such"]}, "unknown rule type"),
])
def test_impossible_requests_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        sample_rules(random.Random(0), **kwargs)


def test_types_that_pass_when_detection_fails_stay_out_of_system_prompts() -> None:
    lenient = {t.id for t in REGISTRY.values() if t.passes_when_undetected}
    assert lenient == {"language:response_language", "change_case:english_capital", "change_case:english_lowercase"}
    assert not any(REGISTRY[t].system_prompt_ok for t in lenient)
    assert not lenient & {t.id for t in candidate_types(system_only=True)}
    with pytest.raises(ConfigError, match="not a system-prompt rule"):
        sample_rules(random.Random(0), 1, types=["change_case:english_lowercase"], system_only=True)
    # IFEval's semantics stay for IFEval itself: undetectable counts as followed there.
    assert REGISTRY["language:response_language"].check({"language": "de"}, "12345 !!!") is True


def test_language_setting_types_conflict_with_english_only_ones() -> None:
    english = {t.id for t in REGISTRY.values() if t.english_only}
    assert {"format:opening", "persona:no_ai_mention", "keywords:forbidden_words", "style:all_uppercase"} <= english
    setters = {t.id for t in REGISTRY.values() if t.sets_language}
    assert setters == {"language:reply_language", "language:response_language"}
    for type_id in setters:
        assert english | setters <= REGISTRY[type_id].conflicts
    assert not REGISTRY["language:reply_language"].conflicts & {"style:no_emojis", "format:no_headings"}


def test_search_finds_a_compatible_set_when_one_exists() -> None:
    # Only 3 of the 10 three-type subsets are conflict-free; a single greedy draw often misses them.
    types = ["format:bullets_only", "format:numbered_list", "format:opening", "style:no_emojis", "content:no_urls"]
    for seed in range(20):
        got = {r.type for r in sample_rules(random.Random(seed), 3, types=types)}
        assert got in ({"format:numbered_list", "style:no_emojis", "content:no_urls"},
                       {"format:bullets_only", "style:no_emojis", "content:no_urls"},
                       {"format:opening", "style:no_emojis", "content:no_urls"})


def test_sampled_min_never_exceeds_sampled_max() -> None:
    by_unit: dict[str, dict[str, tuple[int, ...]]] = {}
    for rule_type in LENGTH_TYPES:
        by_unit.setdefault(rule_type.unit, {})[rule_type.bound] = rule_type.choices
    for unit, bounds in by_unit.items():
        assert max(bounds["min"]) <= min(bounds["max"]), unit


def test_phrase_pools_cannot_contradict_word_rules() -> None:
    forbidden = set(content.FORBIDDEN_POOL)
    phrases = [*format_.OPENINGS, *format_.SIGN_OFFS, *content.DISCLAIMERS, *persona.ADDRESS_FORMS, *persona.NAMES,
               *(k for keys in format_.JSON_KEY_SETS for k in keys), *text.REQUIRED_POOL, *text.FORBIDDEN_POOL]
    for phrase in phrases:
        assert not set(_text.normalise(phrase).split()) & forbidden, phrase
        assert not first_person_words(phrase), phrase
    assert not forbidden & set(ifeval.KEYWORD_POOL)
