"""A fixed-seed run's outputs are pinned: the same seed gives the same kept ids and the same records,
rejects, preference pairs, judge transcripts and card, whatever the pipeline's internals (batched
commits, streaming, the in-flight window, shards) become.

The pinned file was written by the pipeline before issue 17's pipeline work. A deliberate change of
what a run produces (a new template version, a new card section) updates it:

    RNR_UPDATE_PINNED=1 python -m pytest tests/generate/test_pinned_run.py
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from rolenrules.cli import main
from rolenrules.testing.scripted import last_user, teacher_reply

SEEDS = Path(__file__).resolve().parents[1] / "data" / "self_instruct_seed_tasks.jsonl"
PINNED = Path(__file__).resolve().parent / "data" / "pinned_run.json"

#: Judged and library rules, regeneration with feedback, conflict turns, rejected replies, near-duplicate
#: system prompts and pairs: every kind of record a run writes.
OPTIONS = ["--num-prompts", "6", "--k", "3", "--seed", "11", "--conflict-rate", "0.5", "--rules", "2-4",
           "--verifiable-rules", "1-2", "--rule-types", "punctuation:no_comma", "--rule-types",
           "length:max_words", "--max-attempts", "2", "--judged-rules", "on", "--judge-calibration", "3",
           "--pairs", "--dedup-threshold", "0.3"]


def answer(body: dict[str, Any]) -> str:
    request = next(m["content"] for m in body["messages"] if m["role"] == "user")
    if "Your last reply broke" in last_user(body):
        # Some second drafts still break a rule: those conversations are rejected.
        return "A second draft that stays short" + (", but keeps a comma" if len(request) % 3 == 0 else "")
    return "A first draft, with a comma, that runs on " + " ".join(["and on"] * (len(request) % 40))


def judge_pass(body: dict[str, Any], rule: int) -> bool:
    # The judge fails the second rule of first drafts, so some conversations are regenerated.
    return not (rule == 2 and "<reply>\nA first draft" in last_user(body))


def run_outputs(server_url: str, out: Path, *extra: str) -> dict[str, Any]:
    args = ["generate", "--input", str(SEEDS), "--teacher", "openai:any", "--base-url", server_url, "--out",
            str(out), "--quiet", "--concurrency", "7", *OPTIONS, *extra]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code in (0, None), info.value
    return normalised(out)


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _no_paths(value: Any) -> Any:
    """The seeds' absolute path is where the test ran, not what the run made."""
    return json.loads(json.dumps(value).replace(str(SEEDS.parent), "DATA"))


def normalised(out: Path) -> dict[str, Any]:
    card = out.with_name(out.name + ".card.md").read_text()
    card = re.sub(r"(?m)^(Client timing of this invocation:).*$", r"\1 …", card)
    card = re.sub(r"(?s)```bash\n.*?```", "```bash\nCOMMAND\n```", card)
    return _no_paths({
        "kept": _rows(out),
        "rejects": _rows(out.with_name(out.name + ".rejects.jsonl")),
        "pairs": _rows(out.with_name(out.name + ".pairs.jsonl")),
        # Transcripts are written in the order their units finished: compare them as a set.
        "transcripts": sorted(_rows(out.with_name(out.name + ".transcripts.jsonl")),
                              key=lambda r: json.dumps(r, sort_keys=True)),
        "card": card.replace(str(out.name), "OUT"),
    })


def test_a_fixed_seed_run_makes_the_pinned_outputs(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    server = fake_server(reply=teacher_reply(answer=answer, judge_pass=judge_pass))
    got = run_outputs(server.base_url, tmp_path / "out.jsonl")
    if os.environ.get("RNR_UPDATE_PINNED"):
        PINNED.parent.mkdir(exist_ok=True)
        PINNED.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    pinned = json.loads(PINNED.read_text())
    # The run exercised what it is meant to pin.
    assert pinned["kept"] and pinned["rejects"] and pinned["pairs"] and pinned["transcripts"]
    assert any(r["metadata"]["conflict"] for r in pinned["kept"])
    assert any(a > 1 for r in pinned["kept"] for a in r["metadata"]["attempts"])
    assert {r["stage"] for r in pinned["rejects"]} == {"response", "dedup"}
    assert [r["id"] for r in got["kept"]] == [r["id"] for r in pinned["kept"]]
    for key in ("kept", "rejects", "pairs", "transcripts"):
        assert got[key] == pinned[key], key
    assert got["card"].splitlines() == pinned["card"].splitlines()
