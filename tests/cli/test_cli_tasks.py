"""`rnr tasks`: the registry as a table, JSON and licence texts."""

from __future__ import annotations

import json
import re

import pytest

from rolenrules.cli import main


def _rnr(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    assert done.value.code in (0, None)
    return capsys.readouterr().out


def test_tasks_table_and_json_list_every_task(capsys: pytest.CaptureFixture[str]) -> None:
    rows = json.loads(_rnr(capsys, "tasks", "--json"))
    assert [(r["name"], r["examples"], r["needs_judge"], r["licence"]) for r in rows] == [
        ("ifeval", 540, False, "Apache-2.0"), ("sys-ifeval", 541, False, "MIT AND Apache-2.0"),
        ("realguardrails", 239, True, "MIT"), ("distractors", 504, True, "MIT")]
    assert rows[2]["rules"] == {"judged": 1096, "verifiable": 105}
    table = _rnr(capsys, "tasks")
    for name, examples in (("ifeval", "540"), ("sys-ifeval", "541"), ("realguardrails", "239"), ("distractors", "504")):
        assert re.search(rf"{re.escape(name)}\s+│\s+{examples}\s+│", table), name
    assert "1,096 judged" in table


def test_tasks_licences_prints_each_source_once(capsys: pytest.CaptureFixture[str]) -> None:
    text = _rnr(capsys, "tasks", "--licences")
    assert text.count("TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION") == 1    # Apache-2.0
    assert text.count("Permission is hereby granted, free of charge") == 1                    # MIT
    assert "Copyright (c) 2025 Norman Mu" in text and "Copyright 2023 The Google Research Authors" in text
    assert "arXiv:2502.12197" in text and "arXiv:2311.07911" in text
