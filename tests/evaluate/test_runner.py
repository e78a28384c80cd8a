"""`rnr bench build` -> `rnr eval` -> `rnr report` against a local OpenAI-compatible server that is
both the model under test and the judge (scripted, including malformed judge replies)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from _eval_builders import run_cli, generated

from rolenrules.errors import ConfigError
from rolenrules.evaluate import EvalConfig, EvalIncomplete, build_bench, load_bench, read_results, run_eval
from rolenrules.io import write_examples
from rolenrules.judge import Judge
from rolenrules.llm import BackendOptions, make_llm

_PROMPT = re.compile(r"You are assistant number (\d+)\.")


def _prompt_number(text: str) -> int:
    found = _PROMPT.search(text)
    assert found, text[:200]
    return int(found.group(1))


def script(body: dict[str, Any]) -> str:
    """Model: short replies under even-numbered prompts, 200 words under odd ones.
    Judge: fails every 'Rule 0 …', passes the rest (word limits included, right or wrong); never
    parses under prompt 5. Role: out of role under prompt 2."""
    fmt = (body.get("response_format") or {}).get("json_schema", {}).get("name")
    content = body["messages"][-1]["content"]
    if fmt is None:
        p = _prompt_number(body["messages"][0]["content"])
        return "Short answer." if p % 2 == 0 else " ".join(["word"] * 200)
    p = _prompt_number(content)
    if fmt == "RoleReply":
        return json.dumps({"reason": "checked", "in_role": p != 2})
    if p == 5:
        return "I cannot answer in JSON today."
    rules = re.findall(r"^(\d+)\. (.+)$", content.split("Decide for each rule below")[1], re.MULTILINE)
    return json.dumps({"verdicts": [{"rule": int(n), "reason": "scripted", "passed": not text.startswith("Rule 0")}
                                    for n, text in rules]})


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    path = tmp_path / "bench.jsonl"
    build_bench(generated(n_prompts=12, per_prompt=2), path, size=12, seed=0)
    return path


def _clients(server: Any, *, judge: bool = True, **kw: Any) -> tuple[Any, Judge | None]:
    options = BackendOptions(base_url=server.base_url, max_retries=0, timeout=kw.pop("timeout", 30))
    model = make_llm("openai:model-under-test", options, attempts=2)
    return model, Judge(make_llm("openai:judge", options, attempts=2), **kw) if judge else None


def test_eval_scores_every_rule_and_pass_rate_is_share_of_all_passed(tmp_path: Path, bench: Path,
                                                                     fake_server: Any) -> None:
    server = fake_server(reply=script)
    model, judge = _clients(server)
    out = run_eval(bench, tmp_path / "run", model=model, judge=judge,
                   config=EvalConfig(calibrate_judge=True, resamples=200))
    summary = json.loads((out / "summary.json").read_text())
    results = read_results(out / "results.jsonl")
    assert len(results) == summary["n_examples"] == 12 and summary["complete"]
    # the headline: share of results whose every verdict passed; unscored is never a pass
    assert summary["pass_rate"]["value"] == sum(all(r.passed is True for r in x.rules) for x in results) / 12
    for r in results:
        p = _prompt_number(r.messages[0].content)
        sources = {rule.kind: rule.source for rule in r.rules if rule.source != "unscored"}
        assert sources.get("verifiable", "verifier") == "verifier" and sources.get("judged", "judge") == "judge"
        if p == 5:
            assert r.status == "unscored" and not r.passed
            assert all(rule.source == "unscored" for rule in r.rules if rule.kind == "judged")
        for rule in r.rules:
            if rule.kind == "verifiable":    # the word limit: short replies pass, 200 words fail
                assert rule.passed is (p % 2 == 0)
            elif rule.source == "judge":
                assert rule.passed is (not rule.text.startswith("Rule 0"))
        assert r.role is not None and r.role.passed is (p != 2)
        assert r.messages[-1].role == "user" and r.response
    unscored = [r for r in results if r.status == "unscored"]
    assert summary["n_unscored_examples"] == len(unscored) > 0
    assert summary["n_unscored_rules"] == sum(rule.passed is None for r in results for rule in r.rules) > 0
    # calibration: the judge passed every word limit; the verifier failed those under odd prompts
    cal = summary["calibration"]
    checks = [(rule.passed, c.passed) for r in results for rule in r.rules for c in r.calibration
              if c.rule_id == rule.rule_id]
    assert cal["n"] == len([c for c in checks if c[1] is not None]) > 0
    fails = [c for c in checks if c[0] is False and c[1] is not None]
    assert cal["false_pass_rate"] == (1.0 if fails else None)
    assert summary["role_adherence"]["value"] == pytest.approx(
        sum(r.role.passed is True for r in results) / 12)
    assert summary["per_turn"].keys() == {"1", "2"}     # single- and multi-turn examples
    assert json.loads((out / "run.json").read_text())["model"] == "openai:model-under-test"

    # re-running resumes: nothing new is asked, and the usage totals still count the first run
    before = server.requests
    model, judge = _clients(server)
    run_eval(bench, out, model=model, judge=judge, config=EvalConfig(calibrate_judge=True, resamples=200))
    assert server.requests == before
    again = json.loads((out / "summary.json").read_text())
    assert again["usage"] == summary["usage"] and again["usage"]["model"]["requests"] == 12
    assert again["pass_rate"] == summary["pass_rate"]


def test_resume_after_a_killed_run_redoes_only_missing_examples(tmp_path: Path, bench: Path,
                                                                 fake_server: Any) -> None:
    server = fake_server(reply=script)
    model, judge = _clients(server)
    out = run_eval(bench, tmp_path / "run", model=model, judge=judge, config=EvalConfig(resamples=0))
    lines = (out / "results.jsonl").read_text().splitlines()
    # a run killed mid-write: 5 complete lines and half of the sixth; no cache to fall back on
    (out / "results.jsonl").write_text("\n".join(lines[:5]) + "\n" + lines[5][: len(lines[5]) // 2])
    (out / "cache.sqlite").unlink(missing_ok=True)
    server.log.clear()
    model, judge = _clients(server)
    run_eval(bench, out, model=model, judge=judge, config=EvalConfig(resamples=0))
    model_calls = [b for b in server.log if not b.get("response_format")]
    assert len(model_calls) == 12 - 5
    assert sorted(r.id for r in read_results(out / "results.jsonl")) == sorted(e.id for e in load_bench(bench))


def test_a_larger_limit_extends_the_run(tmp_path: Path, bench: Path, fake_server: Any) -> None:
    server = fake_server(reply=script)
    examples = load_bench(bench)
    model, judge = _clients(server)
    run_eval(examples[:4], tmp_path / "run", model=model, judge=judge, config=EvalConfig(resamples=0))
    (tmp_path / "run" / "cache.sqlite").unlink(missing_ok=True)
    server.log.clear()
    model, judge = _clients(server)
    run_eval(examples[:9], tmp_path / "run", model=model, judge=judge, config=EvalConfig(resamples=0))
    assert len([b for b in server.log if not b.get("response_format")]) == 5
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["n_examples"] == 9
    # a benchmark whose stored examples changed is another run
    changed = list(examples[:9])
    changed[0] = changed[0].model_copy(update={"messages": changed[0].messages[:-1] + [
        changed[0].messages[-1].model_copy(update={"content": "a different question"})]})
    with pytest.raises(ConfigError, match="bench_fingerprint"):
        run_eval(changed, tmp_path / "run", model=model, judge=judge, config=EvalConfig(resamples=0))


def test_unreachable_model_fails_after_writing_what_finished(tmp_path: Path, bench: Path,
                                                             fake_server: Any) -> None:
    judge_server = fake_server(reply=script)
    model = make_llm("openai:gone", BackendOptions(base_url="http://127.0.0.1:9/v1", max_retries=0, timeout=2))
    _, judge = _clients(judge_server)
    with pytest.raises(EvalIncomplete, match="re-run the same command to resume"):
        run_eval(bench, tmp_path / "run", model=model, judge=judge, config=EvalConfig(resamples=0))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["n_errors"] == 12 and summary["n_examples"] == 0 and not summary["complete"]


def test_refuses_to_mix_runs_and_needs_a_judge(tmp_path: Path, bench: Path, fake_server: Any) -> None:
    server = fake_server(reply=script)
    model, judge = _clients(server)
    run_eval(bench, tmp_path / "run", model=model, judge=judge, config=EvalConfig(resamples=0))
    other = make_llm("openai:another-model", BackendOptions(base_url=server.base_url))
    with pytest.raises(ConfigError, match="holds another run"):
        run_eval(bench, tmp_path / "run", model=other, judge=judge, config=EvalConfig(resamples=0))
    with pytest.raises(ConfigError, match="--judge"):
        run_eval(bench, tmp_path / "other", model=other, judge=None)


def test_rescore_with_more_votes_keeps_responses(tmp_path: Path, bench: Path, fake_server: Any) -> None:
    server = fake_server(reply=script)
    model, judge = _clients(server)
    out = run_eval(bench, tmp_path / "run", model=model, judge=judge, config=EvalConfig(resamples=0))
    first = {r.id: r.response for r in read_results(out / "results.jsonl")}
    server.log.clear()
    model, judge = _clients(server, votes=3)
    run_eval(bench, out, model=model, judge=judge, config=EvalConfig(resamples=0, rescore=True))
    assert not [b for b in server.log if not b.get("response_format")]     # no new generations
    again = read_results(out / "results.jsonl")
    assert {r.id: r.response for r in again} == first
    assert json.loads((out / "run.json").read_text())["judge_votes"] == 3


def test_cli_bench_build_eval_report(tmp_path: Path, fake_server: Any, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RNR_JUDGE", raising=False)
    server = fake_server(reply=script)
    write_examples(generated(n_prompts=10, per_prompt=2), tmp_path / "gen.jsonl")
    bench = tmp_path / "bench.jsonl"
    assert run_cli("bench", "build", "--from", str(tmp_path / "gen.jsonl"), "--out", str(bench), "--size", "8",
                "--seed", "3") == 0
    assert (tmp_path / "bench.exclude.txt").exists()
    out = tmp_path / "run"
    assert run_cli("eval", "--bench", str(bench), "--model", "openai:m", "--base-url", server.base_url,
                "--judge", "openai:j", "--out", str(out), "--bootstrap", "100", "--calibrate-judge") == 0
    printed = capsys.readouterr().out
    assert "pass-rate (all rules followed)" in printed
    summary = json.loads((out / "summary.json").read_text())
    results = read_results(out / "results.jsonl")
    assert summary["pass_rate"]["value"] == sum(r.passed for r in results) / len(results)
    assert run_cli("report", str(out), "--out", str(tmp_path / "r.html")) == 0
    assert 'id="calibration-table"' in (tmp_path / "r.html").read_text()
    # no judge for a benchmark with judged rules: a clear error, exit 2, before any model call
    before = server.requests
    assert run_cli("eval", "--bench", str(bench), "--model", "openai:m", "--base-url", server.base_url,
                "--out", str(tmp_path / "nojudge")) == 2
    assert "--judge" in capsys.readouterr().err
    assert server.requests == before
