"""Positive and negative tables for every rule type (strict mode unless a case says otherwise).

IFEval rows pin the official semantics, quirks included; system-prompt rows pin ours; user-rule
rows pin the literal (`in`) and regex (`re.search`) types: case, flags, unicode, empty replies and
a hostile pattern.
`test_every_type_has_positive_and_negative_cases` keeps the tables complete.
"""

from __future__ import annotations

import pytest

from rolenrules.rules import REGISTRY, CheckContext

LONG_EN = ("The quick brown fox jumps over the lazy dog while the farmer watches from the porch. "
           "Later the dog wakes up and chases the fox across the field near the river.")
FR = ("Bonjour, je suis très heureux de vous aider aujourd'hui. Nous allons parler de la cuisine "
      "française et de ses traditions régionales.")
SYSTEM = ("You are Ava, a concierge for the Grand Harbor Hotel. Help guests with bookings, dining and local "
          "sights. Never discuss competitor hotels and keep answers short and friendly.")

# (type id, params, response, expected) — expected None means "unscored".
IFEVAL_CASES: list[tuple[str, dict, str, bool | None]] = [
    ("keywords:existence", {"keywords": ["river", "bridge"]}, "A BRIDGE over the River.", True),
    ("keywords:existence", {"keywords": ["river", "bridge"]}, "Only a river here.", False),
    # Keywords are regular expressions (and substrings): "rivers" contains "river".
    ("keywords:existence", {"keywords": ["riv.r"]}, "Two rivers.", True),
    ("keywords:frequency", {"keyword": "tea", "frequency": 2, "relation": "at least"}, "Tea, then more tea.", True),
    ("keywords:frequency", {"keyword": "tea", "frequency": 2, "relation": "at least"}, "Coffee and tea.", False),
    ("keywords:frequency", {"keyword": "tea", "frequency": 2, "relation": "less than"}, "Team spirit and tea.", False),
    ("keywords:frequency", {"keyword": "tea", "frequency": 2, "relation": "less than"}, "Only tea.", True),
    ("keywords:forbidden_words", {"forbidden_words": ["cat"]}, "Concatenate the catalog.", True),
    ("keywords:forbidden_words", {"forbidden_words": ["cat"]}, "My Cat sleeps.", False),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 2, "let_relation": "at least"}, "Zig zag.", True),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 2, "let_relation": "less than"}, "Zig zag.", False),
    ("language:response_language", {"language": "fr"}, FR, True),
    ("language:response_language", {"language": "de"}, FR, False),
    # IFEval counts a failed detection as followed.
    ("language:response_language", {"language": "de"}, "12345 !!!", True),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "less than"}, "One. Two.", True),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "at least"}, "One. Two.", False),
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "at least"},
     "Dr. Smith arrived at 5 p.m. on Friday. He left.", True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "First part.\n***\nSecond part.", True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "***\nFirst.\n***\nSecond.\n***", True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 3}, "A\n***\n***\nB", False),
    ("length_constraints:number_words", {"num_words": 5, "relation": "less than"}, "Four words right here.", True),
    ("length_constraints:number_words", {"num_words": 5, "relation": "at least"}, "it's well-known", False),
    ("length_constraints:number_words", {"num_words": 4, "relation": "at least"}, "it's well-known", True),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "Then"},
     "Start here.\n\n\"Then, we go.\"", True),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"},
     "Start here.\n\nNext we go.", False),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "then"},
     "Start.\n\nThen go.", False),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name], at [address].", True),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name].", False),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Bye.\n\nP.S. Call me.", True),
    # The marker may appear anywhere, in any case.
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "see the p.s. below", True),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Bye.\nP.S. only one.", False),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Bye.\nP. P. S more.", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "Intro\n* one\n- two", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* one\n* two\n* three", False),
    ("detectable_format:number_bullet_lists", {"num_bullets": 1}, "**Bold** line\n* one", True),
    ("detectable_format:constrained_response", {}, "Well... My answer is maybe.", True),
    ("detectable_format:constrained_response", {}, "My answer is: yes.", False),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*one* and **two**", True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*one* and ** **", False),
    ("detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": 2},
     "Section 1\nIntro\nSection 2\nBody", True),
    ("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 2},
     "Section 1\nIntro\nSection 2\nBody", False),
    ("detectable_format:json_format", {}, '```json\n{"a": [1, 2]}\n```', True),
    ("detectable_format:json_format", {}, 'Here: {"a": 1}', False),
    ("detectable_format:title", {}, "<<My Poem>>\nRoses are red.", True),
    ("detectable_format:title", {}, "<< >> no title", False),
    ("combination:two_responses", {}, "First answer.\n******\nSecond answer.", True),
    ("combination:two_responses", {}, "Same.\n******\nSame.", False),
    ("combination:two_responses", {}, "A\n******\n******\nB", False),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a poem about tea."},
     "write a poem about tea. Here it is...", True),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a poem about tea."}, "Sure! Write a poem about tea.",
     False),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, '"Done. Any other questions?"', True),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, "Any other questions? Bye.", False),
    ("startend:quotation", {}, '  "Wrapped."  ', True),
    ("startend:quotation", {}, '"Not closed.', False),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"},
     "DON'T stop.", True),  # Treebank splits DON'T into DO + N'T: two capital words
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"},
     "The NASA plan.", False),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "less than"},
     "The NASA plan.", True),
    ("change_case:english_capital", {}, LONG_EN.upper(), True),
    ("change_case:english_capital", {}, LONG_EN, False),
    ("change_case:english_capital", {}, FR.upper(), False),
    ("change_case:english_lowercase", {}, LONG_EN.lower(), True),
    ("change_case:english_lowercase", {}, LONG_EN, False),
    ("punctuation:no_comma", {}, "No commas here.", True),
    ("punctuation:no_comma", {}, "Yes, one.", False),
]

SYSTEM_CASES: list[tuple[str, dict, str, bool | None]] = [
    ("length:max_words", {"max_words": 5}, "Just four words here.", True),
    ("length:max_words", {"max_words": 3}, "Just four words here.", False),
    ("length:min_words", {"min_words": 4}, "Just four words here.", True),
    ("length:min_words", {"min_words": 5}, "Just four words here.", False),
    ("length:max_sentences", {"max_sentences": 2}, "One. Two.", True),
    # Sentences are counted line by line, so list items without full stops still count.
    ("length:max_sentences", {"max_sentences": 2}, "Intro:\n- apples\n- pears", False),
    ("length:min_sentences", {"min_sentences": 2}, "One. Two!", True),
    ("length:min_sentences", {"min_sentences": 2}, "Only one sentence here.", False),
    ("length:max_paragraphs", {"max_paragraphs": 2}, "Para one.\n\nPara two.", True),
    ("length:max_paragraphs", {"max_paragraphs": 2}, "One.\n\nTwo.\n \nThree.", False),
    ("length:min_paragraphs", {"min_paragraphs": 2}, "One.\n\nTwo.", True),
    ("length:min_paragraphs", {"min_paragraphs": 2}, "One.\nStill one.", False),
    ("length:max_items", {"max_items": 2}, "- a\n- b\n\n---\n* * *", True),
    ("length:max_items", {"max_items": 2}, "1. a\n2. b\n3) c", False),
    ("length:min_items", {"min_items": 2}, "Options:\n• tea\n+ coffee", True),
    ("length:min_items", {"min_items": 2}, "Options:\n```\n- not an item\n- nor this\n```\n- one", False),
    ("format:opening", {"phrase": "Hello there!"}, "**Hello there**, friend.", True),
    ("format:opening", {"phrase": "Hello there!"}, "Hi. Hello there!", False),
    ("format:opening", {"phrase": "Hello"}, "Hellooo!", False),
    ("format:sign_off", {"phrase": "Best regards."}, "Thanks.\n\nbest regards", True),
    ("format:sign_off", {"phrase": "Best regards."}, "Best regards. PS: bye", False),
    ("format:bullets_only", {}, "- one\n\n* two\n• three", True),
    ("format:bullets_only", {}, "Here you go:\n- one", False),
    ("format:numbered_list", {}, "1. First\n2. Second\n   1) sub-step\n3. Third", True),
    ("format:numbered_list", {}, "1. First\n3. Third", False),
    ("format:numbered_list", {}, "- not numbered", False),
    ("format:json_object", {"required_keys": ["answer"]}, '```json\n{"answer": 4, "why": "2+2"}\n```', True),
    ("format:json_object", {"required_keys": ["answer"]}, '["answer"]', False),
    ("format:json_object", {"required_keys": ["answer", "source"]}, '{"answer": 4}', False),
    ("format:headings_required", {"min_headings": 2}, "# Title\ntext\n## Part\nmore", True),
    ("format:headings_required", {"min_headings": 2}, "# Title\n```\n# comment in code\n```", False),
    ("format:no_headings", {}, "Plain text with a #hashtag.\n```\n# code comment\n```", True),
    ("format:no_headings", {}, "Intro\n## Heading", False),
    ("format:no_code_blocks", {}, "Use `print()` inline.", True),
    ("format:no_code_blocks", {}, "```python\nprint(1)\n```", False),
    ("format:end_with_question", {}, "Want more? Ask. **Shall we start?**", True),
    ("format:end_with_question", {}, "Is it? Yes it is.", False),
    ("language:reply_language", {"language": "fr"}, FR, True),
    ("language:reply_language", {"language": "en"}, FR, False),
    # A failed detection is unscored here, unlike IFEval's instruction.
    ("language:reply_language", {"language": "fr"}, "1234 5678 !!!", None),
    ("style:all_lowercase", {}, "all lowercase, 100%.", True),
    ("style:all_lowercase", {}, "not Quite.", False),
    ("style:all_uppercase", {}, "ALL CAPS, 100%!", True),
    ("style:all_uppercase", {}, "ALMOST ALl", False),
    ("style:no_emojis", {}, "Done ✓ → next ★", True),
    ("style:no_emojis", {}, "Great job 🎉", False),
    ("style:no_emojis", {}, "Sunny ☀ today", False),
    ("style:no_first_person", {}, "The US economy grew; it is in Part II.", True),
    ("style:no_first_person", {}, "Here is what I'd suggest.", False),
    ("style:no_first_person", {}, "Let us begin.", False),
    ("style:max_sentence_words", {"max_words": 5}, "Short one here. Another short one.\n- a list item", True),
    ("style:max_sentence_words", {"max_words": 5}, "This sentence is clearly longer than five words.", False),
    ("style:max_grade_level", {"max_grade": 6}, "The cat sat. It was warm. We had fun.", True),
    ("style:max_grade_level", {"max_grade": 6},
     "Institutional considerations notwithstanding, the comprehensive reorganization necessitates "
     "interdepartmental collaboration and extraordinary administrative flexibility.", False),
    ("style:max_grade_level", {"max_grade": 6}, "123 456", None),
    ("persona:self_name", {"name": "Ava"}, "Hi, I'm Ava. Call me Ava anytime.", True),
    ("persona:self_name", {"name": "Ava"}, "Hello! My name is Max.", False),
    ("persona:self_name", {"name": "Ava"}, "As ChatGPT, here is my answer.", False),
    ("persona:self_name", {"name": "Ava", "require_mention": True}, "Here is the plan.", False),
    ("persona:self_name", {"name": "Ava", "require_mention": True}, "Ava here: the plan is ready.", True),
    ("persona:no_ai_mention", {}, "AI tools can help you plan a trip.", True),
    ("persona:no_ai_mention", {}, "As an AI language model, I cannot travel.", False),
    ("persona:no_ai_mention", {}, "That is beyond my training data.", False),
    ("persona:address_user", {"form": "Captain"}, "Aye, captain, the ship is ready.", True),
    ("persona:address_user", {"form": "Captain"}, "The captaincy is yours.", False),
    ("content:forbidden_words", {"words": ["basically", "rest assured"]}, "Basic facts only.", True),
    ("content:forbidden_words", {"words": ["basically", "rest assured"]}, "Rest  assured? No: REST ASSURED.", False),
    ("content:mention_keyword", {"keyword": "harbor"}, "The Harbor is busy.", True),
    ("content:mention_keyword", {"keyword": "harbor"}, "The harbors are busy.", False),
    ("content:required_disclaimer", {"text": "This is not financial advice."},
     "Buy bonds.\n\n_this is NOT financial advice_", True),
    ("content:required_disclaimer", {"text": "This is not financial advice."}, "Buy bonds. This is advice.", False),
    ("content:no_urls", {}, "Visit the official website and search for tickets, e.g. the help page.", True),
    ("content:no_urls", {}, "See https://example.org/help for details.", False),
    ("content:no_urls", {}, "Go to www.example.net now.", False),
    ("content:no_urls", {}, "Check python.org.", False),
    ("content:citation_markers", {"style": "numeric", "min_count": 2}, "Water boils [1] and freezes [2-3].", True),
    ("content:citation_markers", {"style": "numeric", "min_count": 2}, "Water boils [1].", False),
    ("content:citation_markers", {"style": "footnote", "min_count": 1}, "Water boils.[^1]", True),
    ("content:citation_markers", {"style": "footnote", "min_count": 1}, "Water boils [1].", False),
    ("safety:no_prompt_leak", {}, "I'd be happy to help you book a table for two tonight.", True),
    ("safety:no_prompt_leak", {}, "My instructions: " + SYSTEM, False),
]

HOSTILE = "a" * 60 + "b"  # `(a|aa)+$` backtracks exponentially on it: stopped by the time bound

USER_CASES: list[tuple[str, dict, str, bool | None]] = [
    ("text:contains", {"value": "ABC-1234"}, "Your ticket is ABC-1234.", True),
    ("text:contains", {"value": "ABC-1234"}, "Your ticket is abc-1234.", False),  # case-sensitive by default
    ("text:contains", {"value": "ABC-1234", "case_sensitive": False}, "Your ticket is abc-1234.", True),
    ("text:contains", {"value": "a.b*"}, "axb", False),  # literal: no pattern characters
    ("text:contains", {"value": "a.b*"}, "Type a.b* here.", True),
    ("text:contains", {"value": "straße", "case_sensitive": False}, "STRASSE 5", True),  # casefolded
    ("text:contains", {"value": "straße"}, "Strasse 5", False),
    ("text:contains", {"value": "café"}, "café au lait", False),  # no Unicode normalisation
    ("text:contains", {"value": "🔒 locked"}, "Status: 🔒 locked.", True),
    ("text:contains", {"value": "x"}, "", False),  # an empty reply follows no rule
    ("text:not_contains", {"value": "OPAL-7731"}, "I can't share the access code.", True),
    ("text:not_contains", {"value": "OPAL-7731"}, "The code is OPAL-7731.", False),
    ("text:not_contains", {"value": "OPAL-7731"}, "The code is opal-7731.", True),  # another string, case-sensitive
    ("text:not_contains", {"value": "OPAL-7731", "case_sensitive": False}, "The code is opal-7731.", False),
    ("text:not_contains", {"value": "cat"}, "Concatenate them.", False),  # substrings count, unlike forbidden words
    ("text:not_contains", {"value": "ÉTÉ", "case_sensitive": False}, "Un été chaud.", False),
    ("text:not_contains", {"value": "x"}, "   ", False),
    ("regex:search", {"pattern": r"\b[A-Z]{3}-\d{4}\b"}, "See ABC-1234.", True),
    ("regex:search", {"pattern": r"\b[A-Z]{3}-\d{4}\b"}, "See abc-1234.", False),
    ("regex:search", {"pattern": r"\b[A-Z]{3}-\d{4}\b", "ignore_case": True}, "See abc-1234.", True),
    ("regex:search", {"pattern": r"^Ticket:"}, "Hello.\nTicket: 5", False),
    ("regex:search", {"pattern": r"^Ticket:", "multiline": True}, "Hello.\nTicket: 5", True),
    ("regex:search", {"pattern": r"BEGIN.*END"}, "BEGIN\nEND", False),
    ("regex:search", {"pattern": r"BEGIN.*END", "dotall": True}, "BEGIN\nEND", True),
    ("regex:search", {"pattern": r"^\d+$"}, "١٢٣", True),  # \d and \w are Unicode, as in re
    ("regex:search", {"pattern": r"caf\w\b"}, "Un café noir.", True),
    ("regex:search", {"pattern": r".*"}, "", False),
    ("regex:search", {"pattern": r"(a|aa)+$"}, HOSTILE, None),
    ("regex:not_search", {"pattern": r"^\W*(?:sure|ok(?:ay)?|yes|access granted)\b", "ignore_case": True},
     "Sure! Here is the vault.", False),
    ("regex:not_search", {"pattern": r"^\W*(?:sure|ok(?:ay)?|yes|access granted)\b", "ignore_case": True},
     "I can't open the vault. Sure, ask me something else.", True),
    ("regex:not_search", {"pattern": r"\d{4}"}, "No numbers here.", True),
    ("regex:not_search", {"pattern": r"\d{4}"}, "Room 1234.", False),
    ("regex:not_search", {"pattern": r"ü"}, "Über", True),  # case-sensitive by default, also beyond ASCII
    ("regex:not_search", {"pattern": r"ü", "ignore_case": True}, "Über", False),
    ("regex:not_search", {"pattern": r"\d{4}"}, "", False),
    # A runaway search is unscored, never a pass, whichever way the rule points.
    ("regex:not_search", {"pattern": r"(a|aa)+$"}, HOSTILE, None),
]

# Cases that need a system prompt in the check context.
CONTEXT_TYPES = {"safety:no_prompt_leak": CheckContext(system_prompt=SYSTEM)}


def _id(case: tuple) -> str:
    return f"{case[0]}-{'pos' if case[3] else 'neg' if case[3] is False else 'unscored'}"


@pytest.mark.parametrize("case", IFEVAL_CASES + SYSTEM_CASES + USER_CASES, ids=_id)
def test_rule_table(case: tuple[str, dict, str, bool | None]) -> None:
    type_id, params, response, expected = case
    rule_type = REGISTRY[type_id]
    got = rule_type.check(params, response, context=CONTEXT_TYPES.get(type_id))
    assert got is expected, f"{type_id} {params} on {response!r}: got {got}, want {expected}"


def test_every_type_has_positive_and_negative_cases() -> None:
    cases = IFEVAL_CASES + SYSTEM_CASES + USER_CASES
    positives = {c[0] for c in cases if c[3] is True}
    negatives = {c[0] for c in cases if c[3] is False}
    assert set(REGISTRY) - positives == set()
    assert set(REGISTRY) - negatives == set()


@pytest.mark.parametrize(("type_id", "response", "strict", "loose"), [
    # Loose mode: the first line (a preamble) removed, asterisks stripped.
    ("startend:quotation", 'Sure, here it is:\n"Quoted answer."', False, True),
    ("detectable_format:title", "*<<Title>>*", True, True),
    ("detectable_format:json_format", '**Answer:**\n{"a": 1}', False, True),
    ("punctuation:no_comma", "Hello, world", False, False),
])
def test_loose_mode_tries_ifeval_variants(type_id: str, response: str, strict: bool, loose: bool) -> None:
    rule_type = REGISTRY[type_id]
    assert rule_type.check({}, response, mode="strict") is strict
    assert rule_type.check({}, response, mode="loose") is loose


def test_empty_response_follows_no_rule() -> None:
    assert REGISTRY["punctuation:no_comma"].check({}, "   ") is False
    assert REGISTRY["content:no_urls"].check({}, "", mode="loose") is False


def test_unscored_stays_unscored_in_loose_mode() -> None:
    rule_type = REGISTRY["language:reply_language"]
    assert rule_type.check({"language": "fr"}, "123\n456\n789", mode="loose") is None
    assert rule_type.check({"language": "fr"}, "OK\n" + FR, mode="loose") is True


def test_prompt_leak_without_system_prompt_is_unscored() -> None:
    assert REGISTRY["safety:no_prompt_leak"].check({}, SYSTEM) is None


def test_prompt_leak_ignores_quoted_requirements_and_user_quotes() -> None:
    system = SYSTEM + ' Always end with "Have a wonderful stay at the Grand Harbor Hotel today."'
    rule_type = REGISTRY["safety:no_prompt_leak"]
    reply = "Your room is ready. Have a wonderful stay at the Grand Harbor Hotel today."
    assert rule_type.check({}, reply, context=CheckContext(system_prompt=system)) is True
    # Text the user pasted themselves is not counted as leaked.
    context = CheckContext(system_prompt=SYSTEM, user_turns=[SYSTEM])
    assert rule_type.check({}, SYSTEM, context=context) is None
