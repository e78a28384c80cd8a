"""A run folder that does not add up is never reported as if it did, and a benchmark with a bad rule
is refused at load with file, line, example id and field — before any model call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _eval_builders import result, run_cli, scored, write_run

from rolenrules.records import Example, Message, Rule, SystemPrompt


def _run_folder(tmp_path: Path) -> Path:
    return write_run(tmp_path / "run", [result(f"x{i}", [scored(i % 2 == 0)]) for i in range(6)])


@pytest.mark.parametrize("damage", ["truncated", "empty", "extra"])
def test_report_and_compare_stop_when_results_and_summary_disagree(tmp_path: Path, damage: str,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run = _run_folder(tmp_path)
    other = write_run(tmp_path / "other", [result(f"x{i}", [scored(True)]) for i in range(6)])
    lines = (run / "results.jsonl").read_text().splitlines()
    kept = {"truncated": lines[:3] + [lines[3][:40]], "empty": [], "extra": lines + lines[:1]}[damage]
    (run / "results.jsonl").write_text("".join(line + "\n" for line in kept))
    found = {"truncated": 3, "empty": 0, "extra": 7}[damage]
    for args in (("report", str(run)), ("compare", str(other), str(run))):
        assert run_cli(*args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"holds {found} results but summary.json counts 6" in err, err


def test_corrupt_summary_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run_folder(tmp_path)
    (run / "summary.json").write_text('{"n_examples": 6, "pass_rate": ')
    assert run_cli("report", str(run)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "summary.json: not a readable summary" in err


def test_bad_rule_parameter_is_found_at_load(fake_server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    server = fake_server()
    rows = []
    for i in range(50):
        params = {"relation": "less than", "num_words": 50 if i != 45 else "many"}
        sp = SystemPrompt(role=f"You are assistant {i}.", rules=[Rule(
            text="Use few words.", kind="verifiable", type="length_constraints:number_words", params=params)])
        rows.append(Example(id=f"ex-{i}", messages=[Message(role="user", content="q")]).with_system(sp))
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(e.model_dump_json() + "\n" for e in rows))
    code = run_cli("eval", "--bench", str(bench), "--model", "openai:m", "--base-url", server.base_url,
                   "--out", str(tmp_path / "run"), "--no-role-adherence")
    assert code == 2 and server.requests == 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{bench}:46" in err and "'ex-45'" in err and "system_prompt.rules[0]" in err and "num_words" in err
    rows[45] = rows[45].model_copy(update={"system_prompt": SystemPrompt(role="x", rules=[
        Rule(text="t", kind="verifiable", type="no:such_type")])})
    bench.write_text("".join(json.dumps(e.model_dump(mode="json")) + "\n" for e in rows))
    assert run_cli("eval", "--bench", str(bench), "--model", "openai:m", "--base-url", server.base_url,
                   "--out", str(tmp_path / "run"), "--no-role-adherence") == 2
    assert "unknown rule type 'no:such_type'" in capsys.readouterr().err
