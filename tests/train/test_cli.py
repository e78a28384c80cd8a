"""`rnr train`'s options: one flag per TrainConfig field (help and default from the config), the old
adapter flags, and YAML with flag override — checked without training."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _train_runs import run_cli

from rolenrules.train.config import TrainConfig


def _help(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "400")  # one option per line
    assert run_cli("train", "--help") == 0
    return capsys.readouterr().out


def test_train_help_has_the_adapter_short_forms_and_objective_defaults(capsys: pytest.CaptureFixture[str],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # Every field's flag, help and default: tests/cli/test_config_options.py (the same check for every command).
    text = " ".join(_help(capsys, monkeypatch).split())
    for flag in ("--lora", "--qlora", "--full", "-c", "-m", "-d", "-o"):
        assert re.search(rf"(^|\s){flag}[,\s]", text), flag
    assert re.search(r"--lora-r <int> LoRA rank\. \[default: 16\]", text)
    assert re.search(r"--method <sft\|dpo\|grpo\|sft-then-dpo> Training objective.*?\[default: sft\]", text)
    assert re.search(r"--num-generations <int> .*?\[default: 8\]", text)


def test_two_adapters_on_one_command_line_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli("train", "-m", "base", "-d", "x.jsonl", "-o", str(tmp_path / "o"), "--adapter", "full", "--lora")
    assert code == 2 and "choose one adapter (got full, lora)" in capsys.readouterr().err


def test_yaml_values_are_checked_and_flags_override_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_file = tmp_path / "train.yaml"
    config_file.write_text("model: base\ndata: [x.jsonl]\nout: o\nmethod: dpo\n", encoding="utf-8")
    # A DPO config with SFT data: refused before anything is read or loaded.
    assert run_cli("train", "-c", str(config_file)) == 2
    assert "`data` applies to method grpo / sft / sft-then-dpo, not dpo" in capsys.readouterr().err
    # The flag wins over the file's method, and the run then stops at the missing data file.
    assert run_cli("train", "-c", str(config_file), "--method", "sft", "-o", str(tmp_path / "o")) == 2
    assert "x.jsonl" in capsys.readouterr().err
