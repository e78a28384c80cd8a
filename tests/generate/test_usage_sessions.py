"""Token usage and cost add up over every invocation of a run: a resumed run's card (and an eval
folder's summary) counts what earlier, interrupted sessions paid for, not only the last one."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rolenrules.cli import main
from rolenrules.evaluate import EvalConfig, run_eval
from rolenrules.generate.store import RunStore
from rolenrules.judge import Judge
from rolenrules.llm import BackendOptions, make_llm
from rolenrules.records import Example, Message, Rule, SystemPrompt
from rolenrules.testing.scripted import teacher_reply

SEEDS = Path(__file__).resolve().parents[1] / "data" / "self_instruct_seed_tasks.jsonl"


def _card_requests(card: str) -> int:
    rows = re.findall(r"^\| (teacher|judge) \| (\d+) \|", card, re.MULTILINE)
    assert len(rows) == 2, card
    return sum(int(n) for _, n in rows)


def test_card_counts_every_session_after_a_kill_during_the_final_write(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    server = fake_server(reply=teacher_reply())
    out = tmp_path / "out.jsonl"
    args = ["generate", "--input", str(SEEDS), "--teacher", "openai:any", "--base-url", server.base_url,
            "--out", str(out), "--num-prompts", "3", "--k", "2", "--verifiable-rules", "0", "--quiet",
            "--price-per-1m", "1,1", "--judged-rules", "on"]
    with pytest.raises(SystemExit):
        main(args)
    first = _card_requests((tmp_path / "out.jsonl.card.md").read_text())
    assert first == server.requests > 10
    # Killed while writing the outputs: every unit is committed, the run not yet marked complete.
    store = RunStore(tmp_path / "out.jsonl.rnr-run" / "run.sqlite")
    store.set_complete(False)
    store.close()
    out.unlink()
    with pytest.raises(SystemExit):
        main(args)
    card = (tmp_path / "out.jsonl.card.md").read_text()
    assert _card_requests(card) == server.requests == first + 1  # + the second session's check request
    assert "Estimated cost of these requests" in card


def test_eval_summary_counts_a_session_killed_before_its_summary(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    server = fake_server(reply=teacher_reply())
    sp = SystemPrompt(role="You are Nova.", rules=[Rule(text="Be brief.")])
    bench = [Example(id=f"e{i}", messages=[Message(role="user", content=f"q{i}")]).with_system(sp) for i in range(3)]

    def clients() -> tuple[object, Judge]:
        options = BackendOptions(base_url=server.base_url)
        return make_llm("openai:m", options), Judge(make_llm("openai:j", options))

    model, judge = clients()
    run_eval(bench, tmp_path / "run", model=model, judge=judge, config=EvalConfig(resamples=0))
    first = json.loads((tmp_path / "run" / "summary.json").read_text())["usage"]
    assert first["model"]["requests"] == 3 and first["judge"]["requests"] == 6  # rules + role, per example
    (tmp_path / "run" / "summary.json").unlink()  # killed after its last result, before the summary
    model, judge = clients()
    run_eval(bench, tmp_path / "run", model=model, judge=judge, config=EvalConfig(resamples=0))
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["usage"] == first
