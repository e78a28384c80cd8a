"""Built-in tasks read from the shared data folder, and scored runs of them."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from _eval_builders import run_cli
from rolenrules.errors import ConfigError
from rolenrules.evaluate import EvalConfig, bench_rules, load_task, read_results, run_eval
from rolenrules.llm import BackendOptions, make_llm


@pytest.mark.parametrize(("task", "count", "first_roles"), [
    ("ifeval", 540, ["user"]),
    ("sys-ifeval", 541, ["system", "user"]),
    ("realguardrails", 239, ["system", "user"]),
    ("distractors", 504, ["system", "user"]),
])
def test_tasks_load_all_rows(shared_data: Path, task: str, count: int, first_roles: list[str]) -> None:
    examples = load_task(task, shared_data)
    assert len(examples) == count
    assert len({e.id for e in examples}) == count
    assert [m.role for m in examples[0].messages][:2] == first_roles
    assert all(e.messages[-1].role == "user" and bench_rules(e) for e in examples)
    assert {e.metadata["task"] for e in examples} == {task}


def test_ifeval_instructions_become_verifiable_rules(shared_data: Path) -> None:
    [first] = load_task("sys-ifeval", shared_data, limit=1)
    rules = bench_rules(first)
    assert [r.type for r in rules] == first.metadata["ifeval"]["instruction_id_list"] == [
        "punctuation:no_comma", "detectable_format:number_highlighted_sections", "length_constraints:number_words"]
    assert all(r.kind == "verifiable" for r in rules)
    assert rules[2].params["num_words"] == 300 and rules[2].params["relation"] == "at least"
    assert first.messages[0].content.startswith("Do not use any commas.")


def test_realguardrails_guardrails_are_judged_and_banlists_verifiable(shared_data: Path) -> None:
    examples = load_task("realguardrails", shared_data)
    kinds = Counter(r.kind for e in examples for r in bench_rules(e))
    assert kinds["verifiable"] == 105                # one forbidden-words rule per banlist
    first = examples[0]
    banned = [r for r in bench_rules(first) if r.kind == "verifiable"][0]
    assert "cherish" in json.dumps(banned.params)
    assert [r.text for r in bench_rules(first) if r.kind == "judged"][0].startswith('Never says "I love you"')
    subsets = Counter(e.metadata["subset"] for e in load_task("distractors", shared_data))
    assert subsets == {"roleplay/multi-turn": 126, "roleplay/single-turn": 126, "translation/multi-turn": 126,
                       "translation/single-turn": 126}


def test_missing_data_dir_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RNR_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="--data-dir"):
        load_task("ifeval")
    monkeypatch.setenv("RNR_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=str(tmp_path / "nowhere")):
        load_task("sys-ifeval")


REPLIES = [
    "Hello world. This is a short answer",
    "HELLO, THIS IS ALL CAPITALS. *highlighted one* and *highlighted two* and *three*.",
    "```json\n{\"answer\": 1}\n```",
]


def _model_reply(body: dict[str, Any]) -> str:
    return REPLIES[len(body["messages"][-1]["content"]) % len(REPLIES)]


def test_sys_ifeval_run_writes_official_ifeval_summary(shared_data: Path, tmp_path: Path, fake_server: Any) -> None:
    from rolenrules.rules.ifeval_accuracy import accuracy_summary, score_rows

    server = fake_server(reply=_model_reply)
    model = make_llm("openai:m", BackendOptions(base_url=server.base_url, max_retries=0))
    examples = load_task("sys-ifeval", shared_data, limit=30)
    out = run_eval(examples, tmp_path / "run", model=model, config=EvalConfig(resamples=0), bench_name="sys-ifeval")
    summary = json.loads((out / "summary.json").read_text())
    results = read_results(out / "results.jsonl")
    rows = [{**r.metadata["ifeval"], "response": r.response} for r in results]
    expected = accuracy_summary(rows, score_rows(rows))
    assert summary["ifeval"]["sys-ifeval"] == json.loads(json.dumps(expected))
    # the pass-rate is IFEval's prompt-level strict accuracy, the rule accuracy its instruction level
    assert summary["pass_rate"]["value"] == pytest.approx(expected["prompt_level_strict"])
    assert summary["rule_accuracy"]["value"] == pytest.approx(expected["instruction_level_strict"])
    assert summary["role_adherence"] is None                 # constraint-only: no role to judge
    assert {rule.source for r in results for rule in r.rules} <= {"verifier", "unscored"}


def test_cli_ifeval_beside_sys_ifeval_and_realguardrails_with_judge(shared_data: Path, tmp_path: Path,
                                                                    fake_server: Any) -> None:
    def reply(body: dict[str, Any]) -> str:
        fmt = (body.get("response_format") or {}).get("json_schema", {}).get("name")
        if fmt == "JudgeReply":
            section = body["messages"][-1]["content"].split("Decide for each rule below")[1]
            numbers = [int(n) for n in re.findall(r"^(\d+)\. ", section, re.MULTILINE)]
            return json.dumps({"verdicts": [{"rule": i, "reason": "ok", "passed": i % 2 == 1} for i in numbers]})
        if fmt == "RoleReply":
            return json.dumps({"reason": "ok", "in_role": True})
        return _model_reply(body)

    server = fake_server(reply=reply)
    out = tmp_path / "ifeval"
    assert run_cli("eval", "--task", "ifeval", "--task", "sys-ifeval", "--limit", "8", "--data-dir", str(shared_data),
                "--model", "openai:m", "--base-url", server.base_url, "--out", str(out), "--bootstrap", "50") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["ifeval"]) == {"ifeval", "sys-ifeval"}
    assert set(summary["per_task"]) == {"ifeval", "sys-ifeval"}
    for fields in summary["ifeval"].values():
        assert {"prompt_level_strict", "prompt_level_loose", "instruction_level_strict",
                "instruction_level_loose"} <= set(fields)
    guard = tmp_path / "guardrails"
    assert run_cli("eval", "--task", "realguardrails", "--limit", "6", "--data-dir", str(shared_data),
                "--model", "openai:m", "--base-url", server.base_url, "--judge", "openai:j", "--out", str(guard),
                "--bootstrap", "50") == 0
    results = read_results(guard / "results.jsonl")
    assert {rule.source for r in results for rule in r.rules if rule.kind == "judged"} == {"judge"}
    assert {rule.source for r in results for rule in r.rules if rule.kind == "verifiable"} <= {"verifier"}
    assert all(r.role is not None and r.role.passed for r in results)
    assert run_cli("report", str(out), str(guard), "--out", str(tmp_path / "r.html")) == 0
    assert 'id="ifeval-table"' in (tmp_path / "r.html").read_text()
