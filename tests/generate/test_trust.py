"""Data you can trust from the default path: a system prompt copying the template's example is
rejected; the judge is calibrated against exact checks in every run and teacher-written rules are used
only when it can be trusted; every judge call is kept for audit."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from rolenrules.cli import main
from rolenrules.evaluate.metrics import wilson_interval
from rolenrules.generate.calibrate import (decide, decide_before_calibration, kappa_interval,
                                           summarise_calibration)
from rolenrules.generate.template_copy import copied_example, template_examples
from rolenrules.prompts import load_template
from rolenrules.testing.scripted import RULE_BANK, last_user, schema_name, teacher_reply

SEEDS = Path(__file__).resolve().parents[1] / "data" / "self_instruct_seed_tasks.jsonl"
EXAMPLE_ROLE = "You are Bella, the order assistant of Fresh Crust Bakery. You help customers place and track orders."
_RULE_LINE = re.compile(r"^(\d+)\. (.*)$", re.MULTILINE)


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _generate(server_url: str, out: Path, *extra: str) -> int:
    with pytest.raises(SystemExit) as info:
        main(["generate", "--input", str(SEEDS), "--teacher", "openai:any", "--base-url", server_url, "--out",
              str(out), "--quiet", "--num-prompts", "2", "--k", "2", "--rules", "3", "--verifiable-rules", "1",
              "--rule-types", "punctuation:no_comma", *extra])
    return int(info.value.code or 0)


def _answer(body: dict[str, Any]) -> str:
    """Half the instructions get a reply with a comma (breaking `no_comma`), fixed after feedback."""
    prompt = last_user(body)
    if "Your last reply broke" in prompt:
        return "Here is the answer again and it has no comma at all."
    return "Sure, here is the answer." if len(prompt) % 2 else "Here is the answer without any comma."


def honest_judge(body: dict[str, Any], number: int) -> bool:
    """Judges like the rule library would: the scripted teacher's own rules pass, `no_comma` needs no comma."""
    prompt = last_user(body)
    reply = prompt.split("<reply>\n", 1)[1].split("\n</reply>", 1)[0]
    rules = dict((int(n), text) for n, text in _RULE_LINE.findall(prompt.split("Decide for each rule")[-1]))
    return rules[number] in {t for t, _ in RULE_BANK} or "," not in reply


def test_the_template_example_is_found_in_the_rendered_template_and_its_copies_are_caught() -> None:
    rendered = load_template("system_prompt").render(instructions=["x"], min_rules=1, max_rules=1, hint="h")
    [example] = template_examples(rendered)
    assert example.role == EXAMPLE_ROLE and "Keep every reply under 80 words." in example.rules
    assert copied_example(EXAMPLE_ROLE, [], [example])
    renamed = "You are Max, the order assistant of Fresh Crust Bakery. You help customers place and track orders."
    assert copied_example(renamed, [], [example])  # a near-duplicate
    assert copied_example("You are Bella, the order assistant of Fresh Crust Bakery.", [], [example])  # a part
    # the example's first sentence, then text of its own (what SmolLM2 wrote in the quickstart)
    assert copied_example("You are Bella, the order assistant of Fresh Crust Bakery. Emails from customers with order "
                          "details, discounts, and promotions, but you don't support any official baking "
                          "organizations. Can only help with bake shop orders.", [], [example])
    assert copied_example("You are Max, the order assistant of Crusty Pizza: you take pizza orders by phone and "
                          "chat and answer questions about toppings.", [], [example]) is None
    # the example's persona kept, the rest rewritten (also seen in the quickstart)
    assert "persona 'Bella'" in copied_example("You are Bella, the order agent of Maxx High Pure Cakes. You assist "
                                               "any customers opening their order", [], [example])
    assert copied_example("You are Isabella, a travel planner.", [], [example]) is None
    assert "placeholder" in copied_example("<name of the assistant>", [], [example])  # the shape, not a role
    assert copied_example("You are Nova, Acme's billing assistant.", ["Keep every reply under 80 words."], [example])
    assert copied_example("You are Nova, Acme's billing assistant for invoices and refunds.",
                          ["Answer in a friendly, professional tone."], [example]) is None


def test_a_system_prompt_copying_the_template_example_is_asked_again_then_rejected(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    script = teacher_reply()
    seeds_seen: list[Any] = []

    def copier(body: dict[str, Any]) -> str:
        if schema_name(body) == "TeacherSystemPrompt":
            seeds_seen.append(body.get("seed"))
            return json.dumps({"role": EXAMPLE_ROLE, "rules": [{"text": "Be kind.", "category": "style"}]})
        return script(body)

    server = fake_server(reply=copier)
    out = tmp_path / "out.jsonl"
    assert _generate(server.base_url, out, "--judged-rules", "on", "--max-attempts", "2") == 0
    assert sorted(seeds_seen, key=str) == [1, 1, None, None]  # each prompt asked twice, the retry reseeded
    assert out.read_text() == ""
    rejects = _rows(tmp_path / "out.jsonl.rejects.jsonl")
    assert len(rejects) == 4
    for reject in rejects:
        assert reject["stage"] == "system_prompt" and "copies the prompt template's example" in reject["reason"]
        assert "Fresh Crust Bakery" in reject["last_reply"]  # what the teacher wrote, to see why
    card = (tmp_path / "out.jsonl.card.md").read_text()
    assert "copied the prompt template's example: 2" in card
    assert "| system prompts with a kept conversation | 0 |" in card
    assert "No conversation was kept: see the rejections below" in card


def test_a_copy_on_the_first_try_only_is_replaced_by_the_retry(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    script = teacher_reply()

    def copies_once(body: dict[str, Any]) -> str:
        if schema_name(body) == "TeacherSystemPrompt" and body.get("seed") is None:
            return json.dumps({"role": EXAMPLE_ROLE, "rules": []})
        return script(body)

    server = fake_server(reply=copies_once)
    out = tmp_path / "out.jsonl"
    assert _generate(server.base_url, out, "--judged-rules", "on") == 0
    kept = _rows(out)
    assert len(kept) == 4 and all("Bakery" not in e["messages"][0]["content"] for e in kept)


def test_auto_leaves_teacher_rules_out_when_the_judge_agrees_little(fake_server, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    server = fake_server(reply=teacher_reply(answer=_answer))  # its judge calls everything followed
    out = tmp_path / "out.jsonl"
    assert _generate(server.base_url, out) == 0
    err = capsys.readouterr().err
    assert "judged rules off: the judge's agreement with exact checks is low" in err
    kept = _rows(out)
    assert kept and all(r["kind"] == "verifiable" for e in kept for r in e["system_prompt"]["rules"])
    assert all(v["source"] == "verifier" for e in kept for v in e["verdicts"])
    card = (tmp_path / "out.jsonl.card.md").read_text()
    assert "**Teacher-written (judged) rules: off** — the judge's agreement with exact checks is low" in card
    assert "## Judge calibration" in card and "> **Warning:** the judge's kappa is below 0.6" in card
    # the false-pass rate: every broken rule was called followed
    assert re.search(r"\| false-pass rate \(a broken rule called followed\) \| 100\.0% \[\d+, 100\] \(n=\d+ broken\) \|",
                     card)


def test_auto_uses_teacher_rules_when_the_judge_agrees_with_exact_checks(fake_server, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    server = fake_server(reply=teacher_reply(answer=_answer, judge_pass=honest_judge))
    out = tmp_path / "out.jsonl"
    assert _generate(server.base_url, out) == 0
    assert "judged rules on: the judge agrees with exact checks (kappa 1.00" in capsys.readouterr().err
    kept = _rows(out)
    assert kept and all(any(r["kind"] == "judged" for r in e["system_prompt"]["rules"]) for e in kept)
    card = (tmp_path / "out.jsonl.card.md").read_text()
    assert "| Cohen's kappa | 1.00" in card and "Warning" not in card
    assert "| agreement | 100.0% [" in card

    # Every judge call is in the transcripts, with its prompt and the raw reply, tagged with its unit of work.
    transcripts = _rows(tmp_path / "out.jsonl.transcripts.jsonl")
    judged = [b for b in server.log if schema_name(b) == "JudgeReply"]
    assert len(transcripts) == len(judged) > 0
    calibration = [t for t in transcripts if "calibration" in t]
    assert sorted({t["calibration"] for t in calibration}) == list(range(8))
    by_conversation = {t["conversation"] for t in transcripts if "conversation" in t}
    assert {e["id"] for e in kept} <= by_conversation
    first = next(t for t in transcripts if "conversation" in t)
    assert first["prompt"][-1]["content"].startswith("The assistant's system prompt:")
    assert json.loads(first["reply"])["verdicts"] and first["judge"] == "openai:any" and "turn" in first


def test_the_embedded_judge_is_not_trusted_and_explicit_choices_win() -> None:
    local = decide_before_calibration("auto", "local:smollm2")
    assert local is not None and not local.on and "embedded model local:smollm2" in local.reason
    assert decide_before_calibration("auto", "openai:gpt-4o-mini") is None
    assert decide_before_calibration("on", "local:smollm2").on
    assert not decide_before_calibration("off", "openai:gpt-4o-mini").on
    assert decide("auto", "openai:x", None, 0.6).on  # --judge-calibration 0: nothing measured


def _item(reference: list[bool | None], judged: list[bool | None], types: list[str]) -> dict[str, Any]:
    return {"reply": "r", "reference": reference, "judged": judged,
            "rules": [{"type": t, "asked": i == 0} for i, t in enumerate(types)]}


def test_calibration_figures_have_n_and_intervals() -> None:
    items = {0: _item([True, True], [True, False], ["a", "b"]), 1: _item([False, False], [False, False], ["a", "b"]),
             2: _item([True, None], [True, True], ["a", "b"])}
    summary = summarise_calibration(items, planned=4)
    a = summary.agreement
    assert (a.n, a.accuracy, a.kappa, a.false_pass_rate, a.reference_fails) == (5, 0.8, pytest.approx(0.6154, abs=1e-3),
                                                                               0.0, 2)
    assert summary.accuracy_ci == pytest.approx(list(wilson_interval(4, 5)))
    assert summary.false_pass_ci == pytest.approx(list(wilson_interval(0, 2)))
    assert not summary.complete and summary.by_type["b"] == {"n": 2, "agree": 1, "reference_fails": 1,
                                                             "false_passes": 0}
    # kappa 0.5 on four pairs: Cohen's standard error sqrt(.75 * .25 / (4 * .25)) = 0.433
    assert kappa_interval([True, True, False, False], [True, False, False, False]) == pytest.approx(
        [0.5 - 1.96 * 0.4330, 1.0], abs=1e-3)
    assert kappa_interval([True, True], [True, True]) is None  # undefined, not certain


def test_the_card_front_matter_is_yaml_and_names_the_source_licence(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    server = fake_server(reply=teacher_reply(answer=_answer))
    out = tmp_path / "out.jsonl"
    assert _generate(server.base_url, out, "--judged-rules", "off", "--source-license", "apache-2.0") == 0
    card = (tmp_path / "out.jsonl.card.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["license"] == "apache-2.0" and front["task_categories"] == ["text-generation"]
    assert front["size_categories"] == ["n<1K"] and front["source_datasets"] == ["self_instruct_seed_tasks.jsonl"]
    assert "rnr version: `" in card and "rnr generate --input" in card and "--source-license apache-2.0" in card
    assert "Not measured: judged rules were off" in card


def test_an_all_rejected_run_says_why_by_rule_type_category_and_attempt(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    server = fake_server(reply=teacher_reply(answer=lambda body: "Always, a comma."))
    out = tmp_path / "out.jsonl"
    assert _generate(server.base_url, out, "--judged-rules", "off", "--max-attempts", "2") == 0
    card = (tmp_path / "out.jsonl.card.md").read_text()
    assert "| kept | 0 (0.0%) |" in card and "No conversation was kept: see the rejections below" in card
    rejections = card.split("## Rejections")[1]
    assert "| `response` | 4 | turn 0: still broke 1 rule(s) after 2 attempts" in rejections
    assert "| `punctuation:no_comma` | 4 |" in rejections.split("### By rule type")[1]
    assert "| `style` | 4 |" in rejections.split("### By rule category")[1]
    assert "| 1 | 4 | 0 | 0.0% |" in card and "| 2 | 4 | 0 | 0.0% |" in card
    assert "| `punctuation:no_comma` | 8 | 8 | 100.0% |" in card  # the rule the teacher cannot follow
    rejects = _rows(tmp_path / "out.jsonl.rejects.jsonl")
    assert all(r["system_prompt"].startswith("You are Nova") and r["last_reply"] == "Always, a comma." for r in rejects)


def test_the_source_licence_is_read_from_a_datasets_folder(tmp_path: Path) -> None:
    from rolenrules.generate import GenerateConfig
    from rolenrules.generate.card import source_dataset, source_license

    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "dataset_info.json").write_text(json.dumps({"license": "cc-by-nc-4.0"}))
    assert source_license(GenerateConfig(input=str(folder), out="o.jsonl")) == "cc-by-nc-4.0"
    assert source_license(GenerateConfig(input=str(folder), out="o.jsonl", source_license="mit")) == "mit"
    assert source_license(GenerateConfig(input="x.jsonl", out="o.jsonl")) == "unknown"
    assert source_dataset("hf://tatsu-lab/alpaca:train") == "tatsu-lab/alpaca"
