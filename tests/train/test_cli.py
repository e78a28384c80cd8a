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


def test_every_config_field_is_a_flag_with_its_help_and_default(capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    text = _help(capsys, monkeypatch)
    for name, field in TrainConfig.model_fields.items():
        line = next((ln for ln in text.splitlines() if re.search(rf"--{name.replace('_', '-')}\b", ln)), None)
        assert line is not None, name
        assert " ".join((field.description or "").split()[:4]) in " ".join(line.split()), name
    for flag in ("--lora", "--qlora", "--full", "-c", "-m", "-d", "-o"):
        assert re.search(rf"(^|\s){flag}\s", text), flag
    assert re.search(r"--lora-r\b.*16", text) and re.search(r"--method\b.*sft", text)
    assert re.search(r"--num-generations\b.*8", text)


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
