"""Flags derived from typed configs: every option documented with its default, YAML `--config`
with flags on top, and errors that name the flag."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from rolenrules.cli import main
from rolenrules.cli._model_options import command_from_config
from rolenrules.config_file import load_yaml_mapping
from rolenrules.errors import ConfigError, validate_config
from rolenrules.evaluate.config import AlpacaEvalCommandConfig, EvalCommandConfig, LmEvalCommandConfig
from rolenrules.train.config import TrainConfig
from rolenrules.generate import GenerateConfig


def _help(command: str, columns: int = 80) -> str:
    env = {**os.environ, "COLUMNS": str(columns)}
    result = subprocess.run([sys.executable, "-m", "rolenrules", *command.split(), "--help"], capture_output=True,
                            text=True, env=env, check=True)
    return result.stdout


def _option_entries(text: str) -> dict[str, str]:
    """`--flag` -> its whole help entry (click prints an entry's continuation lines indented)."""
    entries: dict[str, str] = {}
    current = None
    for line in text.split("Options:\n", 1)[1].splitlines():
        match = re.match(r"  (?:-\w, )?(--[\w-]+)", line)
        if match:
            current = match.group(1)
            entries[current] = line
        elif current and line.startswith("      "):
            entries[current] += " " + line.strip()
    return entries


@pytest.mark.parametrize(("command", "config"), [
    ("generate", GenerateConfig), ("eval", EvalCommandConfig), ("standard lm-eval", LmEvalCommandConfig),
    ("standard alpaca-eval", AlpacaEvalCommandConfig), ("train", TrainConfig),
])
def test_help_lists_every_field_with_its_default_uncut_at_80_columns(command: str, config: type[BaseModel]) -> None:
    text = _help(command)
    assert "…" not in text
    entries = _option_entries(text)
    flags = {"--" + name.replace("_", "-") for name in config.model_fields}
    assert flags <= set(entries)
    for name, field in config.model_fields.items():
        entry = re.sub(r"-\s", "-", entries["--" + name.replace("_", "-")])  # click may wrap after a hyphen
        assert "[default: " in entry or "(default: " in entry or "[required]" in entry, entry
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        if default not in (None, [], {}) and not isinstance(default, bool):
            assert f"[default: {default}]" in entry, entry


class Toy(BaseModel):
    name: str = Field(description="A required name.")
    k: int = Field(5, ge=1, description="A number.")
    tags: list[str] | None = Field(None, description="Tags (default: none).")
    loud: bool = Field(False, description="Shout.")


def _toy_app(seen: list[dict[str, Any]]) -> typer.Typer:
    app = typer.Typer()
    app.command()(command_from_config(Toy, seen.append, load_yaml_mapping, short={"name": "-n"}))
    return app


@pytest.mark.parametrize(("yaml_text", "args", "expected"), [
    ("name: a\nk: 2\n", [], {"name": "a", "k": 2}),                        # the file's value is not masked by the flag default
    ("name: a\nk: 2\n", ["--k", "5"], {"name": "a", "k": 5}),             # a typed flag wins, even at the default value
    ("name: a\ntags: [x]\n", ["--tags", "y", "--tags", "z"], {"name": "a", "tags": ["y", "z"]}),
    ("loud: true\n", ["-n", "b", "--no-loud"], {"loud": False, "name": "b"}),
])
def test_yaml_config_with_flags_on_top(tmp_path: Path, yaml_text: str, args: list[str],
                                       expected: dict[str, Any]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    seen: list[dict[str, Any]] = []
    result = CliRunner().invoke(_toy_app(seen), ["--config", str(path), *args])
    assert result.exit_code == 0, result.output
    assert seen == [expected]


def test_unknown_yaml_key_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: a\ncolour: red\n")
    result = CliRunner().invoke(_toy_app([]), ["--config", str(path)])
    assert isinstance(result.exception, ConfigError) and "unknown option(s) colour" in str(result.exception)


def test_eval_options_from_yaml_and_flags_make_one_typed_config(tmp_path: Path) -> None:
    path = tmp_path / "eval.yaml"
    path.write_text("out: runs/x\ntask: [ifeval]\nbootstrap: 5\njudge-votes: 3\n")
    seen: list[dict[str, Any]] = []
    app = typer.Typer()
    app.command()(command_from_config(EvalCommandConfig, seen.append, load_yaml_mapping, short={"model": "-m"}))
    result = CliRunner().invoke(app, ["--config", str(path), "-m", "openai:m", "--bootstrap", "100",
                                      "--no-role-adherence"])
    assert result.exit_code == 0, result.output
    config = validate_config(EvalCommandConfig, seen[0], "rnr eval")
    assert (config.out, config.task, config.model, config.judge_votes) == (Path("runs/x"), ["ifeval"], "openai:m", 3)
    run = config.run_config()
    assert (run.resamples, run.role_adherence, run.sampling.temperature) == (100, False, 0.0)


def test_a_bad_eval_flag_is_named_as_typed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["eval", "--out", str(tmp_path / "run"), "--task", "ifeval", "--judge-votes", "0"])
    assert info.value.code == 2
    assert "rnr eval: --judge-votes: Input should be greater than or equal to 1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_lm_eval_dry_run_prints_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main_args = ["standard", "lm-eval", "--out", str(tmp_path), "--tasks", "mmlu,gsm8k", "-m", "hf:org/model",
                 "--limit", "3", "--dry-run"]
    with pytest.raises(SystemExit) as info:
        main(main_args)
    assert info.value.code in (0, None)
    assert capsys.readouterr().out.split() == [
        "lm_eval", "--model", "hf", "--model_args", "pretrained=org/model", "--tasks", "mmlu,gsm8k",
        "--output_path", str(tmp_path / "standard" / "lm_eval"), "--apply_chat_template", "--limit", "3"]
