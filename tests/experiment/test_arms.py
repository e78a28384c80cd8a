"""`rnr run` with several trained arms: each with its own method (SFT; DPO on the generated pairs,
started from the SFT arm's model), all evaluated against the base on the same held-out test part and
the same built-in task subset, one results table comparing every arm with the base; stages and
fingerprints per arm; the benchmark's validation part held out from training and never scored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from rolenrules.cli import main
from rolenrules.errors import ConfigError
from rolenrules.experiment import load_experiment
from rolenrules.heldout import read_exclusions
from rolenrules.io import read_examples
from rolenrules.testing.scripted import teacher_reply

SEEDS = Path(__file__).resolve().parents[1] / "data" / "self_instruct_seed_tasks.jsonl"
#: The teacher's first sample breaks `punctuation:no_comma`, the second follows it: a pair for every turn.
COMMA, PLAIN = "Sure, here it is.", "Sure here it is."


def _config(tmp_path: Path, server_url: str, model_dir: Path) -> dict[str, Any]:
    quick = {"epochs": 1, "max_steps": 2, "batch_size": 2, "grad_accum": 1, "max_length": 256, "logging_steps": 1,
             "gradient_checkpointing": False}
    return {
        "workdir": str(tmp_path / "work"),
        "generate": {"input": str(SEEDS), "teacher": "openai:any", "base_url": server_url, "num_prompts": 8, "k": 2,
                     "rules": "1", "rule_types": ["punctuation:no_comma"], "judged_rules": "off", "roles": "library",
                     "best_of": 2,
                     "pairs": True, "max_retries": 0},
        "bench": {"size": 3, "validation": 2},
        "train": {"model": str(model_dir), "adapter": "lora", "mix": [f"{SEEDS}:0.05"], **quick},
        "arms": {"sft": {"method": "sft"}, "dpo": {"method": "dpo", "from": "sft", "beta": 0.2}},
        "eval": {"max_tokens": 8, "role_adherence": False, "tasks": ["ifeval"], "sample": 3, "batch_size": 4},
    }


def _write(tmp_path: Path, config: dict[str, Any]) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _run(*args: str) -> int:
    with pytest.raises(SystemExit) as info:
        main(["run", *args])
    return int(info.value.code or 0)


def test_arms_are_trained_evaluated_against_the_base_and_reported_together(
        fake_server, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    server = fake_server(reply=teacher_reply(answer=lambda body: PLAIN if body.get("seed") == 1 else COMMA))
    experiment = _write(tmp_path, _config(tmp_path, server.base_url, tiny_model_dir))
    assert _run(str(experiment)) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    work = tmp_path / "work"
    order = ["generate", "bench", "eval-base", "train-sft", "eval-sft", "train-dpo", "eval-dpo", "report"]
    positions = [err.index(f"[{stage}] running") for stage in order]
    assert positions == sorted(positions)

    # The held-out benchmark: a test part the run scores, a validation part it never scores; both out of training.
    test, validation = list(read_examples(work / "bench.jsonl")), list(read_examples(work / "bench.validation.jsonl"))
    test_prompts, validation_prompts = {e.system_prompt.id for e in test}, {e.system_prompt.id for e in validation}
    assert len(test) == 3 and len(validation) == 2 and not test_prompts & validation_prompts
    assert test_prompts | validation_prompts <= read_exclusions(work / "bench.exclude.txt")

    # Each arm trained its method on the right data; DPO started from the SFT arm's merged model.
    sft = yaml.safe_load((work / "arms" / "sft" / "rnr_train_config.yaml").read_text())
    dpo = yaml.safe_load((work / "arms" / "dpo" / "rnr_train_config.yaml").read_text())
    assert sft["method"] == "sft" and sft["merge"] is True and sft["data"][0].endswith("generated.jsonl")
    assert dpo["method"] == "dpo" and dpo["model"] == str(work / "arms" / "sft" / "merged") and dpo["beta"] == 0.2
    assert dpo["pairs"] == [str(work / "generated.jsonl.pairs.jsonl")] and dpo["exclude"] == sft["exclude"]
    assert (work / "arms" / "dpo" / "adapter_config.json").exists()

    # Every model on the same test part and the same task subset.
    for model in ("base", "sft", "dpo"):
        bench = json.loads((work / f"eval-{model}" / "summary.json").read_text())
        task = json.loads((work / "tasks" / "ifeval" / f"eval-{model}" / "summary.json").read_text())
        assert bench["complete"] and bench["n_examples"] == 3 and task["complete"] and task["n_examples"] == 3
    keys = {m: {json.loads(line)["id"] for line in (work / "tasks" / "ifeval" / f"eval-{m}" / "results.jsonl")
                .read_text().splitlines()} for m in ("base", "sft", "dpo")}
    assert keys["base"] == keys["sft"] == keys["dpo"]
    results = (work / "results.md").read_text()
    rows = [line for line in results.splitlines() if line.startswith("| RNR held-out test") or
            line.startswith("| ifeval")]
    assert len(rows) == 6  # two evaluations x (base, sft, dpo)
    arm_rows = [r.split(" | ") for r in rows if "| base |" not in r]
    assert all(cells[4].endswith("]") and "pts" in cells[4] and cells[5] for cells in arm_rows)  # diff, CI, p
    assert all(r.split(" | ")[2] == "3" for r in rows)  # n, a count
    assert (work / "report.html").exists() and (work / "tasks" / "ifeval" / "report.html").exists()
    assert "## Results" in err

    # Nothing left to do: every stage is skipped, no request is sent.
    requests = server.requests
    assert _run(str(experiment)) == 0
    assert capsys.readouterr().err.count("already complete, skipped") == len(order)
    assert server.requests == requests

    # An arm's changed option is refused by its own stage; --force on the SFT arm redoes what reads it.
    config = _config(tmp_path, server.base_url, tiny_model_dir)
    config["arms"]["dpo"]["beta"] = 0.3
    _write(tmp_path, config)
    assert _run(str(experiment)) == 2
    assert "[train-dpo] was made with other options (beta: 0.2 -> 0.3)" in capsys.readouterr().err
    config["arms"]["dpo"]["beta"] = 0.2
    _write(tmp_path, config)
    assert _run(str(experiment), "--force", "train-sft") == 0
    err = capsys.readouterr().err
    for stage in ("generate", "bench", "eval-base"):
        assert f"[{stage}] already complete, skipped" in err
    for stage in ("train-sft", "eval-sft", "train-dpo", "eval-dpo", "report"):
        assert f"[{stage}] redoing" in err


@pytest.mark.parametrize(("edit", "message"), [
    (lambda c: c["arms"]["dpo"].update({"from": "nosuch"}), "arms.dpo.from: 'nosuch' is not an arm listed before"),
    (lambda c: c["generate"].pop("pairs"), "arms.dpo: method dpo trains on the generated preference pairs"),
    (lambda c: c["arms"].update({"base": {}}), "arms.base: an arm name is"),
    (lambda c: c["arms"]["sft"].update({"lrr": 1}), "field 'arms.sft.lrr': unknown option"),
    (lambda c: c["arms"]["sft"].update({"pairs": "x.jsonl"}), "arms.sft.pairs: set by the experiment"),
    (lambda c: c["eval"].update({"tasks": ["nosuch"]}), "unknown task 'nosuch'"),
])
def test_a_bad_arm_is_refused_when_the_file_is_loaded(edit, message: str, tmp_path: Path,  # noqa: ANN001
                                                      tiny_model_dir: Path) -> None:
    config = _config(tmp_path, "http://127.0.0.1:9/v1", tiny_model_dir)
    edit(config)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        load_experiment(_write(tmp_path, config))
