"""Standard-benchmark wrappers: the commands they build, the outputs they write, the results they read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _eval_builders import result, scored, write_run

from rolenrules.errors import ConfigError, DataError
from rolenrules.evaluate.report import write_report
from rolenrules.evaluate.standard import (
    alpaca_eval_command, lm_eval_command, read_alpaca_instructions, read_lm_eval, read_standard,
    write_alpaca_outputs,
)
from rolenrules.llm import BackendOptions, make_llm


@pytest.mark.parametrize(("spec", "kwargs", "model", "args"), [
    ("openai:qwen", {"base_url": "http://127.0.0.1:8000/v1/"}, "local-chat-completions",
     "model=qwen,base_url=http://127.0.0.1:8000/v1/chat/completions,num_concurrent=8"),
    ("openai:qwen", {"base_url": "http://h:8000/v1", "endpoint": "completions", "tokenizer": "Qwen/Qwen2.5-0.5B"},
     "local-completions", "model=qwen,base_url=http://h:8000/v1/completions,num_concurrent=8,tokenized_requests=False,"
                          "tokenizer_backend=huggingface,tokenizer=Qwen/Qwen2.5-0.5B"),
    ("hf:./runs/tuned", {}, "hf", "pretrained=./runs/tuned"),
    ("vllm:Qwen/Qwen2.5-7B-Instruct", {}, "vllm", "pretrained=Qwen/Qwen2.5-7B-Instruct"),
])
def test_lm_eval_command_maps_specs(spec: str, kwargs: dict[str, Any], model: str, args: str) -> None:
    command = lm_eval_command(spec, ["mmlu", "gsm8k"], "out/standard/lm_eval", limit=10, **kwargs)
    assert command[:5] == ["lm_eval", "--model", model, "--model_args", args]
    assert command[5:9] == ["--tasks", "mmlu,gsm8k", "--output_path", "out/standard/lm_eval"]
    assert "--apply_chat_template" in command and command[-2:] == ["--limit", "10"]


@pytest.mark.parametrize(("spec", "kwargs", "match"), [
    ("local:smollm2", {}, "OpenAI-compatible server"),
    ("openai:qwen", {}, "--base-url"),
    ("openai:qwen", {"base_url": "http://h/v1", "endpoint": "grpc"}, "unknown endpoint"),
])
def test_lm_eval_command_errors(spec: str, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        lm_eval_command(spec, ["mmlu"], "out", **kwargs)


LM_EVAL_RESULTS = {
    "results": {
        "mmlu": {"alias": "mmlu", "acc,none": 0.4123, "acc_stderr,none": 0.0041},
        "gsm8k": {"alias": "gsm8k", "exact_match,strict-match": 0.25, "exact_match_stderr,strict-match": 0.012,
                  "exact_match,flexible-extract": 0.3, "exact_match_stderr,flexible-extract": "N/A"},
    },
    "config": {"model": "hf", "model_args": "pretrained=./runs/tuned"},
    "model_name": "./runs/tuned",
}


def test_read_lm_eval_results(tmp_path: Path) -> None:
    path = tmp_path / "results_2025-01-01.json"
    path.write_text(json.dumps(LM_EVAL_RESULTS))
    res = read_lm_eval(path)
    assert res.model == "./runs/tuned"
    assert res.metrics == {"gsm8k exact_match (flexible-extract)": 0.3, "gsm8k exact_match (strict-match)": 0.25,
                           "mmlu acc": 0.4123}
    assert res.stderr == {"gsm8k exact_match (strict-match)": 0.012, "mmlu acc": 0.0041}
    bad = tmp_path / "bad.json"
    bad.write_text('{"config": {}}')
    with pytest.raises(DataError, match="results"):
        read_lm_eval(bad)


def test_alpaca_outputs_and_leaderboard_beside_rnr_results(tmp_path: Path, fake_server: Any) -> None:
    instructions = tmp_path / "alpaca_eval.json"
    instructions.write_text(json.dumps([{"instruction": f"Say {w}.", "dataset": "helpful_base"} for w in "abc"]))
    rows = read_alpaca_instructions(instructions, limit=2)
    server = fake_server(reply=lambda body: "Sure: " + body["messages"][-1]["content"])
    llm = make_llm("openai:tuned", BackendOptions(base_url=server.base_url))
    run = write_run(tmp_path / "run", [result("e1", [scored(True)])])
    out = write_alpaca_outputs(llm, rows, run / "standard" / "alpaca_eval" / "model_outputs.json",
                               generator="openai:tuned", system="Be brief.")
    outputs = json.loads(out.read_text())
    assert outputs == [{"instruction": "Say a.", "output": "Sure: Say a.", "generator": "openai:tuned",
                        "dataset": "helpful_base"},
                       {"instruction": "Say b.", "output": "Sure: Say b.", "generator": "openai:tuned",
                        "dataset": "helpful_base"}]
    assert server.log[0]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert alpaca_eval_command(out, out.parent, annotators_config="weighted_alpaca_eval_gpt4_turbo")[:2] == [
        "alpaca_eval", "evaluate"]
    # what `alpaca_eval evaluate --output_path` leaves: the leaderboard, including reference models
    board = out.parent / "weighted_alpaca_eval_gpt4_turbo" / "leaderboard.csv"
    board.parent.mkdir()
    board.write_text(",win_rate,standard_error,n_total,length_controlled_winrate,lc_standard_error\n"
                     "gpt4_turbo,50.0,0.0,805,50.0,0.0\nopenai:tuned,12.5,1.1,805,15.25,0.7\n")
    found = read_standard(run / "standard")
    assert [(r.tool, r.model) for r in found] == [("alpaca-eval", "openai:tuned")]
    assert found[0].metrics == {"alpaca_eval length_controlled_winrate": 15.25, "alpaca_eval win_rate": 12.5}
    lm = tmp_path / "lm" / "results_x.json"
    lm.parent.mkdir()
    lm.write_text(json.dumps(LM_EVAL_RESULTS))
    text = write_report([run], tmp_path / "r.html", extras=[lm])
    assert "### Standard benchmarks" in text
    assert "| alpaca_eval length_controlled_winrate | 15.25 ± 0.7 | – |" in text
    assert "| mmlu acc | – | 0.4123 ± 0.0041 |" in text
    assert "standard-table" in (tmp_path / "r.html").read_text()
