"""Cost before and after: prices per million tokens (as providers publish them), the old per-1k option
refused with what changed, and `--dry-run` estimating a run from a handful of real calls, writing nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rolenrules.cli import main
from rolenrules.errors import ConfigError
from rolenrules.generate import GenerateConfig
from rolenrules.testing.scripted import schema_name, teacher_reply

SEEDS = Path(__file__).resolve().parents[1] / "data" / "self_instruct_seed_tasks.jsonl"


def test_per_million_prices_put_a_million_tokens_at_cents() -> None:
    config = GenerateConfig(input="x.jsonl", out="y.jsonl", price_per_1m="0.15,0.6")
    # gpt-4o-mini at its published prices: 1.0M prompt + 50k completion tokens cost 18 cents, not $234.
    assert config.cost(1_000_000, 50_000) == pytest.approx(0.18)
    assert GenerateConfig(input="x.jsonl", out="y.jsonl").cost(1_000_000, 50_000) is None
    with pytest.raises(ConfigError, match="expected 'IN,OUT' USD per million tokens"):
        GenerateConfig(input="x.jsonl", out="y.jsonl", price_per_1m="cheap")


@pytest.mark.parametrize("where", ["flag", "yaml"])
def test_the_old_per_1k_option_says_what_changed(tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str) -> None:
    args = ["generate", "--input", str(SEEDS), "--out", str(tmp_path / "o.jsonl")]
    if where == "flag":
        args += ["--price-per-1k", "0.15,0.6"]
    else:
        (tmp_path / "gen.yaml").write_text("price_per_1k: 0.15,0.6\n")
        args += ["--config", str(tmp_path / "gen.yaml")]
    with pytest.raises(SystemExit) as info:
        main(args)
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    assert "--price-per-1k was replaced by --price-per-1m" in err and "per million tokens" in err
    assert "0.15,0.6" in err
    assert not (tmp_path / "o.jsonl.rnr-run").exists()


def test_the_card_prices_the_run_per_million_tokens(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    server = fake_server(reply=teacher_reply())
    out = tmp_path / "out.jsonl"
    with pytest.raises(SystemExit) as info:
        main(["generate", "--input", str(SEEDS), "--teacher", "openai:any", "--base-url", server.base_url, "--out",
              str(out), "--quiet", "--num-prompts", "1", "--k", "2", "--judged-rules", "on",
              "--verifiable-rules", "0", "--price-per-1m", "1000000,0"])
    assert info.value.code in (0, None)
    card = (tmp_path / "out.jsonl.card.md").read_text()
    prompt_tokens = sum(int(n.replace(",", "")) for n in re.findall(r"^\| (?:teacher|judge) \| \d+ \| ([\d,]+) \|",
                                                                   card, re.MULTILINE))
    # $1M per million prompt tokens: the cost in dollars is the prompt-token count.
    assert f"**${prompt_tokens:,.4f}**" in card and "per 1M prompt" in card


def test_dry_run_counts_requests_and_estimates_cost_from_a_handful_of_calls(
        fake_server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    server = fake_server(reply=teacher_reply())
    here = tmp_path / "work"
    here.mkdir()
    with pytest.raises(SystemExit) as info:
        main(["generate", "--input", str(SEEDS), "--teacher", "openai:any", "--base-url", server.base_url,
              "--out", str(here / "out.jsonl"), "--num-prompts", "4", "--k", "2", "--judged-rules", "on",
              "--price-per-1m", "0.15,0.6", "--dry-run"])
    assert info.value.code in (0, None)
    out = capsys.readouterr().out
    assert server.requests <= 4  # a handful of real calls
    assert [schema_name(b) for b in server.log] == ["TeacherSystemPrompt", None, "JudgeReply"]
    assert list(here.iterdir()) == []  # nothing written
    assert "4 system prompts, 8 conversations, 8 turns to answer" in out
    # low: 4 prompts + 8 replies + 8 verdicts + 8 + 8 calibration calls; high: every attempt (3) used
    assert "requests: 36–76" in out
    match = re.search(r"cost: \$(\d+\.\d+)–\$(\d+\.\d+) at \$0\.15/1M prompt", out)
    assert match and 0 < float(match.group(1)) <= float(match.group(2)) < 1
    assert "estimated from 3 real model call(s)" in out
