"""Experiment files take params (`params:` NAME: default, used as `{NAME}`, set with `--param`), and
`rnr run --until STAGE` stops after a stage, so the data can be looked at before training on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from rolenrules.cli import main
from rolenrules.errors import ConfigError
from rolenrules.experiment import load_experiment
from rolenrules.testing.scripted import teacher_reply

TEST_DATA = Path(__file__).resolve().parents[1] / "data"
SEEDS = TEST_DATA / "self_instruct_seed_tasks.jsonl"


def _file(tmp_path: Path, server_url: str = "http://127.0.0.1:9/v1", **extra: Any) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "seeds.jsonl").write_text(SEEDS.read_text())
    config = {
        "params": {"seeds": "data/seeds.jsonl"},
        "workdir": "work",
        "generate": {"input": "{seeds}", "teacher": "openai:any", "base_url": server_url, "num_prompts": 4, "k": 1,
                     "rules": "1", "rule_types": ["punctuation:no_comma"], "judged_rules": "off", "roles": "library"},
        "bench": {"size": 1},
        "train": {"model": "tiny", "mix": ["{seeds}:0.5"], "max_steps": 1},
        **extra,
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_a_param_defaults_to_the_files_value_relative_to_the_file(tmp_path: Path) -> None:
    config = load_experiment(_file(tmp_path))
    seeds = str(tmp_path / "data" / "seeds.jsonl")
    assert config.generate.input == seeds
    assert [s.spec() for s in config.train.data] == [str(tmp_path / "work" / "generated.jsonl"), f"{seeds}:0.5"]


def test_a_param_given_on_the_command_line_is_relative_to_the_current_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _file(tmp_path)
    monkeypatch.chdir(TEST_DATA)
    config = load_experiment(path, {"seeds": SEEDS.name})
    assert config.generate.input == str(SEEDS) and config.train.data[1].spec() == f"{SEEDS}:0.5"
    with pytest.raises(ConfigError, match="--param seedz: .* declares no such param \\(it has: seeds\\)"):
        load_experiment(path, {"seedz": "x"})


def test_a_param_without_a_default_must_be_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped study file names no seed file of its own (rnr ships no Alpaca): it loads only with
    --param seeds=..., and says so in one line without it."""
    example = Path(__file__).resolve().parents[2] / "examples" / "smollm2-rnr.yaml"
    with pytest.raises(ConfigError, match="param seeds has no default: give --param seeds=VALUE"):
        load_experiment(example)
    config = load_experiment(example, {"seeds": str(SEEDS)})
    assert config.generate.input == str(SEEDS) and set(config.arm_configs) == {"sft", "dpo", "sft-lr1e-4"}
    with pytest.raises(SystemExit) as info:
        main(["run", str(example)])
    assert info.value.code == 2 and "give --param seeds=VALUE" in capsys.readouterr().err


def test_until_stops_after_a_stage_and_the_next_run_goes_on(fake_server, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    server = fake_server(reply=teacher_reply())
    path = _file(tmp_path, server.base_url)
    with pytest.raises(SystemExit) as info:
        main(["run", str(path), "--until", "bench", "--param", f"seeds={SEEDS}"])
    assert info.value.code in (0, None)
    err = capsys.readouterr().err
    assert "stopped after [bench] (--until)" in err and "[eval-base]" not in err
    assert (tmp_path / "work" / "bench.jsonl").exists() and not (tmp_path / "work" / "eval-base").exists()
    with pytest.raises(SystemExit) as info:
        main(["run", str(path), "--until", "nosuch"])
    assert info.value.code == 2 and "unknown stage 'nosuch'" in capsys.readouterr().err
