"""The dataset card: what a run made, what it dropped and why, how far its judge can be trusted,
what it cost, and how to make it again — with Hugging Face dataset-card front matter, so the card
can be pushed beside the data as its README.

Every figure is counted from the run store's records, so the card agrees with the files: a system
prompt "with a kept conversation" is one that has one, rule counts are those of the kept data. The
records are tallied as they stream past (`CardTally`), in the order of the output, so a card of a
million conversations needs no more memory than one of ten.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rolenrules import __version__
from rolenrules.generate.calibrate import CalibrationSummary, JudgedRules, low_kappa
from rolenrules.generate.config import GenerateConfig
from rolenrules.generate.outcomes import PromptDropped, PromptOutcome
from rolenrules.generate.roles import RoleSource
from rolenrules.records import SystemPrompt, Usage

_JUDGED = "judged (teacher-written)"


class CardTally:
    """What the card counts, added up one record at a time: every system prompt (`add_prompt`, in
    index order), then every conversation (`add_conversation`, in output order) with what answering
    it tried. Records are plain JSON objects, as the run store holds them."""

    def __init__(self) -> None:
        self.prompts_planned = self.prompts_written = 0
        self.prompts_dropped: Counter[str] = Counter()
        self.kept = self.rejected = self.failed = 0
        self.reject_prompt_indices: set[int] = set()  # for a run that planned no prompt yet
        self.dedup_prompts: set[int] = set()
        self.kept_prompt_ids: set[str] = set()
        self.rule_counts: list[int] = []  # min and max of rules per kept conversation's system prompt
        self.unchecked = self.attempts = self.regenerated = self.first_pass = self.conflicts = self.pairs = 0
        # Rules in the kept data, once per system prompt.
        self.kept_types: Counter[str] = Counter()
        self.kept_categories: Counter[str] = Counter()
        self.per_prompt: Counter[str] = Counter()
        # Rejections.
        self.by_stage: dict[str, list[Any]] = {}  # stage -> [count, first reason]
        self.rejected_types: Counter[str] = Counter()
        self.rejected_categories: Counter[str] = Counter()
        # Replies checked.
        self.by_attempt: dict[int, list[int]] = defaultdict(lambda: [0, 0])  # attempt -> [replies, passed]
        self.checked: Counter[str] = Counter()
        self.broken: Counter[str] = Counter()
        self.pair_types: Counter[str] = Counter()

    def add_prompt(self, prompt: PromptOutcome) -> None:
        self.prompts_planned += 1
        if isinstance(prompt, SystemPrompt):
            self.prompts_written += 1
        else:
            self.prompts_dropped[_prompt_drop_reason(prompt)] += 1

    def add_conversation(self, record: dict[str, Any], prompt: PromptOutcome | None,
                         tries: list[dict[str, Any]] | None = None, pairs: list[dict[str, Any]] | None = None) -> None:
        """One conversation: a kept record (with `messages`), or a rejected or failed one (with
        `status`); `prompt` is its system prompt's outcome; `tries` and `pairs` what answering it
        tried (finished conversations only)."""
        rules = {r.id: r for r in prompt.rules} if isinstance(prompt, SystemPrompt) else {}
        status = record.get("status", "kept")
        if status != "kept":
            self.reject_prompt_indices.add(record["prompt_index"])
        if status == "failed":
            self.failed += 1
            return
        if status == "kept":
            self._kept(record)
        else:
            self._rejected(record, rules)
        for t in tries or ():
            counts = self.by_attempt[int(t["attempt"])]
            counts[0] += 1
            counts[1] += bool(t["passed"])
            for rule in rules.values():
                self.checked[rule.type or _JUDGED] += 1
            for rule_id in t.get("broken", []):
                if rule_id in rules:
                    self.broken[rules[rule_id].type or _JUDGED] += 1
        for pair in pairs or ():
            self.pairs += 1
            for rule in pair["metadata"].get("failed_rules", []):
                self.pair_types[rule.get("type") or _JUDGED] += 1

    def _kept(self, record: dict[str, Any]) -> None:
        self.kept += 1
        sp = record.get("system_prompt")
        metadata = record.get("metadata") or {}
        if sp is not None:
            self.rule_counts = [min([len(sp["rules"]), *self.rule_counts[:1]]),
                                max([len(sp["rules"]), *self.rule_counts[1:]])]
            if sp["id"] not in self.kept_prompt_ids:
                self.kept_prompt_ids.add(sp["id"])
                self.per_prompt[str(len(sp["rules"]))] += 1
                for rule in sp["rules"]:
                    self.kept_types[rule.get("type") or _JUDGED] += 1
                    self.kept_categories[rule.get("category", "other")] += 1
        self.unchecked += any(v.get("passed") is None for v in record.get("verdicts", []))
        attempts = metadata.get("attempts", [])
        self.attempts += len(attempts)
        self.regenerated += sum(1 for a in attempts if a > 1)
        self.first_pass += all(a == 1 for a in metadata.get("attempts", [1]))
        self.conflicts += bool(metadata.get("conflict"))

    def _rejected(self, record: dict[str, Any], rules: dict[str, Any]) -> None:
        self.rejected += 1
        stage = record["stage"]
        if stage == "dedup":
            self.dedup_prompts.add(record["prompt_index"])
        self.by_stage.setdefault(stage, [0, record["reason"]])[0] += 1
        for verdict in (record.get("details") or {}).get("verdicts", []):
            rule = rules.get(verdict.get("rule_id", ""))
            if rule is None:
                continue
            suffix = " (unscored)" if verdict.get("passed") is None else ""
            self.rejected_types[(rule.type or _JUDGED) + suffix] += 1
            self.rejected_categories[rule.category + suffix] += 1

    @property
    def total(self) -> int:
        return self.kept + self.rejected + self.failed


@dataclass(frozen=True)
class CardInputs:
    config: GenerateConfig
    #: Every prompt and conversation of the run, tallied.
    tally: CardTally
    calibration: CalibrationSummary | None
    calibration_failed: int
    judged_rules: JudgedRules | None
    teacher: str
    judge: str
    #: The run's totals over every invocation.
    teacher_usage: Usage
    judge_usage: Usage
    templates: dict[str, str]
    command: str | None = None
    pairs_written: bool = False
    #: The clients' throughput and time at the servers vs in this process, this invocation (when the
    #: client layer measures it: `LLM.stats()`).
    timing: str | None = None
    #: Where the roles came from (`--roles`), as the card's line (`roles_line`).
    roles: str | None = None


def size_category(n: int) -> str:
    """The Hugging Face `size_categories` bucket of n records."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]
    return next((label for bound, label in bounds if n < bound), "n>1T" if n >= 10**12 else "100M<n<1B")


def source_dataset(input_path: str) -> str:
    """`hf://owner/name[:split]` -> `owner/name`; a local file or folder -> its name."""
    if input_path.startswith("hf://"):
        return input_path[len("hf://"):].split(":", 1)[0]
    return Path(input_path.rstrip("/")).name


def source_license(config: GenerateConfig) -> str:
    """--source-license, else the `license` a `datasets` folder records, else `unknown`."""
    if config.source_license:
        return config.source_license
    info = Path(config.input) / "dataset_info.json"
    if not config.input.startswith("hf://") and info.is_file():
        try:
            found = json.loads(info.read_text(encoding="utf-8")).get("license")
        except (OSError, ValueError, AttributeError):
            found = None
        if isinstance(found, str) and found.strip():
            return found.strip()
    return "unknown"


def front_matter(inputs: CardInputs) -> str:
    import yaml

    config = inputs.config
    meta = {
        "license": source_license(config),
        "pretty_name": f"RoleNRules data ({config.out_path.name})",
        "task_categories": ["text-generation"],
        "tags": ["rolenrules", "synthetic", "system-prompts", "rule-following"],
        "size_categories": [size_category(inputs.tally.kept)],
        "source_datasets": [source_dataset(config.input)],
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def _ci(interval: list[float] | None) -> str:
    return f" [{100 * interval[0]:.0f}, {100 * interval[1]:.0f}]" if interval else ""


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return []
    align = ["---"] + ["---:"] * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _counter_rows(counts: Counter[str], code: bool = True) -> list[list[Any]]:
    return [[f"`{k}`" if code else k, v] for k, v in counts.most_common()]


def _oneline(text: str, limit: int = 160) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_card(inputs: CardInputs) -> str:
    """The card's markdown, front matter first."""
    config, tally = inputs.config, inputs.tally

    lines = [front_matter(inputs), f"# Dataset card: `{config.out_path.name}`", ""]
    if tally.failed or inputs.calibration_failed:
        parts = [f"{tally.failed} conversation(s)"] if tally.failed else []
        parts += [f"{inputs.calibration_failed} judge-calibration check(s)"] if inputs.calibration_failed else []
        lines += [f"> **Incomplete:** {' and '.join(parts)} failed on server errors and are not counted here; run "
                  "the same command again to retry them.", ""]
    lines += [
        "Role-and-rule (RoleNRules) training data made by `rnr generate`. Each record is a conversation under a",
        "system prompt (a role plus rules) with `messages` (system first, ready for TRL), the structured",
        "`system_prompt`, per-rule `verdicts` and provenance `metadata`. A record is kept only when its reply",
        "followed every rule" + (" that could be checked." if not config.drop_unscored else
                                 ", each one checked (exactly by the rule library, or by the judge)."),
        "",
    ]
    decision = inputs.judged_rules
    if decision is not None:
        lines += [f"**Teacher-written (judged) rules: {'on' if decision.on else 'off'}** — {decision.reason}."
                  + ("" if decision.on else " Every rule comes from the rule library and is checked exactly."), ""]
    else:
        lines += ["**Teacher-written (judged) rules: not decided yet** — judge calibration did not finish.", ""]
    if inputs.roles:
        lines += [inputs.roles, ""]

    lines += _summary(inputs)
    lines += _reproduce(inputs)
    lines += _calibration(inputs)
    lines += _rules_section(inputs)
    lines += _rejections(inputs)
    lines += _attempts(inputs)
    lines += _pairs(inputs)
    lines += _cost(inputs)
    return "\n".join(lines)


def roles_line(roles: RoleSource) -> str:
    """The card's line on where the roles came from."""
    if roles.kind == "teacher":
        return f"**Roles: written by the teacher** ({roles.reason})."
    where = "rnr's built-in role library" if roles.kind == "library" else f"`{roles.path}`"
    return (f"**Roles: drawn from {where}** ({len(roles.roles)} roles) — {roles.reason}. The teacher wrote no role; "
            "each is one short deployment role, not fitted to the requests.")


def _summary(inputs: CardInputs) -> list[str]:
    config, t = inputs.config, inputs.tally
    dropped = Counter(t.prompts_dropped)
    if t.dedup_prompts:
        dropped["near-duplicate of an earlier prompt"] = len(t.dedup_prompts)
    conflicts, pairs, total = t.conflicts, t.pairs, t.total
    low, high = config.rules_range
    rows = [
        ["conversations planned (seed instructions x system prompts)", total],
        ["kept", f"{t.kept} ({_pct(t.kept, total)})"],
        [f"rejected (see `{config.rejects_path.name}`)", f"{t.rejected} ({_pct(t.rejected, total)})"],
        ["failed on server errors, retried by the next run", f"{t.failed} ({_pct(t.failed, total)})"],
        ["kept with a rule nobody could check", f"{t.unchecked} ({_pct(t.unchecked, t.kept)} of kept)"],
        ["system prompts planned", t.prompts_planned or len(t.reject_prompt_indices)],
        ["system prompts made (a role and its rules)", t.prompts_written],
        ["system prompts dropped", f"{sum(dropped.values())} ("
         + (", ".join(f"{k}: {v}" for k, v in dropped.items()) or "none") + ")"],
        ["system prompts with a kept conversation", len(t.kept_prompt_ids)],
        ["rules per kept conversation's system prompt",
         f"{t.rule_counts[0]}–{t.rule_counts[1]} (asked for {low}–{high})" if t.rule_counts
         else f"none kept (asked for {low}–{high})"],
        ["kept on the first attempt", f"{t.first_pass} ({_pct(t.first_pass, t.kept)})"],
        ["kept turns regenerated with feedback", f"{t.regenerated} of {t.attempts} ({_pct(t.regenerated, t.attempts)})"],
        ["kept conversations with a conflict turn", conflicts],
        ["preference pairs", f"{pairs}" + (f" (in `{config.pairs_path.name}`)" if inputs.pairs_written
                                           and config.pairs_path else " (not written: pass --pairs)")],
    ]
    return ["## Summary", "", *_table(["", ""], rows)]


def _prompt_drop_reason(prompt: PromptDropped) -> str:
    if prompt.status == "failed":
        return "server error (retried by the next run)"
    if "copied the prompt template's example" in prompt.reason:
        return "copied the prompt template's example"
    return "teacher's reply unusable"


def _reproduce(inputs: CardInputs) -> list[str]:
    config = inputs.config
    lines = ["## How it was made", ""]
    if inputs.command:
        lines += ["```bash", inputs.command, "```", ""]
    lines += [
        f"- rnr version: `{__version__}`",
        f"- teacher: `{inputs.teacher}`; judge: `{inputs.judge}`",
        f"- prompt templates: {', '.join(f'`{k}@{v}`' for k, v in sorted(inputs.templates.items()))}",
        f"- input: `{config.input}` (licence: {source_license(config)}); K = {config.k}; rules {config.rules} "
        f"(from the rule library: {'all' if inputs.judged_rules and not inputs.judged_rules.on else config.verifiable_rules}); "
        f"seed {config.seed}; max attempts {config.max_attempts}; best of {config.best_of}; conflict rate "
        f"{config.conflict_rate}; unscored rules {'rejected' if config.drop_unscored else 'kept'}",
        f"- judge transcripts (every judge call's prompt and raw reply): `{config.transcripts_path.name}`",
        "",
    ]
    return lines


def _calibration(inputs: CardInputs) -> list[str]:
    config, summary = inputs.config, inputs.calibration
    lines = ["## Judge calibration", ""]
    if summary is None:
        if inputs.judged_rules is not None and not inputs.judged_rules.on:
            why = "judged rules were off, so the judge checked nothing in this run"
        elif config.judge_calibration == 0:
            why = "--judge-calibration 0"
        else:
            why = "it did not run"
        return lines + [f"Not measured: {why}.", ""]
    a = summary.agreement
    lines += [f"Before the run, the judge (`{inputs.judge}`) was asked about {a.n + a.judge_unscored} rule-library "
              f"rules on {summary.done} teacher replies (of {summary.planned} planned) whose verdict the rule library "
              "knows" + ("; rules the reply was not written to follow were mixed in, so that some are broken"
                         if summary.extra_rules else "") + ". Intervals are 95% (Wilson; kappa: Cohen's "
              "large-sample standard error).", ""]
    kappa = "n/a" if a.kappa is None else f"{a.kappa:.2f}" + (
        f" [{summary.kappa_ci[0]:.2f}, {summary.kappa_ci[1]:.2f}]" if summary.kappa_ci else "")
    rows = [
        ["rules both scored (n)", a.n],
        ["agreement", f"{_pct(a.accuracy or 0, 1) if a.accuracy is not None else 'n/a'}{_ci(summary.accuracy_ci)}"],
        ["Cohen's kappa", kappa],
        ["false-pass rate (a broken rule called followed)",
         f"{_pct(a.false_pass_rate or 0, 1) if a.false_pass_rate is not None else 'n/a'}{_ci(summary.false_pass_ci)}"
         f" (n={a.reference_fails} broken)"],
        ["false-fail rate (a followed rule called broken)",
         f"{_pct(a.false_fail_rate or 0, 1) if a.false_fail_rate is not None else 'n/a'} (n={a.reference_passes} followed)"],
        ["rules the judge left unscored", a.judge_unscored],
    ]
    lines += _table(["", ""], rows)
    if low_kappa(summary, config.min_judge_kappa):
        problem = (f"is below {config.min_judge_kappa:g}: it agrees little with exact checks" if a.kappa is not None
                   else "could not be measured (the known verdicts, or the judge's, were all the same)")
        used = (" (they were used anyway: --judged-rules on)." if inputs.judged_rules and inputs.judged_rules.on
                else ".")
        lines += [f"> **Warning:** the judge's kappa {problem}, so its verdicts on teacher-written rules are "
                  f"doubtful{used}", ""]
    type_rows = [[f"`{t}`", r["n"], _pct(r["agree"], r["n"]), f"{r['false_passes']} of {r['reference_fails']}"]
                 for t, r in summary.by_type.items()]
    lines += _table(["rule type", "n", "agreement", "false passes"], type_rows)
    return lines


def _rules_section(inputs: CardInputs) -> list[str]:
    t = inputs.tally
    lines = ["## Rules in the kept data", ""]
    if not t.kept:
        return lines + ["No conversation was kept: see the rejections below for why.", ""]
    types, categories, per_prompt = t.kept_types, t.kept_categories, t.per_prompt
    lines += ["Counted once per system prompt with a kept conversation.", ""]
    lines += ["### Rules by type", "", *_table(["rule type", "rules"], _counter_rows(types))]
    lines += ["### Rules by category", "", *_table(["category", "rules"], _counter_rows(categories))]
    lines += ["### System prompts by rule count", "",
              *_table(["rules", "system prompts"], sorted(([k, v] for k, v in per_prompt.items()),
                                                        key=lambda r: int(r[0])))]
    return lines


def _rejections(inputs: CardInputs) -> list[str]:
    t = inputs.tally
    lines = ["## Rejections", ""]
    if not t.rejected:
        return lines + ["None.", ""]
    rows = [[f"`{stage}`", count, _oneline(reason)]
            for stage, (count, reason) in sorted(t.by_stage.items(), key=lambda kv: -kv[1][0])]
    lines += ["### By stage", "", *_table(["stage", "conversations", "for example"], rows)]
    types, categories = t.rejected_types, t.rejected_categories
    if types:
        lines += ["Rules still broken after the last attempt (a conversation may break several):", ""]
        lines += ["### By rule type", "", *_table(["rule type", "rejected conversations"], _counter_rows(types))]
        lines += ["### By rule category", "", *_table(["category", "rejected conversations"],
                                                         _counter_rows(categories))]
    return lines


def _attempts(inputs: CardInputs) -> list[str]:
    t = inputs.tally
    if not t.by_attempt:
        return []
    lines = ["## Replies checked", ""]
    rows = [[k, n, passed, _pct(passed, n)] for k, (n, passed) in sorted(t.by_attempt.items())]
    lines += ["### Pass rate per attempt", "",
              "Attempt 1 is the first reply (with --best-of, each sample); later attempts are regenerated with "
              "feedback naming the broken rules.", "",
              *_table(["attempt", "replies", "followed every rule", "pass rate"], rows)]
    checked, broken = t.checked, t.broken
    rows = [[f"`{label}`", checked[label], broken[label], _pct(broken[label], checked[label])]
            for label in sorted(checked, key=lambda k: (-broken[k] / checked[k], k))]
    lines += ["### Rules broken, by type (every reply checked)", "",
              "Which rules the teacher cannot follow.", "",
              *_table(["rule type", "times checked", "broken", "broken share"], rows)]
    return lines


def _pairs(inputs: CardInputs) -> list[str]:
    pairs, types = inputs.tally.pairs, inputs.tally.pair_types
    if not pairs:
        return []
    where = (f"written to `{inputs.config.pairs_path.name}`" if inputs.pairs_written and inputs.config.pairs_path
             else "not written (pass --pairs)")
    return ["## Preference pairs", "",
            f"{pairs} pairs ({where}): a reply that followed every rule (`chosen`) and one that broke some "
            "(`rejected`) for the same prompt, for `rnr train --method dpo`.", "",
            *_table(["rule the rejected reply broke", "pairs"], _counter_rows(types))]


def _cost(inputs: CardInputs) -> list[str]:
    config = inputs.config
    t, j = inputs.teacher_usage, inputs.judge_usage
    usage = t.add(j)
    lines = ["## Token usage and cost", "", "Summed over every invocation that built this run (a resumed run included).",
             "",
             *_table(["", "requests", "prompt tokens", "completion tokens", "cached requests"], [
                 ["teacher", t.requests, f"{t.prompt_tokens:,}", f"{t.completion_tokens:,}", t.cached_requests],
                 ["judge", j.requests, f"{j.prompt_tokens:,}", f"{j.completion_tokens:,}", j.cached_requests]])]
    if inputs.timing:
        lines += [f"Client timing of this invocation: {inputs.timing}.", ""]
    cost = config.cost(usage.prompt_tokens, usage.completion_tokens)
    if cost is not None:
        prices = config.prices
        assert prices is not None
        lines += [f"Estimated cost of these requests: **${cost:,.4f}** (at ${prices[0]:g} per 1M prompt and "
                  f"${prices[1]:g} per 1M completion tokens; cached requests cost nothing).", ""]
    else:
        lines += ["Pass `--price-per-1m IN,OUT` (USD per million tokens) for a cost estimate.", ""]
    return lines
