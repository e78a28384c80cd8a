from __future__ import annotations

import re
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
    # Paths in a config file are relative to the file (config_file.resolve_paths).
    assert [s.spec() for s in config.data] == [f"{tmp_path}/rnr.jsonl", f"{tmp_path}/alpaca.json:0.5"]
    assert config.out == tmp_path / "runs" / "a" and config.model == "base"  # a hub id stays as written
    # The old `method: lora` still means SFT with LoRA adapters.
    assert (config.method, config.adapter) == ("sft", "lora")
    assert config.learning_rate("sft") == 2e-4  # the LoRA default, since neither source gave one
    assert resolve_config(config_file, data=["other.jsonl"]).data == [DataSource(path="other.jsonl")]


@pytest.mark.parametrize(("objective", "adapter", "lr"), [
    ("sft", "full", 2e-5), ("sft", "lora", 2e-4), ("sft", "qlora", 2e-4),
    ("dpo", "full", 1e-6), ("dpo", "lora", 5e-6), ("grpo", "full", 1e-6), ("grpo", "lora", 1e-5),
])
def test_default_learning_rate_follows_objective_and_adapter(objective: str, adapter: str, lr: float) -> None:
    config = TrainConfig.model_validate({**BASE, "pairs": ["p.jsonl"], "method": "sft-then-dpo", "adapter": adapter})
    assert config.learning_rate(objective) == lr  # type: ignore[arg-type]
    assert config.model_copy(update={"lr": 3e-3}).learning_rate(objective) == 3e-3  # type: ignore[arg-type]


@pytest.mark.parametrize(("legacy", "adapter"), [("full", "full"), ("lora", "lora"), ("qlora", "qlora")])
def test_old_method_values_mean_sft_with_that_adapter(legacy: str, adapter: str) -> None:
    config = TrainConfig.model_validate({**BASE, "method": legacy})
    assert (config.method, config.adapter, config.stages) == ("sft", adapter, ("sft",))
    assert TrainConfig.model_validate({**BASE, "method": legacy, "adapter": adapter}).adapter == adapter


@pytest.mark.parametrize(("values", "needle"), [
    ({"method": "dpo"}, "`data` applies to method grpo / sft / sft-then-dpo, not dpo"),
    ({"method": "dpo", "data": []}, "method dpo needs `pairs`"),
    ({"method": "sft-then-dpo"}, "method sft-then-dpo needs `pairs`"),
    ({"method": "grpo", "pairs": ["p.jsonl"]}, "`pairs` applies to method dpo / sft-then-dpo, not grpo"),
    ({"beta": 0.2}, "`beta` applies to method dpo / grpo / sft-then-dpo, not sft"),
    ({"method": "dpo", "data": [], "pairs": ["p.jsonl"], "num_generations": 4}, "`num_generations` applies to "
     "method grpo, not dpo"),
    ({"method": "grpo", "packing": True}, "`packing` applies to method sft / sft-then-dpo, not grpo"),
    ({"method": "grpo", "max_length": 512}, "`max_length` applies"),
    ({"method": "lora", "adapter": "full"}, "old spelling of `adapter: lora`"),
    ({"data": []}, "method sft needs `data`"),
])
def test_options_a_method_would_ignore_are_errors(values: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(needle)):
        resolve_config(None, **{**BASE, **values})


def test_each_method_accepts_its_own_options() -> None:
    dpo = TrainConfig.model_validate({"model": "m", "out": "o", "method": "dpo", "pairs": ["p.jsonl:0.5"],
                                      "beta": 0.2, "loss_type": "sigmoid,sft", "dpo_args": "{rpo_alpha: 1}"})
    assert dpo.pairs == [DataSource(path="p.jsonl", weight=0.5)] and dpo.dpo_args == {"rpo_alpha": 1}
    grpo = TrainConfig.model_validate({**BASE, "method": "grpo", "num_generations": 4, "reward": "all",
                                       "use_vllm": True, "grpo_args": {"top_p": 0.9}})
    assert (grpo.stages, grpo.num_generations, grpo.reward) == (("grpo",), 4, "all")
    both = TrainConfig.model_validate({**BASE, "method": "sft-then-dpo", "pairs": ["p.jsonl"], "packing": True,
                                       "beta": 0.3})
    assert both.stages == ("sft", "dpo")


@pytest.mark.parametrize(("bad", "field"), [
    ({"lrr": 1e-4}, "lrr"),
    ({"lr": "fast"}, "lr"),
    ({"lr": -1}, "lr"),
    ({"method": "qlora8"}, "method"),
    ({"adapter": "lora8"}, "adapter"),
    ({"reward": "half"}, "reward"),
    ({"sft_args": "[1, 2]"}, "sft_args"),
    ({"sft_args": "{unclosed"}, "sft_args"),
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
                                         "method": "sft-then-dpo", "adapter": "lora", "pairs": ["p.jsonl:2"],
                                         "eval_pairs": ["q.jsonl"], "lora_target_modules": ["q_proj"], "beta": 0.2,
                                         "sft_args": {"optim": "adafactor"}, "exclude": "held.txt"})
    # Saved with absolute paths (those of the current folder), so it loads back the same from anywhere.
    here = Path.cwd()
    config = config.model_copy(update={
        "data": [DataSource(path=str(here / "a.jsonl"), weight=0.5), DataSource(path=str(here / "b.json"))],
        "eval_data": [DataSource(path=str(here / "e.jsonl"))], "pairs": [DataSource(path=str(here / "p.jsonl"), weight=2)],
        "eval_pairs": [DataSource(path=str(here / "q.jsonl"))], "exclude": here / "held.txt", "out": here / "o"})
    saved = tmp_path / "resolved.yaml"
    saved.write_text(config.to_yaml(), encoding="utf-8")
    assert resolve_config(saved) == config
    # Every default is written out, including options this method does not use; it still loads back.
    grpo = TrainConfig.model_validate({**BASE, "method": "grpo", "data": [str(here / "a.jsonl")], "out": str(here / "o")})
    saved.write_text(grpo.to_yaml(), encoding="utf-8")
    assert "num_generations: 8" in saved.read_text(encoding="utf-8") and resolve_config(saved) == grpo


def test_packing_without_flash_attention_is_refused_before_loading(tmp_path: Path) -> None:
    # sdpa/eager attention ignores the position ids TRL packs with: packed conversations would attend to
    # each other, so the run stops before anything loads.
    from rolenrules.train.objectives import prepare_sft

    config = TrainConfig.model_validate({**BASE, "packing": True})
    with pytest.raises(ConfigError, match="--packing needs --attn-implementation flash_attention_2"):
        prepare_sft(config, None, "fp32")
