"""`rnr eval` as a user runs it: progress with rate and ETA, the default --max-tokens per backend,
and the up-front duration estimate of an embedded-model run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from _eval_builders import run_cli

from rolenrules.cli.evaluate import DEFAULT_MAX_TOKENS, LOCAL_MAX_TOKENS, local_estimate
from rolenrules.records import Example, Message, SystemPrompt
from rolenrules.rules import rule_from_type


def _bench(path: Path, n: int, question: str = "Say hello.") -> Path:
    """A benchmark of verifiable rules only (no judge needed)."""
    prompt = SystemPrompt(role="You are a terse assistant.", rules=[rule_from_type("punctuation:no_comma")])
    rows = [Example(id=f"b{i}", messages=[Message(role="user", content=f"{question} ({i})")]).with_system(prompt)
            for i in range(n)]
    path.write_text("".join(e.model_dump_json() + "\n" for e in rows))
    return path


def test_progress_lines_show_rate_and_eta_when_stderr_is_not_a_terminal(
        tmp_path: Path, fake_server: Any, capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[int] = []

    def reply(body: dict[str, Any]) -> str:
        seen.append(body["max_tokens"])
        return "Hello there."

    server = fake_server(reply=reply)
    bench = _bench(tmp_path / "bench.jsonl", 6)
    args = ["eval", "--bench", str(bench), "--model", "openai:m", "--base-url", server.base_url,
            "--no-role-adherence", "--out", str(tmp_path / "run"), "--concurrency", "1"]
    assert run_cli(*args, "--limit", "2") == 0
    err = capsys.readouterr().err
    assert "evaluating: 2 examples to answer (0 already done)" in err
    assert re.search(r"evaluating: 1/2 \([\d.]+ (ex/min|s/ex), \d+s elapsed, ETA \d+s\)", err), err
    assert re.search(r"evaluating: 2/2 \(", err)
    assert "tokens/s on a 2-core CPU" not in err                # no estimate for a remote model
    assert seen == [DEFAULT_MAX_TOKENS] * 2
    # resumed: the rate counts this invocation's answers only, from the 2 already there
    assert run_cli(*args) == 0
    err = capsys.readouterr().err
    assert "evaluating: 4 examples to answer (2 already done)" in err
    assert re.search(r"evaluating: 3/6 \(.*ETA", err)


@pytest.mark.parametrize(("spec", "expected"), [
    ("local:smollm2", LOCAL_MAX_TOKENS),
    ("local:/models/any.gguf", LOCAL_MAX_TOKENS),
    ("openai:gpt-4o-mini", None),
    ("hf:./tuned", None),
])
def test_duration_estimate_only_for_embedded_models(spec: str, expected: int | None) -> None:
    line = local_estimate(spec, 50, LOCAL_MAX_TOKENS)
    if expected is None:
        assert line is None
    else:
        assert line is not None and f"50 examples to answer × up to {expected} tokens ≈ up to " in line
    assert local_estimate(spec, 0, LOCAL_MAX_TOKENS) is None     # nothing left to answer: nothing to say


@pytest.mark.slow
def test_embedded_model_eval_uses_its_default_max_tokens_and_says_how_long(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = _bench(tmp_path / "bench.jsonl", 1, question="Reply with the single word yes.")
    out = tmp_path / "run"
    assert run_cli("eval", "--bench", str(bench), "--model", "local:smollm2", "--no-role-adherence",
                   "--out", str(out)) == 0
    err = capsys.readouterr().err
    assert f"1 example to answer × up to {LOCAL_MAX_TOKENS} tokens ≈ up to" in err
    assert err.index("tokens/s on a 2-core CPU") < err.index("evaluating: 1/1")    # said before the work
    assert json.loads((out / "run.json").read_text())["sampling"]["max_tokens"] == LOCAL_MAX_TOKENS
