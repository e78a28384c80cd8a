"""`score_rows` / `rnr ifeval score`: input validation, outputs, and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rolenrules.cli import main
from rolenrules.errors import DataError
from rolenrules.rules.ifeval_accuracy import accuracy_summary, score_file, score_rows


def _run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code or 0

ROW = {"key": 7, "prompt": "Say hi without commas.", "instruction_id_list": ["punctuation:no_comma",
       "length_constraints:number_words"], "kwargs": [{}, {"num_words": 3, "relation": "less than"}],
       "response": "Hi there"}


@pytest.mark.parametrize(("change", "field"), [
    ({"instruction_id_list": ["punctuation:no_comma", "keywords:nope"]}, "instruction_id_list[1]"),
    ({"kwargs": [{}, {"num_words": 3, "relation": "at most"}]}, "kwargs[1]"),
    ({"kwargs": [{}, {"num_words": 3}]}, "kwargs[1]"),
    ({"kwargs": [{}, {"num_words": 3, "relation": "less than", "extra": 1}]}, "kwargs[1]"),
    ({"kwargs": [{}]}, "kwargs"),
    ({"response": None}, "response"),
    ({"instruction_id_list": "punctuation:no_comma"}, "instruction_id_list"),
])
def test_bad_rows_name_the_row_and_field(change: dict, field: str) -> None:
    with pytest.raises(DataError) as info:
        score_rows([ROW, {**ROW, **change}])
    assert info.value.row == 2
    assert info.value.field == field


def test_rows_may_name_any_rule_type() -> None:
    row = {"key": 1, "instruction_id_list": ["text:not_contains", "language:reply_language"],
           "kwargs": [{"value": "OPAL"}, {"language": "fr"}], "response": "123 456"}
    # A check that cannot decide (no language to detect) counts as not followed.
    assert score_rows([row]) == [{"key": 1, "strict": [True, False], "loose": [True, False]}]
    with pytest.raises(DataError, match="did you mean 'punctuation:no_comma'"):
        score_rows([{**ROW, "instruction_id_list": ["punctuation:no_coma", "length_constraints:number_words"]}])


def test_unused_null_kwargs_are_ignored() -> None:
    # Hugging Face's copy of IFEval lists every kwarg name, null when unused.
    row = {**ROW, "kwargs": [{"num_words": None, "keywords": None},
                             {"num_words": 3, "relation": "less than", "keywords": None}]}
    assert score_rows([row]) == [{"key": 7, "strict": [True, True], "loose": [True, True]}]


def test_missing_key_and_empty_response() -> None:
    row = {k: v for k, v in ROW.items() if k != "key"}
    assert score_rows([{**row, "response": "  "}]) == [{"strict": [False, False], "loose": [False, False]}]


def test_summary_levels() -> None:
    rows = [ROW, {**ROW, "key": 8, "response": "Hi, there you go"}]
    verdicts = score_rows(rows)
    summary = accuracy_summary(rows, verdicts)
    assert summary["prompt_level_strict"] == 0.5
    assert summary["instruction_level_strict"] == 0.5
    assert summary["per_instruction"]["punctuation:no_comma"] == {"strict": 0.5, "loose": 0.5, "count": 2}
    assert summary["per_group"]["length_constraints"]["count"] == 2


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_cli_writes_verdicts_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _write(tmp_path / "responses.jsonl", [ROW, {**ROW, "key": 8, "response": "Hi, there"}])
    assert _run(["ifeval", "score", str(source), "--out", str(tmp_path / "out"), "--per-instruction"]) == 0
    verdicts = [json.loads(line) for line in (tmp_path / "out" / "verdicts.jsonl").read_text().splitlines()]
    assert verdicts == [{"key": 7, "strict": [True, True], "loose": [True, True]},
                        {"key": 8, "strict": [False, True], "loose": [False, True]}]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["prompt_level_loose"] == 0.5
    assert set(summary) >= {"prompt_level_strict", "prompt_level_loose", "instruction_level_strict",
                            "instruction_level_loose", "per_instruction"}
    printed = capsys.readouterr().out
    assert "prompt" in printed and "0.5000" in printed and "punctuation:no_comma" in printed


@pytest.mark.parametrize(("lines", "message"), [
    ([json.dumps(ROW), "{not json"], "responses.jsonl:2"),
    ([json.dumps(ROW), json.dumps({**ROW, "instruction_id_list": ["bogus:id", "punctuation:no_comma"]})],
     "responses.jsonl:2: field 'instruction_id_list[0]'"),
])
def test_cli_bad_input_exits_2_without_output(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              lines: list[str], message: str) -> None:
    source = _write(tmp_path / "responses.jsonl", lines)
    assert _run(["ifeval", "score", str(source), "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err.replace("\n", "")
    assert not (tmp_path / "out").exists()


def test_score_file_rejects_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        score_file(tmp_path / "missing.jsonl", tmp_path / "out")
    with pytest.raises(DataError, match="empty"):
        score_file(_write(tmp_path / "empty.jsonl", []), tmp_path / "out")
