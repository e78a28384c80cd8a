"""Built-in tasks: the registry, the data bundled with the package, overrides, and scored runs."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from _eval_builders import run_cli
from rolenrules.errors import ConfigError, DataError
from rolenrules.evaluate import EvalConfig, bench_rules, load_task, read_results, run_eval
from rolenrules.evaluate.score_example import wants_role
from rolenrules.evaluate.tasks import TASKS, bundled_data, parse_task_arg
from rolenrules.llm import BackendOptions, make_llm
from rolenrules.records import Example

#: Every built-in task: (examples, licence).
EXPECTED = {"ifeval": (540, "Apache-2.0"), "sys-ifeval": (541, "MIT AND Apache-2.0"), "realguardrails": (239, "MIT"),
            "distractors": (504, "MIT")}


@pytest.fixture(scope="module")
def bundled() -> dict[str, list[Example]]:
    """Every built-in task, read from the data shipped in the package (no skip: missing data fails)."""
    return {name: load_task(name) for name in TASKS}


def test_registry_holds_every_task_with_sources_and_licences() -> None:
    assert list(TASKS) == list(EXPECTED)
    assert {name: task.licence for name, task in TASKS.items()} == {name: e[1] for name, e in EXPECTED.items()}
    for task in TASKS.values():
        notices = []
        for source in task.sources:
            notice, licence = source.texts()
            assert source.url in notice
            assert {"MIT": "MIT License", "Apache-2.0": "Apache License"}[source.licence] in licence
            notices.append(notice)
        assert any(Path(task.file).name in notice for notice in notices)   # says where the file came from


@pytest.mark.parametrize(("task", "first_roles"), [
    ("ifeval", ["user"]),
    ("sys-ifeval", ["system", "user"]),
    ("realguardrails", ["system", "user"]),
    ("distractors", ["system", "user"]),
])
def test_bundled_tasks_load_all_rows(bundled: dict[str, list[Example]], task: str, first_roles: list[str]) -> None:
    examples = bundled[task]
    assert len(examples) == len({e.id for e in examples}) == EXPECTED[task][0]
    assert [m.role for m in examples[0].messages][:2] == first_roles
    assert all(e.messages[-1].role == "user" and bench_rules(e) for e in examples)
    assert {e.metadata["task"] for e in examples} == {task}


@pytest.mark.parametrize("task", list(EXPECTED))
def test_registry_flags_match_what_the_data_holds(bundled: dict[str, list[Example]], task: str) -> None:
    record, examples = TASKS[task], bundled[task]
    judged = any(r.kind == "judged" for e in examples for r in bench_rules(e))
    with_system = [e for e in examples if e.system_text is not None]
    assert record.judge == (judged or (record.role and bool(with_system)))
    assert record.summary == ("ifeval" if all("ifeval" in e.metadata for e in examples) else None)
    assert all(wants_role(e) == record.role for e in with_system)


def test_ifeval_instructions_become_verifiable_rules(bundled: dict[str, list[Example]]) -> None:
    first = bundled["sys-ifeval"][0]
    rules = bench_rules(first)
    assert [r.type for r in rules] == first.metadata["ifeval"]["instruction_id_list"] == [
        "punctuation:no_comma", "detectable_format:number_highlighted_sections", "length_constraints:number_words"]
    assert all(r.kind == "verifiable" for r in rules)
    assert rules[2].params["num_words"] == 300 and rules[2].params["relation"] == "at least"
    assert first.messages[0].content.startswith("Do not use any commas.")
    assert first.id == "sys-ifeval-1000"


def test_realguardrails_guardrails_are_judged_and_banlists_verifiable(bundled: dict[str, list[Example]]) -> None:
    examples = bundled["realguardrails"]
    kinds = Counter(r.kind for e in examples for r in bench_rules(e))
    assert kinds["verifiable"] == 105                # one forbidden-words rule per banlist
    first = examples[0]
    banned = [r for r in bench_rules(first) if r.kind == "verifiable"][0]
    assert "cherish" in json.dumps(banned.params)
    assert [r.text for r in bench_rules(first) if r.kind == "judged"][0].startswith('Never says "I love you"')
    subsets = Counter(e.metadata["subset"] for e in bundled["distractors"])
    assert subsets == {"roleplay/multi-turn": 126, "roleplay/single-turn": 126, "translation/multi-turn": 126,
                       "translation/single-turn": 126}


def _bundled_rows(relative: str, n: int) -> list[str]:
    """The first `n` lines of a bundled data file (plain or gzip)."""
    folder = bundled_data()
    plain, packed = folder.joinpath(relative), folder.joinpath(relative + ".gz")
    data = plain.read_bytes() if plain.is_file() else gzip.decompress(packed.read_bytes())
    return data.decode("utf-8").splitlines()[:n]


def test_a_data_dir_copy_replaces_the_bundled_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "copy"
    (copy / "systemcheck").mkdir(parents=True)
    (copy / "ifeval").mkdir()
    (copy / "systemcheck" / "handwritten.jsonl").write_text("\n".join(_bundled_rows("systemcheck/handwritten.jsonl", 3)))
    (copy / "ifeval" / "input_data.jsonl.gz").write_bytes(
        gzip.compress("\n".join(_bundled_rows("ifeval/input_data.jsonl", 2)).encode()))
    assert len(load_task("realguardrails", copy)) == 3
    assert [e.id for e in load_task("ifeval", copy)] == ["ifeval-1000", "ifeval-1001"]
    monkeypatch.setenv("RNR_DATA_DIR", str(copy))
    assert len(load_task("ifeval")) == 2                      # the environment names the copy too
    with pytest.raises(ConfigError, match=r"systemcheck/sys_ifeval\.jsonl not found under the data folder .*RNR_DATA_DIR"):
        load_task("sys-ifeval")                               # never a silent fallback to the bundled data
    with pytest.raises(ConfigError, match=str(tmp_path / "nowhere")):
        load_task("distractors", tmp_path / "nowhere")


def test_a_bad_row_in_a_copy_names_file_line_and_field(tmp_path: Path) -> None:
    rows = _bundled_rows("systemcheck/handwritten.jsonl", 3)
    broken = json.loads(rows[1])
    del broken["guardrails"]
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join([rows[0], json.dumps(broken), rows[2]]))
    with pytest.raises(DataError) as info:
        load_task("realguardrails", source=str(path))
    assert f"{path}:2" in str(info.value) and "guardrails" in str(info.value)


def test_a_task_read_from_a_file_or_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(_bundled_rows("systemcheck/sys_ifeval.jsonl", 4)))
    assert parse_task_arg(f"sys-ifeval={path}") == ("sys-ifeval", str(path))
    assert parse_task_arg("distractors") == ("distractors", None)
    assert len(load_task("sys-ifeval", source=str(path))) == 4
    with pytest.raises(ConfigError, match="choose one of ifeval, sys-ifeval, realguardrails, distractors"):
        parse_task_arg("sys_ifeval")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="hub is disabled"):   # offline: fails at once
        load_task("ifeval", source="hf://google/IFEval:train")


def test_missing_bundled_data_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RNR_DATA_DIR", raising=False)
    monkeypatch.setattr("rolenrules.evaluate.tasks.base.bundled_data", lambda: tmp_path)
    with pytest.raises(ConfigError, match=r"data bundled with rolenrules is missing \(ifeval/input_data\.jsonl\)"):
        load_task("ifeval")


REPLIES = [
    "Hello world. This is a short answer",
    "HELLO, THIS IS ALL CAPITALS. *highlighted one* and *highlighted two* and *three*.",
    "```json\n{\"answer\": 1}\n```",
]


def _model_reply(body: dict[str, Any]) -> str:
    return REPLIES[len(body["messages"][-1]["content"]) % len(REPLIES)]


def test_sys_ifeval_run_writes_official_ifeval_summary(tmp_path: Path, fake_server: Any) -> None:
    from rolenrules.rules.ifeval_accuracy import accuracy_summary, score_rows

    server = fake_server(reply=_model_reply)
    model = make_llm("openai:m", BackendOptions(base_url=server.base_url, max_retries=0))
    examples = load_task("sys-ifeval", limit=30)
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


def test_cli_ifeval_beside_sys_ifeval_and_realguardrails_with_judge(tmp_path: Path, fake_server: Any) -> None:
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
    assert run_cli("eval", "--task", "ifeval", "--task", "sys-ifeval", "--limit", "8",
                "--model", "openai:m", "--base-url", server.base_url, "--out", str(out), "--bootstrap", "50") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["ifeval"]) == {"ifeval", "sys-ifeval"}
    assert set(summary["per_task"]) == {"ifeval", "sys-ifeval"}
    for fields in summary["ifeval"].values():
        assert {"prompt_level_strict", "prompt_level_loose", "instruction_level_strict",
                "instruction_level_loose"} <= set(fields)
    guard = tmp_path / "guardrails"
    assert run_cli("eval", "--task", "realguardrails", "--limit", "6",
                "--model", "openai:m", "--base-url", server.base_url, "--judge", "openai:j", "--out", str(guard),
                "--bootstrap", "50") == 0
    results = read_results(guard / "results.jsonl")
    assert {rule.source for r in results for rule in r.rules if rule.kind == "judged"} == {"judge"}
    assert {rule.source for r in results for rule in r.rules if rule.kind == "verifiable"} <= {"verifier"}
    assert all(r.role is not None and r.role.passed for r in results)
    assert run_cli("report", str(out), str(guard), "--out", str(tmp_path / "r.html")) == 0
    assert 'id="ifeval-table"' in (tmp_path / "r.html").read_text()


def test_cli_reads_a_task_from_a_file_and_names_unknown_tasks(tmp_path: Path, fake_server: Any,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    server = fake_server(reply=_model_reply)
    mine = tmp_path / "mine.jsonl"
    mine.write_text("\n".join(_bundled_rows("systemcheck/sys_ifeval.jsonl", 3)))
    out = tmp_path / "run"
    assert run_cli("eval", "--task", f"sys-ifeval={mine}", "--model", "openai:m", "--base-url", server.base_url,
                   "--out", str(out), "--bootstrap", "0") == 0
    assert [r.id for r in read_results(out / "results.jsonl")] == ["sys-ifeval-1000", "sys-ifeval-1001",
                                                                   "sys-ifeval-1005"]
    capsys.readouterr()
    assert run_cli("eval", "--task", "sysifeval", "--model", "openai:m", "--base-url", server.base_url,
                   "--out", str(tmp_path / "other")) == 2
    assert "unknown task 'sysifeval'" in capsys.readouterr().err
