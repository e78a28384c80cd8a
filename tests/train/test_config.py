from __future__ import annotations

from pathlib import Path

import pytest

from rolenrules.errors import ConfigError
from rolenrules.train.config import DataSource, TrainConfig, resolve_config

BASE = {"model": "m", "data": ["a.jsonl"], "out": "o"}


@pytest.mark.parametrize(("spec", "path", "weight"), [
    ("rnr.jsonl", "rnr.jsonl", 1.0),
    ("rnr.jsonl:0.5", "rnr.jsonl", 0.5),
    ("alpaca.json:2", "alpaca.json", 2.0),
    ("hf://owner/name:train", "hf://owner/name:train", 1.0),
    ("hf://owner/name:train:0.25", "hf://owner/name:train", 0.25),
    ("/abs/dir/data.parquet:1.5", "/abs/dir/data.parquet", 1.5),
])
def test_data_spec_takes_a_numeric_suffix_as_weight(spec: str, path: str, weight: float) -> None:
    source = DataSource.parse(spec)
    assert (source.path, source.weight) == (path, weight)
    assert DataSource.parse(source.spec()) == source


def test_flags_override_the_yaml_file(tmp_path: Path) -> None:
    config_file = tmp_path / "train.yaml"
    config_file.write_text("model: base\ndata: [rnr.jsonl, 'alpaca.json:0.5']\nout: runs/a\nmethod: lora\n"
                           "batch_size: 8\nepochs: 2\n", encoding="utf-8")
    config = resolve_config(config_file, batch_size=2, lr=None, data=None, max_steps=5)
    assert config.batch_size == 2 and config.max_steps == 5 and config.epochs == 2
    assert [s.spec() for s in config.data] == ["rnr.jsonl", "alpaca.json:0.5"]
    assert config.lr == 2e-4  # the LoRA default, since neither source gave one
    assert resolve_config(config_file, data=["other.jsonl"]).data == [DataSource(path="other.jsonl")]


@pytest.mark.parametrize(("method", "lr"), [("full", 2e-5), ("lora", 2e-4), ("qlora", 2e-4)])
def test_default_learning_rate_follows_the_method(method: str, lr: float) -> None:
    assert TrainConfig.model_validate({**BASE, "method": method}).lr == lr


@pytest.mark.parametrize(("bad", "field"), [
    ({"lrr": 1e-4}, "lrr"),
    ({"lr": "fast"}, "lr"),
    ({"lr": -1}, "lr"),
    ({"method": "qlora8"}, "method"),
    ({"data": ["a.jsonl:0"]}, "data.0.weight"),
    ({"batch_size": 0}, "batch_size"),
    ({"precision": "fp8"}, "precision"),
    ({"model": None}, "model"),
])
def test_bad_fields_are_config_errors_naming_the_field(tmp_path: Path, bad: dict, field: str) -> None:
    import yaml

    config_file = tmp_path / "bad.yaml"
    values = {**BASE, **bad}
    values = {k: v for k, v in values.items() if v is not None}
    config_file.write_text(yaml.safe_dump(values), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        resolve_config(config_file)
    assert f"field '{field}'" in str(caught.value)
    assert str(config_file) in str(caught.value)


@pytest.mark.parametrize(("text", "needle"), [
    ("- just\n- a list\n", "must be a mapping"),
    ("model: [unclosed\n", "invalid YAML"),
])
def test_malformed_config_files_are_clear_errors(tmp_path: Path, text: str, needle: str) -> None:
    config_file = tmp_path / "c.yaml"
    config_file.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=needle):
        resolve_config(config_file)


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        resolve_config(tmp_path / "nope.yaml")


def test_resolved_config_yaml_loads_back_identically(tmp_path: Path) -> None:
    config = TrainConfig.model_validate({**BASE, "data": ["a.jsonl:0.5", "b.json"], "eval_data": ["e.jsonl"],
                                         "method": "lora", "lora_target_modules": ["q_proj"],
                                         "sft_args": {"optim": "adafactor"}, "exclude": "held.txt"})
    saved = tmp_path / "resolved.yaml"
    saved.write_text(config.to_yaml(), encoding="utf-8")
    assert resolve_config(saved) == config
