"""Chat-template audit: does this template carry a system prompt and mask assistant tokens right?

Many templates mishandle system prompts: Gemma's rejects the system role, some Llama templates
inject a dated or default system block, many lack the `{% generation %}` markers TRL needs for
assistant-only loss, and some render the prompt differently at inference than inside a training
conversation. The audit renders a sample conversation and checks each of these; `fixed_template`
is what `rnr train` trains with (and saves), re-checked after the fixes.

    report = audit_template("Qwen/Qwen2.5-0.5B-Instruct")
    print(report.summary())
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rolenrules.errors import ConfigError
from rolenrules.train._template_fix import (
    MERGE_SYSTEM_PREAMBLE,
    TemplateFixError,
    add_generation_markers,
    trl_training_template,
)

SAMPLE_SYSTEM = ("You are Ava, a patient geography tutor.\nRules:\n1. Answer in one sentence.\n"
                 "2. Never use emojis.")
SAMPLE_TURNS = [
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "The capital of France is Paris."},
    {"role": "user", "content": "And of Spain?"},
    {"role": "assistant", "content": "Madrid is the capital of Spain."},
]

#: Scaffolding words that are not injected text: role names used by common templates.
_ROLE_WORDS = {"system", "user", "assistant", "model", "human", "gpt", "bot", "inst", "sys", "developer", "tool"}
_GENERATION_RE = re.compile(r"\{%-?\s*generation\s*-?%\}")

FIX_MERGE_SYSTEM = "merge_system"
FIX_MARKERS = "add_generation_markers"


@dataclass
class Check:
    """One audit check. `passed` is None when it could not apply (e.g. system text on a template without system).

    `blocking` marks a failure training must not go on with (after fixes): a model that would never
    see its system prompt, or never be trained on its replies or on the token that ends them.
    """

    name: str
    passed: bool | None
    detail: str = ""
    blocking: bool = False


@dataclass
class TemplateReport:
    """What the audit found on the original template, what `rnr train` would change, and the result."""

    source: str
    checks: list[Check]
    fixes: list[str] = field(default_factory=list)
    fixed_template: str | None = None
    fixed_checks: list[Check] = field(default_factory=list)
    blocking: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The template is fine as it is: no fix needed and nothing blocking."""
        return not self.fixes and not self.blocking and all(c.passed is not False for c in self.checks)

    @property
    def trainable(self) -> bool:
        """`rnr train` can train with it (after its fixes, when `template_fix` is on)."""
        return not self.blocking

    def check(self, name: str, *, fixed: bool = False) -> Check:
        for item in (self.fixed_checks if fixed and self.fixed_checks else self.checks):
            if item.name == name:
                return item
        raise KeyError(name)

    @property
    def warnings(self) -> list[str]:
        final = self.fixed_checks or self.checks
        return [f"{c.name}: {c.detail}" for c in final
                if c.passed is False and not c.blocking]

    def summary(self) -> str:
        lines = [f"chat template of {self.source}:"]
        for item in self.checks:
            mark = {True: "ok  ", False: "FAIL", None: "n/a "}[item.passed]
            lines.append(f"  {mark} {item.name}" + (f": {item.detail}" if item.detail else ""))
        if self.fixes:
            lines.append("  fixes rnr train applies: " + ", ".join(self.fixes))
            for item in self.fixed_checks:
                if item.passed is False:
                    lines.append(f"  after fixes FAIL {item.name}: {item.detail}")
        for problem in self.blocking:
            lines.append(f"  cannot train: {problem}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "ok": self.ok, "trainable": self.trainable, "fixes": self.fixes,
                "blocking": self.blocking, "warnings": self.warnings,
                "checks": [vars(c) for c in self.checks], "fixed_checks": [vars(c) for c in self.fixed_checks]}


def load_tokenizer(model: str | Path) -> Any:
    """The tokenizer of a model spec: a folder, `smollm2`/`hf:smollm2`/`local:smollm2`, a .gguf file or
    a cached hub id (see `llm.hf_models`; never waits on an unreachable hub)."""
    from transformers import AutoTokenizer

    from rolenrules.llm.hf_models import pretrained_source

    source = pretrained_source(str(model), needs="tokenizer_config.json")
    try:
        return AutoTokenizer.from_pretrained(source.ref, local_files_only=source.local_files_only)
    except Exception as error:  # transformers raises OSError/ValueError/hub errors for the same cause
        raise ConfigError(f"{model}: cannot load tokenizer: {str(error).splitlines()[0][:300]}") from None


def has_generation_markers(template: str) -> bool:
    return _GENERATION_RE.search(template) is not None


class _Renderer:
    """Renders and tokenises conversations with a given template through the tokenizer."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.added = sorted(tokenizer.get_added_vocab(), key=len, reverse=True)

    def text(self, template: str, messages: list[dict[str, str]], gen: bool = False) -> str:
        return self.tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                                  add_generation_prompt=gen)

    def ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def masked(self, template: str, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
        out = self.tokenizer.apply_chat_template(messages, chat_template=template, tokenize=True, return_dict=True,
                                                 return_assistant_tokens_mask=True)
        return list(out["input_ids"]), list(out.get("assistant_masks") or [])

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def _conversation(with_system: bool) -> list[dict[str, str]]:
    return ([{"role": "system", "content": SAMPLE_SYSTEM}] if with_system else []) + [dict(m) for m in SAMPLE_TURNS]


def _check_system(r: _Renderer, template: str) -> tuple[Check, Check]:
    try:
        text = r.text(template, _conversation(True))
    except Exception as error:  # jinja2 raise_exception, or a template error on the system role
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        return (Check("system_supported", False, f"rendering a system message fails: {reason}", blocking=True),
                Check("system_preserved", None, "no system role"))
    supported = Check("system_supported", True)
    if SAMPLE_SYSTEM in text:
        return supported, Check("system_preserved", True)
    return supported, Check("system_preserved", False, "the system text does not appear verbatim in the rendering",
                            blocking=True)


def _scaffolding(text: str, contents: list[str]) -> list[str]:
    """The rendered text between (and around) the message contents, in order."""
    pieces, at = [], 0
    for content in contents:
        found = text.find(content, at)
        if found < 0:
            continue
        pieces.append(text[at:found])
        at = found + len(content)
    pieces.append(text[at:])
    return pieces


def _injected(r: _Renderer, piece: str) -> str | None:
    stripped = piece
    for token in r.added:
        stripped = stripped.replace(token, " ")
    words = [w for w in re.findall(r"[A-Za-z]{2,}", stripped) if w.lower() not in _ROLE_WORDS]
    # Three or more words of prose outside every message is text the template adds on its own.
    return " ".join(stripped.split()) if len(words) >= 3 else None


def _check_injection(r: _Renderer, template: str, system_ok: bool) -> Check:
    found = []
    for with_system in ([True, False] if system_ok else [False]):
        messages = _conversation(with_system)
        try:
            text = r.text(template, messages)
        except Exception:
            continue
        for piece in _scaffolding(text, [m["content"] for m in messages]):
            injected = _injected(r, piece)
            if injected:
                found.append(f"{'with' if with_system else 'without'} a system prompt: {injected[:160]!r}")
    if found:
        return Check("no_injected_text", False, "; ".join(found))
    return Check("no_injected_text", True)


def _end_of_turn(r: _Renderer, text: str, start: int) -> str | None:
    """The text from `start` through the first special token (the end-of-turn), or None if there is none."""
    best = None
    for token in r.added:
        at = text.find(token, start)
        if at >= 0 and (best is None or at < best[0]):
            best = (at, at + len(token))
    return text[start:best[1]] if best else None


def _check_mask(r: _Renderer, template: str, with_system: bool) -> Check:
    name = "assistant_mask"
    if not has_generation_markers(template):
        return Check(name, False, "empty: the template has no {% generation %} markers", blocking=True)
    messages = _conversation(with_system)
    try:
        ids, mask = r.masked(template, messages)
        text = r.text(template, messages)
    except Exception as error:
        return Check(name, False, f"rendering failed: {str(error).splitlines()[0][:200]}", blocking=True)
    runs: list[list[int]] = []
    for i, (token, flag) in enumerate(zip(ids, mask, strict=False)):  # no mask at all: no runs
        if flag:
            if i == 0 or not mask[i - 1]:
                runs.append([])
            runs[-1].append(token)
    got = [r.decode(run) for run in runs]
    if not got:
        return Check(name, False, "empty: no token is marked as assistant", blocking=True)
    expected, others, at = [], [], 0
    for message in messages:
        found = text.find(message["content"], at)
        if found < 0:
            continue
        at = found + len(message["content"])
        if message["role"] != "assistant":
            others.append(message["content"])
            continue
        tail = _end_of_turn(r, text, at)
        if tail is None:
            return Check(name, False, "no end-of-turn token follows the assistant reply, so the model would "
                         "never learn to stop", blocking=True)
        expected.append(message["content"] + tail)
    if got == expected:
        return Check(name, True, f"{len(got)} replies, each with its end-of-turn token")
    if [g.strip() for g in got] == [e.strip() for e in expected]:
        return Check(name, True, "replies and end-of-turn tokens (up to surrounding whitespace)")
    # Replies and end-of-turn tokens all trained, nothing of the prompt: extra template text inside the
    # assistant span (empty think tags, a newline) is a warning, not a reason to stop.
    covered = len(got) == len(expected) and all(e.strip() in g for g, e in zip(got, expected, strict=True))
    leaked = [o for o in others if any(o in g for g in got)]
    if covered and not leaked:
        return Check(name, False, f"also covers template text: masked {got!r}, replies {expected!r}")
    return Check(name, False, f"masked {got!r}, expected exactly {expected!r}", blocking=True)


def _check_prefix(r: _Renderer, template: str, with_system: bool) -> Check:
    messages = _conversation(with_system)
    try:
        full = r.text(template, messages)
        full_ids = r.ids(full)
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            prompt = r.text(template, messages[:i], gen=True)
            turn = sum(m["role"] == "assistant" for m in messages[:i]) + 1
            if not full.startswith(prompt):
                cut = next((k for k, (a, b) in enumerate(zip(prompt, full, strict=False)) if a != b),
                           min(len(prompt), len(full)))
                return Check("prefix_consistent", False,
                             f"reply {turn}: the inference prompt renders {prompt[cut:cut + 60]!r} where training "
                             f"has {full[cut:cut + 60]!r}")
            prompt_ids = r.ids(prompt)
            if full_ids[: len(prompt_ids)] != prompt_ids:
                return Check("prefix_consistent", False,
                             f"reply {turn}: the inference prompt tokenises differently from the same text "
                             "inside the training conversation")
    except Exception as error:
        return Check("prefix_consistent", False, f"rendering failed: {str(error).splitlines()[0][:200]}")
    return Check("prefix_consistent", True)


def _run_checks(r: _Renderer, template: str) -> list[Check]:
    supported, preserved = _check_system(r, template)
    system_ok = bool(supported.passed and preserved.passed)
    markers = Check("generation_markers", has_generation_markers(template),
                    "" if has_generation_markers(template) else "no {% generation %} markers (TRL's assistant-only "
                    "loss needs them)")
    return [supported, preserved, _check_injection(r, template, system_ok), markers,
            _check_mask(r, template, system_ok), _check_prefix(r, template, system_ok)]


_MASK_CHECKS = ("generation_markers", "assistant_mask")


def _checks(r: _Renderer, template: str, assistant_loss: bool) -> list[Check]:
    checks = _run_checks(r, template)
    if assistant_loss:
        return checks
    return [Check(c.name, None, "not needed: the trainer splits prompt and reply itself") if c.name in _MASK_CHECKS
            else c for c in checks]


def _marked_copy(r: _Renderer, template: str, with_system: bool) -> str:
    curated = trl_training_template(r.tokenizer, template)
    if curated:
        return curated
    return add_generation_markers(r.text, template, with_system=with_system, added_tokens=r.added)


def audit_template(model_or_tokenizer: str | Path | Any, *, chat_template: str | None = None,
                   assistant_loss: bool = True) -> TemplateReport:
    """Audit the chat template of a model folder, hub id or tokenizer (or `chat_template` in its place).

    `assistant_loss=False` is for objectives that split prompt from reply themselves (DPO, GRPO): the
    `{% generation %}` markers and the assistant mask are then reported but neither fixed nor blocking.
    """
    if isinstance(model_or_tokenizer, (str, Path)):
        tokenizer, source = load_tokenizer(model_or_tokenizer), str(model_or_tokenizer)
    else:
        tokenizer, source = model_or_tokenizer, getattr(model_or_tokenizer, "name_or_path", "tokenizer") or "tokenizer"
    template = chat_template or tokenizer.chat_template
    if isinstance(template, dict):
        template = template.get("default")
    if not template:
        missing = Check("chat_template", False, "the tokenizer has no chat template")
        return TemplateReport(source, [missing], blocking=["no chat template: pass --chat-template FILE.jinja"])
    r = _Renderer(tokenizer)
    checks = _checks(r, template, assistant_loss)
    report = TemplateReport(source, checks)
    by_name = {c.name: c for c in checks}
    system_ok = bool(by_name["system_supported"].passed and by_name["system_preserved"].passed)

    fixed = template
    if assistant_loss and not has_generation_markers(template):
        try:
            fixed = _marked_copy(r, template, system_ok)
            report.fixes.append(FIX_MARKERS)
        except TemplateFixError as error:
            report.blocking.append(f"cannot add {{% generation %}} markers automatically ({error}); pass "
                                   "--chat-template FILE.jinja with the assistant reply and its end-of-turn token "
                                   "inside {% generation %}...{% endgeneration %}")
    if not system_ok:
        fixed = MERGE_SYSTEM_PREAMBLE + fixed
        report.fixes.append(FIX_MERGE_SYSTEM)
    if report.fixes and not report.blocking:
        report.fixed_template = fixed
        report.fixed_checks = _checks(r, fixed, assistant_loss)
    if not report.blocking:
        final = report.fixed_checks or checks
        report.blocking += [f"{c.name}: {c.detail}" for c in final if c.passed is False and c.blocking]
    return report
