"""`rnr run` end to end on CPU: a local OpenAI-compatible server as teacher and judge, a tiny
random model as the student, the bundled example experiment's structure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rolenrules.cli import main
from rolenrules.io import read_examples
from rolenrules.testing.scripted import teacher_reply
from rolenrules.train import TrainConfig
from rolenrules.heldout import held_out_ids, read_exclusions
from rolenrules.train.data import mix_examples

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "experiment.yaml"
SEEDS = Path(__file__).resolve().parents[1] / "data" / "self_instruct_seed_tasks.jsonl"


def _experiment(tmp_path: Path, server_url: str, model_dir: Path, seeds: Path) -> Path:
    config = yaml.safe_load(EXAMPLE.read_text())
    config["workdir"] = str(tmp_path / "work")
    config["generate"].update(input=str(seeds), teacher="openai:any", base_url=server_url, num_prompts=6, k=3,
                              price_per_1k=None, rule_types=["punctuation:no_comma"], verifiable_rules="1")
    config["bench"]["size"] = 2
    config["train"].update(model=str(model_dir), epochs=1, max_steps=2, batch_size=2, grad_accum=1, max_length=256,
                           mix=[str(seeds) + ":0.1"], logging_steps=1, gradient_checkpointing=False)
    config["eval"].update(judge="openai:any", judge_base_url=server_url, max_tokens=8, role_adherence=True)
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_rnr_run_end_to_end_then_skips_everything(fake_server, tiny_model_dir: Path,
                                                  tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    server = fake_server(reply=teacher_reply())
    seeds = SEEDS
    experiment = _experiment(tmp_path, server.base_url, tiny_model_dir, seeds)
    with pytest.raises(SystemExit) as info:
        main(["run", str(experiment)])
    err = capsys.readouterr().err
    assert info.value.code in (0, None), err
    work = tmp_path / "work"
    assert (work / "generated.jsonl").exists() and (work / "bench.jsonl").exists()
    held_out = set((work / "bench.exclude.txt").read_text().split())
    assert held_out  # the benchmark's system prompts, dropped from training
    bench_prompts = {e.system_prompt.id for e in read_examples(work / "bench.jsonl")}
    assert bench_prompts and bench_prompts <= held_out
    assert (work / "model" / "adapter_config.json").exists()
    # What the model was trained on, rebuilt from its saved config: no benchmark system prompt in it.
    trained = TrainConfig.model_validate(yaml.safe_load((work / "model" / "rnr_train_config.yaml").read_text()))
    examples, mixed = mix_examples(trained.data, exclude=read_exclusions(trained.exclude), seed=trained.seed)
    assert examples and not any(held_out_ids(e) & held_out for e in examples)
    generated = [e for e in read_examples(work / "generated.jsonl")]
    assert sum(1 for e in generated if e.system_prompt.id in bench_prompts) == mixed.sources[0].excluded > 0
    logged = [json.loads(line) for line in (work / "model" / "train_log.jsonl").read_text().splitlines()]
    assert next(r for r in logged if r["event"] == "data")["sources"][0]["excluded"] == mixed.sources[0].excluded
    for which in ("base", "tuned"):
        summary = json.loads((work / f"eval-{which}" / "summary.json").read_text())
        # Every benchmark example was answered and scored: a pass rate over all of them, with its interval.
        assert summary["complete"] is True and summary["n_examples"] == summary["run"]["n_bench"] == 2
        assert summary["n_errors"] == 0
        rate = summary["pass_rate"]
        assert rate["n"] == summary["n_examples"] and rate["low"] <= rate["value"] <= rate["high"]
    html = (work / "report.html").read_text()
    assert "<html" in html.lower() and "eval-base" in html and "eval-tuned" in html
    # Results are readable lines, runs labelled by model; no Python reprs.
    assert "BenchStats(" not in err and "[bench] 2 examples under 2 held-out system prompts" in err
    assert f"[eval-base] hf:{tiny_model_dir} on bench.jsonl (base): pass-rate" in err and f"eval-tuned = hf:{work / 'model'}" in err

    requests = server.requests
    with pytest.raises(SystemExit):
        main(["run", str(experiment)])
    err = capsys.readouterr().err
    assert err.count("already complete, skipped") == 6
    assert server.requests == requests
