"""A judge that cannot be reached gives no verdict: in generation its conversations are failed
(retryable) and kept out of the output; in evaluation its examples are left out and the run is
incomplete; a metric with nothing scored is n/a. A judge reply that arrived but never parses stays
*unscored*."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from rolenrules.cli import main
from rolenrules.evaluate import EvalConfig, EvalIncomplete, build_bench, read_results, run_eval
from rolenrules.judge import Judge
from rolenrules.llm import BackendOptions, LLMError, make_llm
from rolenrules.records import Example, Message, Rule, SystemPrompt
from rolenrules.testing.scripted import schema_name, teacher_reply

SEEDS = Path(__file__).resolve().parents[1] / "data" / "self_instruct_seed_tasks.jsonl"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _generate(args: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(["generate", "--input", str(SEEDS), "--quiet", "--num-prompts", "2", "--k", "2",
              "--verifiable-rules", "0", "--judged-rules", "on", *args])
    return int(info.value.code or 0)


def test_judge_on_a_closed_port_fails_in_seconds_and_keeps_nothing(fake_server, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    teacher = fake_server(reply=teacher_reply())
    out = tmp_path / "out.jsonl"
    start = time.monotonic()
    code = _generate(["--teacher", "openai:any", "--base-url", teacher.base_url, "--judge", "openai:judge",
                      "--judge-base-url", f"http://127.0.0.1:{closed_port()}/v1", "--out", str(out)])
    assert code == 4 and time.monotonic() - start < 15
    err = capsys.readouterr().err
    assert "the judge (openai:judge) failed its check request" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert teacher.requests == 1  # the teacher's check only: nothing fanned out


def test_judge_that_dies_mid_run_leaves_rules_unchecked_out_and_is_retried(fake_server, tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    state = {"judge_down": True}
    script = teacher_reply()

    def reply(body: dict[str, Any]) -> str:
        if state["judge_down"] and schema_name(body) == "JudgeReply":
            raise RuntimeError("judge outage")  # HTTP 500, after the preflight check went through
        return script(body)

    server = fake_server(reply=reply)
    out = tmp_path / "out.jsonl"
    args = ["--teacher", "openai:any", "--base-url", server.base_url, "--out", str(out), "--max-retries", "0"]
    assert _generate(args) == 3
    assert "4 conversation(s) failed on server errors" in capsys.readouterr().err
    assert _rows(out) == []  # no example whose judged rules were never checked
    rejects = _rows(tmp_path / "out.jsonl.rejects.jsonl")
    assert len(rejects) == 4
    assert all(r["status"] == "failed" and r["stage"] == "verify" and "judge failed" in r["reason"] for r in rejects)

    assert _rows(tmp_path / "out.jsonl.transcripts.jsonl") == []  # failed calls are redone, not audited twice

    state["judge_down"] = False
    assert _generate(args) == 0
    assert "already complete" not in capsys.readouterr().err
    kept = _rows(out)
    assert len(kept) == 4 and _rows(tmp_path / "out.jsonl.rejects.jsonl") == []
    assert all(v["source"] == "judge" and v["passed"] for e in kept for v in e["verdicts"])
    transcripts = _rows(tmp_path / "out.jsonl.transcripts.jsonl")
    assert {t["conversation"] for t in transcripts if "conversation" in t} == {e["id"] for e in kept}
    assert len([t for t in transcripts if "calibration" in t]) == 8


def test_unparsable_judge_reply_is_unscored_not_failed(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    script = teacher_reply()

    def reply(body: dict[str, Any]) -> str:
        return "no JSON here" if schema_name(body) == "JudgeReply" else script(body)

    server = fake_server(reply=reply)
    # By default a rule nobody could check is not verified data: regenerated, then rejected as unscored.
    out = tmp_path / "out.jsonl"
    assert _generate(["--teacher", "openai:any", "--base-url", server.base_url, "--out", str(out)]) == 0
    assert _rows(out) == []
    rejects = _rows(tmp_path / "out.jsonl.rejects.jsonl")
    assert len(rejects) == 4 and all(r["status"] == "rejected" and "judge gave no parsable verdict" in r["reason"]
                                     for r in rejects)
    assert "| kept with a rule nobody could check | 0 " in (tmp_path / "out.jsonl.card.md").read_text()
    # --no-drop-unscored keeps them, unscored (never passed), and the card counts them.
    out = tmp_path / "kept.jsonl"
    assert _generate(["--teacher", "openai:any", "--base-url", server.base_url, "--out", str(out),
                      "--no-drop-unscored"]) == 0
    kept = _rows(out)
    assert len(kept) == 4 and all(v["source"] == "unscored" and v["passed"] is None for e in kept for v in e["verdicts"])
    assert "| kept with a rule nobody could check | 4 (100.0% of kept) |" in (tmp_path / "kept.jsonl.card.md").read_text()


def test_judge_raises_on_transport_failure_and_marks_unparsable_unscored(fake_server) -> None:  # noqa: ANN001
    rules = [Rule(text="Be brief.")]
    url = f"http://127.0.0.1:{closed_port()}/v1"

    async def ask(call: str) -> object:
        judge = Judge(make_llm("openai:j", BackendOptions(base_url=url, max_retries=0)))
        try:
            if call == "rules":
                return await judge.judge("sys", [Message(role="user", content="q")], "a", rules)
            return await judge.role_adherence("sys", [Message(role="user", content="q")], "a")
        finally:
            await judge.llm.aclose()

    for call in ("rules", "role"):
        with pytest.raises(LLMError, match="unreachable"):
            asyncio.run(ask(call))
    server = fake_server(reply=lambda body: "not json")
    garbled = Judge(make_llm("openai:j", BackendOptions(base_url=server.base_url, max_retries=0), attempts=1))
    verdict = garbled.llm.run(garbled.judge("sys", [], "a", rules))[0]
    assert verdict.passed is None and verdict.source == "unscored"
    assert garbled.usage.requests == server.requests == 1  # counted in one place: the judge's client


def _bench(tmp_path: Path) -> Path:
    examples = []
    for p in range(4):
        sp = SystemPrompt(role=f"You are assistant number {p}.", rules=[Rule(text=f"Rule of prompt {p}.")])
        examples.append(Example(id=f"e{p}", messages=[Message(role="user", content=f"q{p}"),
                                                      Message(role="assistant", content="a")]).with_system(sp))
    path = tmp_path / "bench.jsonl"
    build_bench(examples, path, size=4, seed=0)
    return path


def test_eval_with_a_dead_judge_is_incomplete_with_nothing_scored_and_resumes(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    model_server = fake_server()
    judge_server = fake_server(reply=teacher_reply())
    bench = _bench(tmp_path)
    dead = f"http://127.0.0.1:{closed_port()}/v1"

    def clients(judge_url: str) -> tuple[Any, Judge]:
        model = make_llm("openai:m", BackendOptions(base_url=model_server.base_url, max_retries=0))
        return model, Judge(make_llm("openai:j", BackendOptions(base_url=judge_url, max_retries=0)))

    model, judge = clients(dead)
    with pytest.raises(EvalIncomplete, match="no verdict"):
        run_eval(bench, tmp_path / "run", model=model, judge=judge, config=EvalConfig(resamples=0))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["complete"] is False and summary["n_errors"] == 4 and summary["n_examples"] == 0
    assert summary["pass_rate"]["value"] is None and summary["role_adherence"] is None
    assert read_results(tmp_path / "run" / "results.jsonl") == []

    model, judge = clients(judge_server.base_url)
    run_eval(bench, tmp_path / "run", model=model, judge=judge, config=EvalConfig(resamples=0))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["complete"] is True and summary["n_examples"] == 4 and summary["pass_rate"]["value"] == 1.0
    assert judge_server.requests >= 4
