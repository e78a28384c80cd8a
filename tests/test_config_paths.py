"""Paths in a YAML config are relative to the config file — one rule for `rnr generate`, `rnr train` and
`rnr run` — and a path that is only found from the current folder is an error, never a silent fall-back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rolenrules.cli import main
from rolenrules.config_file import load_yaml_mapping, resolve_paths
from rolenrules.errors import ConfigError
from rolenrules.experiment import load_experiment
from rolenrules.generate import GenerateConfig
from rolenrules.train.config import resolve_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_each_kind_of_path_resolves_against_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path / "conf"
    (base / "models" / "tiny").mkdir(parents=True)
    values = {"input": "seeds.jsonl", "out": "out/ds/", "hub": "hf://owner/name:train", "abs": "/data/x.jsonl",
              "data": ["a.jsonl:0.5", "hf://o/n:train:0.25", {"path": "b.jsonl", "weight": 2}],
              "model": "models/tiny", "hub_model": "Qwen/Qwen2.5-0.5B-Instruct", "pairs": "true"}
    kinds = {"input": "input", "out": "output", "hub": "input", "abs": "input", "data": "data", "model": "model",
             "hub_model": "model", "pairs": "flag"}
    got = resolve_paths(values, base, kinds, source="c.yaml")
    assert got["input"] == f"{base}/seeds.jsonl" and got["out"] == f"{base}/out/ds/"  # a folder stays a folder
    assert got["hub"] == "hf://owner/name:train" and got["abs"] == "/data/x.jsonl"
    assert got["data"] == [f"{base}/a.jsonl:0.5", "hf://o/n:train:0.25", {"path": f"{base}/b.jsonl", "weight": 2}]
    assert got["model"] == f"{base}/models/tiny" and got["hub_model"] == "Qwen/Qwen2.5-0.5B-Instruct"
    assert got["pairs"] == "true"
    # Found only from the current folder: refused, not silently used.
    (tmp_path / "cwd-model").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="c.yaml: model: cwd-model is not in the config file's folder"):
        resolve_paths({"model": "cwd-model"}, base, {"model": "model"}, source="c.yaml")


def test_generate_and_train_configs_load_relative_to_their_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    quick = load_yaml_mapping(EXAMPLES / "quickstart.yaml", GenerateConfig.PATHS)
    assert quick["input"] == str(EXAMPLES / "data" / "seed_sample.jsonl") and Path(quick["input"]).exists()
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "train.yaml").write_text("model: base\ndata: [rnr.jsonl]\nout: runs/a\nexclude: bench.exclude.txt\n")
    config = resolve_config(conf / "train.yaml")
    assert config.data[0].path == str(conf / "rnr.jsonl") and config.out == conf / "runs" / "a"
    assert config.exclude == conf / "bench.exclude.txt"


def test_rnr_train_reads_data_beside_its_config_not_the_current_folder(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "train.yaml").write_text("model: base\ndata: [d.jsonl]\nout: o\n")
    (tmp_path / "d.jsonl").write_text(json.dumps({"instruction": "hi", "output": "hello"}) + "\n")  # the wrong one
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["train", "--config", str(conf / "train.yaml")])
    assert info.value.code == 2 and str(conf / "d.jsonl") in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (conf / "o").exists()


def test_an_experiment_resolves_against_its_file_and_names_a_missing_input(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "seeds.jsonl").write_text(json.dumps({"instruction": "hi"}) + "\n")
    experiment = {"workdir": "work", "generate": {"input": "seeds.jsonl"},
                  "train": {"model": "base", "mix": ["seeds.jsonl:0.5"]}}
    (conf / "x.yaml").write_text(yaml.safe_dump(experiment))
    monkeypatch.chdir(tmp_path)
    config = load_experiment(conf / "x.yaml")
    assert config.workdir == conf / "work" and config.generate.input == str(conf / "seeds.jsonl")
    assert config.mix == [f"{conf}/seeds.jsonl:0.5"] and config.generate.out == str(conf / "work" / "generated.jsonl")
    experiment["train"]["mix"] = ["original.jsonl:0.5"]
    (tmp_path / "original.jsonl").write_text("{}\n")  # in the current folder only: not used
    (conf / "x.yaml").write_text(yaml.safe_dump(experiment))
    with pytest.raises(ConfigError, match=r"x\.yaml: train\.mix: .*conf/original\.jsonl does not exist"):
        load_experiment(conf / "x.yaml")


def test_the_example_experiment_prices_per_million_tokens() -> None:
    values = yaml.safe_load((EXAMPLES / "experiment.yaml").read_text())
    assert values["generate"]["teacher"] == "openai:gpt-4o-mini"
    assert values["generate"]["price_per_1m"] == "0.15,0.6"  # gpt-4o-mini's published prices are per million tokens
    assert "price_per_1k" not in values["generate"]
