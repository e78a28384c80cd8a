"""`rnr rules list` and `rnr rules sample`."""

from __future__ import annotations

import json

import pytest

from rolenrules.cli import main
from rolenrules.rules import REGISTRY


def _run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code or 0


def test_list_json_has_every_type(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["rules", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["id"] for r in rows} == set(REGISTRY)
    by_id = {r["id"]: r for r in rows}
    assert by_id["length:max_words"]["params"] == "max_words: int"
    assert by_id["length:max_words"]["example"]
    assert "length_constraints:number_words" in by_id["length:max_words"]["conflicts"]


def test_list_table_filters_by_group(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["rules", "list", "--group", "persona"]) == 0
    out = capsys.readouterr().out
    assert "3 rule types" in out and "persona:self" in out
    assert "keywords:existence" not in out
    assert _run(["rules", "list", "--group", "nope"]) == 2
    assert "groups:" in capsys.readouterr().err


def test_sample_prints_compatible_sets_reproducibly(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["rules", "sample", "--n", "4", "--seed", "9", "--sets", "3", "--system-only"]
    assert _run(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert _run(argv) == 0
    assert json.loads(capsys.readouterr().out) == first
    assert len(first) == 3 and all(len(s) == 4 for s in first)
    for rule_set in first:
        types = [r["type"] for r in rule_set]
        for i, a in enumerate(types):
            assert not (REGISTRY[a].conflicts & set(types[i + 1:]))


def test_sample_types_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["rules", "sample", "--n", "2", "--types", "style:no_emojis,content:no_urls"]) == 0
    (rule_set,) = json.loads(capsys.readouterr().out)
    assert {r["type"] for r in rule_set} == {"style:no_emojis", "content:no_urls"}
    assert _run(["rules", "sample", "--n", "2", "--types", "format:bullets_only", "--types",
                 "format:numbered_list"]) == 2
    assert "compatible" in capsys.readouterr().err
    assert _run(["rules", "sample", "--exclude", "bogus:type"]) == 2
    capsys.readouterr()
    assert _run(["rules", "sample", "--types", "style:no_emoji,content:no_urls"]) == 2
    assert "unknown rule type 'style:no_emoji'; did you mean 'style:no_emojis'?" in capsys.readouterr().err


def test_list_marks_opt_in_types(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["rules", "list", "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    opt_in = {i for i, r in rows.items() if not r["sampled_by_default"]}
    assert {"text:contains", "text:not_contains", "regex:search", "regex:not_search", "combination:repeat_prompt"} == opt_in
    assert rows["language:response_language"]["system_prompt"] is False
