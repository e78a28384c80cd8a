"""`rnr run` end to end on CPU: a local OpenAI-compatible server as teacher and judge, a tiny
random model as the student, the bundled example experiment's structure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rolenrules.cli import main
from rolenrules.testing.scripted import teacher_reply

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
    assert info.value.code in (0, None), capsys.readouterr().err
    work = tmp_path / "work"
    assert (work / "generated.jsonl").exists() and (work / "bench.jsonl").exists()
    held_out = set((work / "bench.exclude.txt").read_text().split())
    assert held_out  # the benchmark's system prompts, dropped from training
    assert (work / "model" / "adapter_config.json").exists()
    for which in ("base", "tuned"):
        summary = json.loads((work / f"eval-{which}" / "summary.json").read_text())
        assert "pass_rate" in json.dumps(summary)
    html = (work / "report.html").read_text()
    assert "<html" in html.lower() and "eval-base" in html and "eval-tuned" in html

    requests = server.requests
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["run", str(experiment)])
    err = capsys.readouterr().err
    assert err.count("already complete, skipped") == 6
    assert server.requests == requests
