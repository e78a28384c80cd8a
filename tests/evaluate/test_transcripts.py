"""`rnr eval` keeps every judge call's prompt and raw reply in `DIR/transcripts.jsonl`, by example, so
any verdict can be audited; the report links the file."""

from __future__ import annotations

import json
from pathlib import Path

from rolenrules.evaluate import EvalConfig, build_bench, run_eval, write_report
from rolenrules.judge import Judge
from rolenrules.llm import BackendOptions, make_llm
from rolenrules.records import Example, Message, Rule, SystemPrompt
from rolenrules.testing.scripted import schema_name, teacher_reply


def _bench(tmp_path: Path) -> Path:
    examples = []
    for p in range(3):
        sp = SystemPrompt(role=f"You are assistant number {p}.", rules=[
            Rule(text=f"Stay on topic {p}."), Rule(text="Use no commas.", kind="verifiable", type="punctuation:no_comma")])
        examples.append(Example(id=f"e{p}", messages=[Message(role="user", content=f"q{p}"),
                                                      Message(role="assistant", content="a")]).with_system(sp))
    path = tmp_path / "bench.jsonl"
    build_bench(examples, path, size=3, seed=0)
    return path


def test_eval_writes_judge_transcripts_the_report_links(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    server = fake_server(reply=teacher_reply())
    options = BackendOptions(base_url=server.base_url)
    run = tmp_path / "run"
    run_eval(_bench(tmp_path), run, model=make_llm("openai:m", options), judge=Judge(make_llm("openai:j", options)),
             config=EvalConfig(resamples=0, calibrate_judge=True))
    transcripts = [json.loads(line) for line in (run / "transcripts.jsonl").read_text().splitlines()]
    judge_calls = [b for b in server.log if schema_name(b) in ("JudgeReply", "RoleReply")]
    assert len(transcripts) == len(judge_calls) == 3 * 3  # judged rules, calibration, role adherence
    results = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert {t["example"] for t in transcripts} == {r["id"] for r in results}
    for t in transcripts:
        assert t["prompt"] and t["reply"] and t["judge"] == "openai:j"
        assert t["kind"] in ("rules", "role")
    calibration = [t for t in transcripts if any(r["type"] == "punctuation:no_comma" for r in t["rules"])]
    assert len(calibration) == 3  # the judge asked about the verifiable rule, for calibration
    html = (tmp_path / "report.html")
    write_report([run], html)
    assert "transcripts.jsonl" in html.read_text()
