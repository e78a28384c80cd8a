from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rolenrules.cli import main
from rolenrules.testing.tiny_model import CHATML_NO_MARKERS, CHATML_TEMPLATE, NO_SYSTEM_TEMPLATE, build_tokenizer
from rolenrules.train.template_audit import (
    FIX_MARKERS,
    FIX_MERGE_SYSTEM,
    SAMPLE_SYSTEM,
    SAMPLE_TURNS,
    TemplateReport,
    audit_template,
)

# A Llama-3.1-like template: a dated block is injected into the system turn, with or without a system prompt.
DATED_SYSTEM = (
    "{{ '<|im_start|>system\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n' }}"
    "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}{% set rest = messages[1:] %}"
    "{% else %}{% set rest = messages %}{% endif %}{{ '<|im_end|>\n' }}"
    "{% for message in rest %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Generation prompt opens a think block that training conversations never contain (train/inference mismatch).
THINK_PROMPT = CHATML_TEMPLATE.replace(
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}",
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n<think>\n' }}")
# Markers present, but the end-of-turn token sits outside them: the model would never learn to stop.
EOT_OUTSIDE = CHATML_TEMPLATE.replace(
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}",
    "{% generation %}{{ message['content'] }}{% endgeneration %}{{ '<|im_end|>' }}")
# No markers, and the last assistant turn is left open: no consistent per-turn structure to re-derive.
OPEN_LAST_TURN = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] }}"
    "{% if not loop.last %}{{ '<|im_end|>\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_end|>\n<|im_start|>assistant\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return build_tokenizer([SAMPLE_SYSTEM] + [t["content"] for t in SAMPLE_TURNS])


def _states(report: TemplateReport, fixed: bool = False) -> dict[str, bool | None]:
    return {c.name: c.passed for c in (report.fixed_checks if fixed else report.checks)}


ALL_OK = {"system_supported": True, "system_preserved": True, "no_injected_text": True,
          "generation_markers": True, "assistant_mask": True, "prefix_consistent": True}


@pytest.mark.parametrize(("template", "failed", "fixes"), [
    (CHATML_TEMPLATE, {}, []),
    (CHATML_NO_MARKERS, {"generation_markers": False, "assistant_mask": False}, [FIX_MARKERS]),
    (NO_SYSTEM_TEMPLATE, {"system_supported": False, "system_preserved": None}, [FIX_MERGE_SYSTEM]),
    (NO_SYSTEM_TEMPLATE.replace("{% generation %}", "").replace("{% endgeneration %}", ""),
     {"system_supported": False, "system_preserved": None, "generation_markers": False, "assistant_mask": False},
     [FIX_MARKERS, FIX_MERGE_SYSTEM]),
])
def test_audit_flags_problems_and_its_fixes_pass_every_check(tokenizer: Any, template: str, failed: dict,
                                                            fixes: list[str]) -> None:
    report = audit_template(tokenizer, chat_template=template)
    assert _states(report) == {**ALL_OK, **failed}
    assert report.fixes == fixes and report.trainable
    assert report.ok is (not fixes)
    if fixes:
        assert _states(report, fixed=True) == ALL_OK
        assert "{% generation %}" in report.fixed_template


def test_marked_copy_renders_exactly_like_the_original(tokenizer: Any) -> None:
    report = audit_template(tokenizer, chat_template=CHATML_NO_MARKERS)
    messages = [{"role": "system", "content": SAMPLE_SYSTEM}, *SAMPLE_TURNS]
    for convo, gen in [(messages, False), (messages[:3], True), (SAMPLE_TURNS[:1], True)]:
        assert (tokenizer.apply_chat_template(convo, chat_template=report.fixed_template, tokenize=False,
                                              add_generation_prompt=gen)
                == tokenizer.apply_chat_template(convo, chat_template=CHATML_NO_MARKERS, tokenize=False,
                                                 add_generation_prompt=gen))


def test_merge_fix_puts_the_system_prompt_verbatim_into_the_first_user_turn(tokenizer: Any) -> None:
    report = audit_template(tokenizer, chat_template=NO_SYSTEM_TEMPLATE)
    text = tokenizer.apply_chat_template([{"role": "system", "content": "Be Ava."}, *SAMPLE_TURNS[:2]],
                                         chat_template=report.fixed_template, tokenize=False)
    assert text.startswith("<|im_start|>user\nBe Ava.\n\nWhat is the capital of France?<|im_end|>\n")


def test_injected_dated_system_block_is_reported(tokenizer: Any) -> None:
    report = audit_template(tokenizer, chat_template=DATED_SYSTEM)
    check = report.check("no_injected_text")
    assert check.passed is False and "Cutting Knowledge Date" in check.detail
    assert "without a system prompt" in check.detail and "with a system prompt" in check.detail
    # The marker fix keeps the injected block, so training still matches inference.
    assert report.fixes == [FIX_MARKERS] and report.check("assistant_mask", fixed=True).passed
    assert any("Cutting Knowledge" in w for w in report.warnings)


def test_inference_prompt_that_is_not_a_prefix_of_training_is_reported(tokenizer: Any) -> None:
    report = audit_template(tokenizer, chat_template=THINK_PROMPT)
    check = report.check("prefix_consistent")
    assert check.passed is False and "<think>" in check.detail
    assert report.trainable  # a warning: training can go on


@pytest.mark.parametrize(("template", "needle"), [
    (EOT_OUTSIDE, "assistant_mask"),
    (OPEN_LAST_TURN, "cannot add {% generation %} markers automatically"),
])
def test_templates_no_fix_can_repair_block_training(tokenizer: Any, template: str, needle: str) -> None:
    report = audit_template(tokenizer, chat_template=template)
    assert not report.trainable
    assert any(needle in problem for problem in report.blocking)


def test_template_check_cli_exit_codes(tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ok:
        main(["template", "check", str(tiny_models["marked"])])
    assert ok.value.code == 0
    assert "ready for system-prompt training" in capsys.readouterr().out
    with pytest.raises(SystemExit) as bad:
        main(["template", "check", str(tiny_models["no_system"])])
    assert bad.value.code == 1
    out = capsys.readouterr().out
    assert "FAIL system_supported" in out and FIX_MERGE_SYSTEM in out
