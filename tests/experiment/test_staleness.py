"""`rnr run` never reuses a stale or partial stage: a stage is done only when its own store says
complete and its options and inputs are unchanged; a changed stage is refused until asked for;
an empty stage input is refused; the experiment file is validated whole before anything runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from rolenrules.cli import main
from rolenrules.testing.scripted import schema_name, teacher_reply

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "experiment.yaml"
SEEDS = Path(__file__).resolve().parents[1] / "data" / "self_instruct_seed_tasks.jsonl"


def _experiment(tmp_path: Path, server_url: str, model_dir: Path, **generate: Any) -> Path:
    config = yaml.safe_load(EXAMPLE.read_text())
    config["workdir"] = str(tmp_path / "work")
    config["generate"].update({"input": str(SEEDS), "teacher": "openai:any", "base_url": server_url, "num_prompts": 6,
                               "k": 3, "price_per_1k": None, "rule_types": ["punctuation:no_comma"],
                               "verifiable_rules": "1", "max_retries": 0, "judged_rules": "on", **generate})
    config["bench"]["size"] = 2
    config["train"].update(model=str(model_dir), epochs=1, max_steps=2, batch_size=2, grad_accum=1, max_length=256,
                           mix=[], logging_steps=1, gradient_checkpointing=False)
    config["eval"].update(judge="openai:any", judge_base_url=server_url, max_tokens=8, role_adherence=False)
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _edit(path: Path, section: str, **values: Any) -> None:
    config = yaml.safe_load(path.read_text())
    config[section].update(values)
    path.write_text(yaml.safe_dump(config))


def _run(*args: str) -> int:
    with pytest.raises(SystemExit) as info:
        main(["run", *args])
    return int(info.value.code or 0)


def _status(work: Path, stage: str) -> str | None:
    path = work / ".stages" / f"{stage}.json"
    return json.loads(path.read_text())["status"] if path.exists() else None


def test_typo_under_train_is_reported_before_anything_runs(fake_server, tiny_model_dir: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    server = fake_server(reply=teacher_reply())
    experiment = _experiment(tmp_path, server.base_url, tiny_model_dir)
    _edit(experiment, "train", epochz=2)
    assert _run(str(experiment)) == 2
    assert "field 'train.epochz': unknown option" in capsys.readouterr().err
    _edit(experiment, "generate", rules="7-3")
    config = yaml.safe_load(experiment.read_text())
    del config["train"]["epochz"]
    experiment.write_text(yaml.safe_dump(config))
    assert _run(str(experiment)) == 2
    assert "generate:" in (err := capsys.readouterr().err) and "inverted" in err
    _edit(experiment, "generate", rules="3-7")
    _edit(experiment, "train", data=["other.jsonl"])
    assert _run(str(experiment)) == 2
    assert "train.data: set by the experiment" in capsys.readouterr().err
    assert server.requests == 0 and not (tmp_path / "work").exists()


def test_partial_generation_is_not_done_and_changed_options_are_refused(
        fake_server, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    state = {"judge_down": True}
    script = teacher_reply()

    def reply(body: dict[str, Any]) -> str:
        # The judge fails on a third of the conversations (after the preflight check).
        if state["judge_down"] and schema_name(body) == "JudgeReply" and sum(map(ord, str(body))) % 3 == 0:
            raise RuntimeError("judge outage")
        return script(body)

    server = fake_server(reply=reply)
    experiment = _experiment(tmp_path, server.base_url, tiny_model_dir)
    work = tmp_path / "work"

    # (a) conversations failed on server errors: the run stops incomplete (3) at generate, nothing trained
    assert _run(str(experiment)) == 3
    err = capsys.readouterr().err
    assert "failed on server errors" in err and "[bench]" not in err
    assert _status(work, "generate") == "started" and _status(work, "bench") is None
    assert not (work / "model").exists()
    partial = [json.loads(line) for line in (work / "generated.jsonl").read_text().splitlines()]
    rejects = [json.loads(line) for line in (work / "generated.jsonl.rejects.jsonl").read_text().splitlines()]
    failed = [r for r in rejects if r["status"] == "failed"]
    assert failed and len(partial) + len(rejects) == 18

    # the judge is back: generation resumes (not "already complete"), then everything runs
    state["judge_down"] = False
    assert _run(str(experiment)) == 0
    err = capsys.readouterr().err
    assert "[generate] running" in err and "[generate] already complete" not in err
    kept = [json.loads(line) for line in (work / "generated.jsonl").read_text().splitlines()]
    assert len(kept) == 18 and {r["id"] for r in failed} <= {k["id"] for k in kept}
    assert all(_status(work, s) == "complete" for s in ("generate", "bench", "train", "eval-base", "eval-tuned"))

    # (b) a changed option is refused, naming it and how to redo the stage; nothing is touched
    model_stamp = (work / "model" / "adapter_model.safetensors").stat().st_mtime_ns
    requests = server.requests
    _edit(experiment, "train", max_steps=3)
    assert _run(str(experiment)) == 2
    err = capsys.readouterr().err
    assert "[train] was made with other options (max_steps: 2 -> 3)" in err and "--force train" in err
    _edit(experiment, "generate", num_prompts=7)
    assert _run(str(experiment)) == 2
    assert "[generate] was made with other options (num_prompts: 6 -> 7)" in capsys.readouterr().err
    _edit(experiment, "generate", num_prompts=6)
    assert server.requests == requests
    assert (work / "model" / "adapter_model.safetensors").stat().st_mtime_ns == model_stamp

    # --force train: train is redone with the new option, and so is every stage reading its output
    assert _run(str(experiment), "--force", "train") == 0
    err = capsys.readouterr().err
    for stage in ("generate", "bench", "eval-base"):
        assert f"[{stage}] already complete, skipped" in err
    for stage in ("train", "eval-tuned", "report"):
        assert f"[{stage}] redoing" in err
    assert (work / "model" / "adapter_model.safetensors").stat().st_mtime_ns != model_stamp
    log = [json.loads(line) for line in (work / "model" / "train_log.jsonl").read_text().splitlines()]
    assert next(r for r in log if r["event"] == "end")["global_step"] == 3
    assert _run(str(experiment)) == 0
    assert capsys.readouterr().err.count("already complete, skipped") == 6


def test_empty_training_input_is_refused(fake_server, tiny_model_dir: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    """One prompt, one kept conversation, which goes to the benchmark: nothing is left to train on."""
    server = fake_server(reply=teacher_reply())
    experiment = _experiment(tmp_path, server.base_url, tiny_model_dir, num_prompts=1, k=1)
    _edit(experiment, "bench", size=1)
    assert _run(str(experiment)) == 2
    err = capsys.readouterr().err
    assert "none of the 1 generated examples is left for training" in err and "[bench] warning: only 1 benchmark" in err, err
    assert not (tmp_path / "work" / "model").exists()
