"""Small RNR-style data for the training tests: conversations (SFT), preference pairs (DPO), prompts with
verifiable rules (GRPO) and a benchmark to evaluate what they train."""

from __future__ import annotations

from typing import Any

from rolenrules.records import Example, Message, Rule, SystemPrompt
from rolenrules.rules import rule_from_type

AVA = SystemPrompt(role="You are Ava, a geography tutor.", rules=[Rule(text="Answer in one sentence.")])
BOB = SystemPrompt(role="You are Bob, a fruit seller.", rules=[Rule(text="Never use emojis.")])

#: (system prompt, [user, assistant, user, assistant, ...])
CONVERSATIONS = [
    (AVA, ["What is the capital of France?", "Paris is the capital of France."]),
    (AVA, ["And of Spain?", "Madrid is the capital of Spain.", "Thanks!", "You are welcome."]),
    (BOB, ["Name a fruit.", "An apple."]),
    (BOB, ["Another one?", "A ripe pear.", "And a third?", "A cherry."]),
    (None, ["List three colours.", "Red, green and blue."]),
]

#: Verifiable rules, checked by the rule library: short replies pass FIVE_WORDS, long ones break it.
FIVE_WORDS = rule_from_type("length:max_words", {"max_words": 5})
ANY_LENGTH = rule_from_type("length:max_words", {"max_words": 1000})
UNDER_FOUR = rule_from_type("length_constraints:number_words", {"num_words": 4, "relation": "less than"})
NO_URLS = rule_from_type("content:no_urls")
CLARA = SystemPrompt(role="You are Clara, a terse travel guide.", rules=[FIVE_WORDS, NO_URLS])
DAN = SystemPrompt(role="You are Dan, a quiz master.", rules=[ANY_LENGTH, UNDER_FOUR])

#: (system prompt, user turn, chosen reply that follows the rules, rejected reply that breaks FIVE_WORDS)
PAIRS = [
    (CLARA, "What is the capital of France?", "Paris, of course.",
     "The capital of France is the lovely city of Paris, famous for its museums."),
    (CLARA, "Where is Madrid?", "Madrid is in Spain.",
     "Madrid sits right in the middle of Spain, on a high and dry plateau."),
    (CLARA, "Name a big river.", "The Nile.",
     "The Nile is a very big river that flows north through a great many countries."),
    (CLARA, "Which sea is salty?", "The Dead Sea.",
     "The Dead Sea is so salty that anyone can float on it without any effort at all."),
    (AVA, "What is the capital of Italy?", "Rome is the capital of Italy.",
     "Rome! It is the capital of Italy, and it is full of old ruins and good food."),
]


def make_examples() -> list[Example]:
    out = []
    for i, (prompt, turns) in enumerate(CONVERSATIONS):
        messages = [Message(role="user" if k % 2 == 0 else "assistant", content=t) for k, t in enumerate(turns)]
        example = Example(id=f"ex{i}", messages=messages)
        out.append(example.with_system(prompt) if prompt else example)
    return out


def make_pairs() -> list[dict[str, Any]]:
    """Rows of a pairs file (TRL's conversational preference format plus metadata)."""
    return [{"prompt": [{"role": "system", "content": sp.render()}, {"role": "user", "content": user}],
             "chosen": [{"role": "assistant", "content": chosen}],
             "rejected": [{"role": "assistant", "content": rejected}],
             "metadata": {"system_prompt_id": sp.id, "failed_rules": [FIVE_WORDS.id]}}
            for sp, user, chosen, rejected in PAIRS]


def make_prompt_examples() -> list[Example]:
    """GRPO prompts as RNR data: DAN's verifiable rules, and one judged-only system prompt (no reward)."""
    users = ["Name a colour.", "Name a planet.", "Name a month.", "Name a metal."]
    examples = [Example(id=f"dan{i}", messages=[Message(role="user", content=u),
                                                Message(role="assistant", content="Blue.")]).with_system(DAN)
                for i, u in enumerate(users)]
    examples.append(make_examples()[2])  # BOB: no verifiable rule, so no reward to learn from
    return examples


def make_bench() -> list[Example]:
    """A benchmark with verifiable rules: system prompt + user turn, held out by system prompt."""
    items = [(CLARA, "Name a mountain."), (DAN, "Name a fish."), (CLARA, "Where is Lisbon?")]
    return [Example(id=f"bench{i}", messages=[Message(role="user", content=u)], metadata={"task": "rnr"})
            .with_system(sp) for i, (sp, u) in enumerate(items)]


def corpus() -> list[str]:
    """The tiny tokenizer's training text (the byte-level BPE encodes any other text too)."""
    texts = [AVA.render(), BOB.render()]
    for _, turns in CONVERSATIONS:
        texts += turns
    return texts
