"""A small RNR-style dataset (two system prompts, single and multi-turn) for the training tests."""

from __future__ import annotations

from rolenrules.records import Example, Message, Rule, SystemPrompt

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


def make_examples() -> list[Example]:
    out = []
    for i, (prompt, turns) in enumerate(CONVERSATIONS):
        messages = [Message(role="user" if k % 2 == 0 else "assistant", content=t) for k, t in enumerate(turns)]
        example = Example(id=f"ex{i}", messages=messages)
        out.append(example.with_system(prompt) if prompt else example)
    return out


def corpus() -> list[str]:
    texts = [AVA.render(), BOB.render()]
    for _, turns in CONVERSATIONS:
        texts += turns
    return texts
