"""Agreement with the official IFEval checker's published verdicts on the GPT-4 dev half."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rolenrules.rules import REGISTRY
from rolenrules.rules.ifeval_accuracy import accuracy_summary, score_rows


#: The published GPT-4 responses with the official verdicts (tests/data/README.md).
DEV = Path(__file__).resolve().parents[1] / "data" / "gpt4_dev.jsonl"


@pytest.fixture(scope="module")
def dev_rows() -> list[dict]:
    return [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def dev_verdicts(dev_rows: list[dict]) -> list[dict]:
    return score_rows(dev_rows)


def test_all_official_verdicts_reproduced(dev_rows: list[dict], dev_verdicts: list[dict]) -> None:
    assert len(dev_rows) == 270
    disagreements = [
        (row["key"], mode, row["instruction_id_list"][i])
        for row, verdict in zip(dev_rows, dev_verdicts)
        for mode in ("strict", "loose")
        for i, (official, ours) in enumerate(zip(row[mode], verdict[mode]))
        if official != ours
    ]
    checked = sum(len(row["instruction_id_list"]) for row in dev_rows)
    assert checked == 419
    assert disagreements == []
    assert [v["key"] for v in dev_verdicts] == [r["key"] for r in dev_rows]


def test_dev_half_covers_all_25_instruction_types(dev_rows: list[dict]) -> None:
    seen = {i for row in dev_rows for i in row["instruction_id_list"]}
    assert len(seen) == 25 and seen <= set(REGISTRY)


def test_summary_matches_official_verdicts(dev_rows: list[dict], dev_verdicts: list[dict]) -> None:
    summary = accuracy_summary(dev_rows, dev_verdicts)
    official = accuracy_summary(dev_rows, [{"strict": r["strict"], "loose": r["loose"]} for r in dev_rows])
    assert summary == official
    prompts_followed = sum(all(r["strict"]) for r in dev_rows)
    assert summary["prompt_level_strict"] == pytest.approx(prompts_followed / 270)
    assert summary["instruction_level_loose"] >= summary["instruction_level_strict"]
    assert sum(v["count"] for v in summary["per_instruction"].values()) == 419


def test_rule_type_check_agrees_with_batch_scoring(dev_rows: list[dict], dev_verdicts: list[dict]) -> None:
    # The public per-rule API gives the same verdicts as the batch scorer (sampled rows).
    for row, verdict in list(zip(dev_rows, dev_verdicts))[::9]:
        for i, (type_id, kwargs) in enumerate(zip(row["instruction_id_list"], row["kwargs"])):
            rule_type = REGISTRY[type_id]
            assert rule_type.check(kwargs, row["response"], mode="strict") == verdict["strict"][i]
            assert rule_type.check(kwargs, row["response"], mode="loose") == verdict["loose"][i]
