"""Benchmarks: the file format, loading it, and building one from generated data.

A benchmark is a JSONL file of `Example` records (docs/benchmark_format.md):

- `messages`: the conversation up to and including the final user turn — what the model under
  test sees (a system message first when there is one; earlier assistant turns as in the data);
- `system_prompt` (RNR benchmarks): the role and its rules, verifiable ones with `type` and
  `params`, judged ones with `text`; `messages[0]` holds its rendered text;
- `metadata.rules` (benchmarks whose system message is free text, or whose constraints sit in
  the user turn, e.g. IFEval): the rules to score when there is no structured `system_prompt`;
- `metadata.task`: the benchmark's name, reported per task.

`build_bench` holds examples out *by system prompt*: every example of a chosen system prompt is
excluded from training, and the ids go to `BENCH.exclude.txt` for `rnr train` to drop
(`rolenrules.heldout`).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rolenrules.errors import ConfigError, DataError
from rolenrules.heldout import exclude_path, held_out_ids
from rolenrules.io import atomic_path, read_examples, write_examples
from rolenrules.records import Example, Message, Rule


def bench_rules(example: Example) -> list[Rule]:
    """The rules scored for a benchmark example: its system prompt's, else `metadata.rules`."""
    if example.system_prompt is not None and example.system_prompt.rules:
        return list(example.system_prompt.rules)
    raw = example.metadata.get("rules") or []
    return [r if isinstance(r, Rule) else Rule.model_validate(r) for r in raw]


def final_user_prefix(messages: Sequence[Message]) -> list[Message]:
    """The conversation up to and including the last user turn."""
    last = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    if last is None:
        raise ValueError("conversation has no user turn")
    return list(messages[: last + 1])


def _prepare(example: Example, path: str, line: int | None) -> Example:
    """Validate one benchmark record: a user turn last (after trimming) and at least one rule."""
    try:
        rules = bench_rules(example)
    except ValidationError as error:
        raise DataError(f"invalid rule ({str(error).splitlines()[0][:200]})", path=path, line=line,
                        field="metadata.rules") from None
    if not rules:
        raise DataError("no rules to score: give `system_prompt.rules` or `metadata.rules`", path=path, line=line,
                        field="system_prompt")
    from rolenrules.rules import validate_rule

    where = "system_prompt.rules" if example.system_prompt is not None and example.system_prompt.rules else "metadata.rules"
    for index, rule in enumerate(rules):
        try:
            validate_rule(rule)  # unknown types and bad parameters (a regex that does not compile) fail here
        except ConfigError as error:
            raise DataError(f"{error} (example {example.id!r})", path=path, line=line, field=f"{where}[{index}]") from None
    messages = list(example.messages)
    if example.system_prompt is not None and (not messages or messages[0].role != "system"):
        messages.insert(0, Message(role="system", content=example.system_prompt.render()))
    try:
        messages = final_user_prefix(messages)
    except ValueError:
        raise DataError("conversation has no user turn", path=path, line=line, field="messages") from None
    metadata = dict(example.metadata)
    metadata.setdefault("task", "custom")
    return example.model_copy(update={"messages": messages, "metadata": metadata, "verdicts": []})


def load_bench(path: str | Path, *, limit: int | None = None) -> list[Example]:
    """Read and check a benchmark file. Errors name the file, the line and the field."""
    examples = []
    for example in read_examples(path, format="messages"):
        source = example.metadata.get("source") or {}
        line = source.get("line") if source.get("path") == str(path) else None
        examples.append(_prepare(example, str(path), line))
        if limit is not None and len(examples) >= limit:
            break
    if not examples:
        raise DataError("benchmark is empty", path=str(path))
    ids = Counter(e.id for e in examples)
    duplicate = next((i for i, c in ids.items() if c > 1), None)
    if duplicate is not None:
        raise DataError(f"example id {duplicate!r} appears more than once (results are keyed by id)",
                        path=str(path), field="id")
    return examples


# -- building from generated data ------------------------------------------------------------


@dataclass
class BenchStats:
    """What `build_bench` did: examples written, system prompts held out, and the balance."""

    examples: int = 0
    system_prompts: int = 0
    candidates: int = 0
    candidate_prompts: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    rule_counts: Counter[int] = field(default_factory=Counter)
    categories: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"examples": self.examples, "system_prompts": self.system_prompts, "candidates": self.candidates,
                "candidate_prompts": self.candidate_prompts, "skipped": dict(self.skipped),
                "rule_counts": {str(k): v for k, v in sorted(self.rule_counts.items())},
                "categories": dict(sorted(self.categories.items()))}


def _bench_item(example: Example) -> Example:
    assert example.system_prompt is not None
    messages = list(example.messages)
    if not messages or messages[0].role != "system":
        messages.insert(0, Message(role="system", content=example.system_prompt.render()))
    prefix = final_user_prefix(messages)
    rest = messages[len(prefix):]
    reference = next((m.content for m in rest if m.role == "assistant"), None)
    metadata: dict[str, Any] = {"task": "rnr", "system_prompt_id": example.system_prompt.id}
    if reference is not None:
        metadata["reference_response"] = reference
    if example.metadata.get("source") is not None:
        metadata["origin"] = example.metadata["source"]
    return Example(id=example.id, messages=prefix, system_prompt=example.system_prompt, metadata=metadata)


def _select(groups: dict[str, list[Example]], size: int, per_prompt: int, rng: random.Random) -> list[str]:
    """Choose system prompts round-robin over rule-count strata; within a stratum, the prompt whose
    categories are least represented so far (ties broken by the seeded order)."""
    strata: dict[int, list[str]] = defaultdict(list)
    order = sorted(groups)
    rng.shuffle(order)
    for sp_id in order:
        strata[len(groups[sp_id][0].system_prompt.rules)].append(sp_id)  # type: ignore[union-attr]
    seen: Counter[str] = Counter()
    chosen: list[str] = []
    taken = 0
    while taken < size and any(strata.values()):
        for count in sorted(strata):
            pool = strata[count]
            if not pool or taken >= size:
                continue

            def rarity(sp_id: str) -> float:
                rules = groups[sp_id][0].system_prompt.rules  # type: ignore[union-attr]
                return sum(1.0 / (1 + seen[r.category]) for r in rules) / len(rules)

            best = max(pool, key=rarity)  # max keeps the first of equals: the seeded order
            pool.remove(best)
            chosen.append(best)
            for rule in groups[best][0].system_prompt.rules:  # type: ignore[union-attr]
                seen[rule.category] += 1
            taken += min(per_prompt, len(groups[best]))
    return chosen


def build_bench(examples: Iterable[Example], out: str | Path, *, size: int, seed: int = 0,
                per_prompt: int = 1) -> BenchStats:
    """Build a held-out benchmark of about `size` examples from generated data.

    System prompts are drawn balanced over rule counts and rule categories; up to `per_prompt`
    examples of each chosen prompt go into the benchmark, and *all* of its examples are to be
    dropped from training: their ids (structured and by text) are written to
    `BENCH.exclude.txt`. Writes both files atomically.
    """
    if size < 1:
        raise ConfigError("--size must be at least 1")
    if per_prompt < 1:
        raise ConfigError("--per-prompt must be at least 1")
    stats = BenchStats()
    groups: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        if example.system_prompt is None:
            stats.skipped["no structured system prompt"] += 1
            continue
        if not example.system_prompt.rules:
            stats.skipped["system prompt without rules"] += 1
            continue
        if not any(m.role == "user" for m in example.messages):
            stats.skipped["no user turn"] += 1
            continue
        groups[example.system_prompt.id].append(example)
        stats.candidates += 1
    stats.candidate_prompts = len(groups)
    if not groups:
        raise DataError("no usable examples: a benchmark needs generated examples with a system prompt "
                        "(role + rules) and a user turn" + (f" (skipped: {dict(stats.skipped)})" if stats.skipped else ""))
    rng = random.Random(seed)
    chosen = _select(groups, size, per_prompt, rng)
    items: list[Example] = []
    excluded: set[str] = set()
    for sp_id in chosen:
        members = sorted(groups[sp_id], key=lambda e: e.id)
        rng.shuffle(members)
        for example in members:
            excluded |= held_out_ids(example)
        for example in members[:per_prompt]:
            if len(items) < size:
                items.append(_bench_item(example))
    ids = Counter(e.id for e in items)
    if any(c > 1 for c in ids.values()):
        # Generated ids should be unique; if not, make them so (results are keyed by id).
        items = [e.model_copy(update={"id": f"{e.id}-{i}"}) for i, e in enumerate(items)]
    stats.examples = len(items)
    stats.system_prompts = len(chosen)
    for item in items:
        rules = bench_rules(item)
        stats.rule_counts[len(rules)] += 1
        stats.categories.update(r.category for r in rules)
    out = Path(out)
    write_examples(items, out)
    with atomic_path(exclude_path(out)) as tmp:
        header = (f"# system prompts held out by {out.name}: drop training examples under these ids\n"
                  f"# (sp-: SystemPrompt.id; sys-: hash of the system message text)\n")
        tmp.write_text(header + "".join(f"{i}\n" for i in sorted(excluded)), encoding="utf-8")
    return stats
