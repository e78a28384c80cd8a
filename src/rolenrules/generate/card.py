"""The dataset card: a markdown page with what a run made, what it dropped and what it cost."""

from __future__ import annotations

from collections import Counter

from rolenrules.generate.config import GenerateConfig
from rolenrules.generate.outcomes import Failure, PromptOutcome, Rejection
from rolenrules.records import Example, SystemPrompt, Usage


def _table(title: str, counts: Counter[str], total_label: str = "count") -> list[str]:
    if not counts:
        return []
    lines = [f"### {title}", "", f"| {title.split(' by ')[-1]} | {total_label} |", "| --- | ---: |"]
    lines += [f"| `{k}` | {v} |" for k, v in counts.most_common()]
    return lines + [""]


def render_card(config: GenerateConfig, kept: list[Example], rejects: list[Rejection | Failure],
                prompts: dict[int, PromptOutcome], *, teacher: str, judge: str, teacher_usage: Usage,
                judge_usage: Usage, templates: dict[str, str]) -> str:
    """The card's markdown. `teacher_usage`/`judge_usage` are the run's totals over every invocation."""
    total = len(kept) + len(rejects)
    failed = [r for r in rejects if isinstance(r, Failure)]
    rejected = [r for r in rejects if not isinstance(r, Failure)]
    dedup_dropped = {r.prompt_index for r in rejects if r.stage == "dedup"}
    prompts_ok = sum(1 for p in prompts.values() if isinstance(p, SystemPrompt)) - len(dedup_dropped)
    prompts_dropped = Counter("teacher failed" for p in prompts.values() if not isinstance(p, SystemPrompt))
    if dedup_dropped:
        prompts_dropped["near-duplicate"] = len(dedup_dropped)
    rule_types: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    rules_per_prompt: Counter[str] = Counter()
    seen_prompts: set[str] = set()
    for example in kept:
        sp = example.system_prompt
        if sp is None or sp.id in seen_prompts:
            continue
        seen_prompts.add(sp.id)
        rules_per_prompt[str(len(sp.rules))] += 1
        for rule in sp.rules:
            rule_types[rule.type or "judged"] += 1
            categories[rule.category] += 1
    attempts = [a for e in kept for a in e.metadata.get("attempts", [])]
    regenerated = sum(1 for a in attempts if a > 1)
    conflicts = sum(1 for e in kept if e.metadata.get("conflict"))
    unscored = sum(1 for e in kept for v in e.verdicts if v.passed is None)
    first_pass = sum(1 for e in kept if all(a == 1 for a in e.metadata.get("attempts", [1])))
    reasons = Counter(r.stage for r in rejected)
    usage = teacher_usage.add(judge_usage)
    lines = [
        f"# Dataset card: `{config.out_path.name}`",
        "",
        *([f"> **Incomplete:** {len(failed)} conversation(s) failed on server errors and are not in this "
           "dataset; run the same command again to retry them.", ""] if failed else []),
        "Role-and-rule (RoleNRules) training data made by `rnr generate`. Each record is a conversation under a",
        "system prompt (a role plus rules) with `messages` (system first, ready for TRL), the structured",
        "`system_prompt`, per-rule `verdicts` and provenance `metadata`.",
        "",
        "## Summary",
        "",
        "| | |",
        "| --- | ---: |",
        f"| seed conversations used | {total} |",
        f"| kept | {len(kept)} ({_pct(len(kept), total)}) |",
        f"| rejected (see `{config.rejects_path.name}`) | {len(rejected)} ({_pct(len(rejected), total)}) |",
        f"| failed on server errors, retried by the next run | {len(failed)} ({_pct(len(failed), total)}) |",
        f"| system prompts kept | {prompts_ok} |",
        f"| system prompts dropped | {sum(prompts_dropped.values())} "
        f"({', '.join(f'{k}: {v}' for k, v in prompts_dropped.items()) or 'none'}) |",
        f"| kept on the first attempt | {first_pass} ({_pct(first_pass, len(kept))}) |",
        f"| turns regenerated with feedback | {regenerated} of {len(attempts)} ({_pct(regenerated, len(attempts))}) |",
        f"| conversations with a conflict turn | {conflicts} |",
        f"| kept verdicts the judge could not score | {unscored} |",
        "",
        "## Models and prompts",
        "",
        f"- teacher: `{teacher}`",
        f"- judge: `{judge}`",
        f"- prompt templates: {', '.join(f'`{k}@{v}`' for k, v in sorted(templates.items()))}",
        f"- input: `{config.input}`; K = {config.k}; rules {config.rules} (verifiable {config.verifiable_rules}); "
        f"seed {config.seed}; max attempts {config.max_attempts}; conflict rate {config.conflict_rate}",
        "",
        "## Rules",
        "",
        *_table("Rules by type", rule_types, "rules"),
        *_table("Rules by category", categories, "rules"),
        *_table("System prompts by rule count", rules_per_prompt, "prompts"),
        "## Rejections",
        "",
        *(_table("Rejections by stage", reasons, "conversations") or ["None.", ""]),
        "## Token usage and cost",
        "",
        "Summed over every invocation that built this run (a resumed run included).",
        "",
        "| | requests | prompt tokens | completion tokens | cached requests |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| teacher | {teacher_usage.requests} | {teacher_usage.prompt_tokens} | {teacher_usage.completion_tokens} | {teacher_usage.cached_requests} |",
        f"| judge | {judge_usage.requests} | {judge_usage.prompt_tokens} | {judge_usage.completion_tokens} | {judge_usage.cached_requests} |",
        "",
    ]
    prices = config.prices
    if prices is not None:
        cost = usage.prompt_tokens / 1000 * prices[0] + usage.completion_tokens / 1000 * prices[1]
        lines += [f"Estimated cost of these requests: **${cost:,.4f}** "
                  f"(at ${prices[0]}/1k prompt, ${prices[1]}/1k completion tokens; cached requests cost nothing).", ""]
    else:
        lines += ["Pass `--price-per-1k IN,OUT` for a cost estimate.", ""]
    return "\n".join(lines)


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"
