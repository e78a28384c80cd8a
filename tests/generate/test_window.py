"""A run keeps a bounded window of conversations in flight (not one coroutine per conversation), and
reports what its clients cost (calls/s, tokens/s, time at the servers vs in rnr) on the card and
at the end of the run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from rolenrules.cli import main
from rolenrules.generate import GenerateConfig, default_clients, generate
from rolenrules.generate.progress import Event, StageCounts
from rolenrules.testing.scripted import last_user, schema_name, teacher_reply

SEEDS = Path(__file__).resolve().parents[1] / "data" / "self_instruct_seed_tasks.jsonl"


def test_a_20k_seed_run_holds_at_most_the_window_in_flight(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"instruction": f"Question number {i} about item {i % 97}?"}) + "\n"
                             for i in range(20_000)))
    script = teacher_reply()

    def reply(body: dict[str, Any]) -> str:
        # One system prompt in 50 is usable; the others have no rules and are rejected at once, so most of
        # the 20,000 conversations end without a request (the test stays fast) while the rest make requests.
        if schema_name(body) == "TeacherSystemPrompt" and sum(map(ord, last_user(body))) % 50:
            return json.dumps({"role": "You are Nova.", "rules": []})
        return script(body)

    server = fake_server(reply=reply)
    peaks: dict[str, int] = {}

    def progress(event: Event, counts: StageCounts) -> None:
        peaks[counts.stage] = max(peaks.get(counts.stage, 0), counts.peak_in_flight)

    config = GenerateConfig(input=str(seeds), out=str(tmp_path / "out.jsonl"), teacher="openai:any",
                            base_url=[server.base_url], k=50, rules="1", verifiable_rules="0", judged_rules="on",
                            judge_calibration=0, max_attempts=1, concurrency=4)
    result = generate(config, default_clients, progress=progress)
    assert result.complete and result.kept + result.rejected == 20_000
    assert result.kept > 0 and result.teacher_usage.requests > 400  # some conversations did make requests
    window = 2 * config.concurrency
    # The window was filled (work was waiting) and never exceeded, in every stage.
    assert peaks == {"system prompts": window, "conversations": window}
    assert server.max_in_flight <= config.concurrency


def test_the_card_and_the_last_line_say_what_the_calls_cost(fake_server, tmp_path: Path,  # noqa: ANN001
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    server = fake_server(reply=teacher_reply())
    out = tmp_path / "out.jsonl"
    with pytest.raises(SystemExit) as info:
        main(["generate", "--input", str(SEEDS), "--teacher", "openai:any", "--base-url", server.base_url, "--out",
              str(out), "--num-prompts", "2", "--k", "2", "--judged-rules", "on", "--quiet"])
    assert info.value.code in (0, None)
    timing = (r"\d+ calls( \(\d+ cached\))? in [\d.]+ s: [\d,.]+ calls/s, [\d,]+ tokens/s; [\d.]+ s per call at the "
              r"servers, [\d.]+ in flight; client CPU \d+% of the time")
    card = (tmp_path / "out.jsonl.card.md").read_text()
    assert re.search("Client timing of this invocation: " + timing, card), card
    assert re.search("client timing: " + timing, capsys.readouterr().err)
