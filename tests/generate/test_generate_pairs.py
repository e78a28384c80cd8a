"""Preference pairs from generation (`rnr generate --pairs`): every turn where a reply broke a rule and
another followed them all gives a pair in exactly the format `rolenrules.train.pairs` reads, that the rule
library confirms, that obeys the benchmark's held-out system prompts, and that `rnr train --method dpo`
trains on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rolenrules.cli import main
from rolenrules.evaluate import build_bench
from rolenrules.heldout import exclude_path, read_exclusions
from rolenrules.io import read_examples
from rolenrules.records import Rule
from rolenrules.rules import check_rule
from rolenrules.testing.scripted import last_user, teacher_reply
from rolenrules.train.config import DataSource
from rolenrules.train.pairs import PreferencePair, mix_pairs, read_pairs

SEEDS = Path(__file__).resolve().parents[1] / "data" / "self_instruct_seed_tasks.jsonl"
COMMA = "A first answer, with a comma."
FIXED = "A fixed answer without any commas."


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _generate(server_url: str, out: Path, *extra: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(["generate", "--input", str(SEEDS), "--teacher", "openai:any", "--base-url", server_url, "--out",
              str(out), "--quiet", "--num-prompts", "3", "--k", "2", "--rules", "2", "--verifiable-rules", "1",
              "--rule-types", "punctuation:no_comma", "--judged-rules", "on", *extra])
    assert info.value.code in (0, None)


def _first_attempt_fails(body: dict[str, Any]) -> str:
    return FIXED if "Your last reply broke" in last_user(body) else COMMA


def _check_pair_against_the_rule_library(row: dict[str, Any]) -> list[Rule]:
    """The row is exactly what train.pairs reads; the rule library passes chosen and fails rejected on
    every rule the pair records as broken."""
    pair = PreferencePair.model_validate(row)
    assert pair.model_dump() == row
    failed = [Rule.model_validate({k: v for k, v in r.items() if k not in ("reason", "source")})
              for r in row["metadata"]["failed_rules"]]
    assert failed
    for rule in failed:
        assert rule.kind == "verifiable"
        assert check_rule(rule, pair.chosen[0].content).passed is True
        assert check_rule(rule, pair.rejected[0].content).passed is False
    return failed


def test_pairs_from_regenerated_turns_are_verified_and_read_by_train(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    server = fake_server(reply=teacher_reply(answer=_first_attempt_fails))
    out = tmp_path / "out.jsonl"
    _generate(server.base_url, out, "--pairs")
    kept = list(read_examples(out))
    rows = _rows(tmp_path / "out.jsonl.pairs.jsonl")
    assert len(kept) == 6 and len(rows) == 6  # one pair per regenerated turn
    by_id = {e.id: e for e in kept}
    for row in rows:
        [rule] = _check_pair_against_the_rule_library(row)
        assert rule.type == "punctuation:no_comma"
        meta = row["metadata"]
        example = by_id[meta["conversation_id"]]
        assert meta["system_prompt_id"] == example.system_prompt.id
        # The prompt is the training example's own system message and user turn; chosen is its reply.
        assert row["prompt"] == [m.model_dump() for m in example.messages[:2]]
        assert row["chosen"] == [{"role": "assistant", "content": FIXED}]
        assert row["rejected"] == [{"role": "assistant", "content": COMMA}]
        assert (meta["rejected_attempt"], meta["chosen_attempt"], meta["turn"]) == (1, 2, 0)
        assert meta["failed_rules"][0]["reason"]
    assert len(list(read_pairs(str(tmp_path / "out.jsonl.pairs.jsonl")))) == 6
    card = (tmp_path / "out.jsonl.card.md").read_text()
    assert "| preference pairs | 6 (in `out.jsonl.pairs.jsonl`) |" in card
    assert "| `punctuation:no_comma` | 6 |" in card.split("## Preference pairs")[1]
    # per-attempt pass rates: every first reply broke the rule, every second followed it
    assert "| 1 | 6 | 0 | 0.0% |" in card and "| 2 | 6 | 6 | 100.0% |" in card

    # Held out like SFT data: a benchmark built from the output drops its system prompts' pairs.
    bench = tmp_path / "bench.jsonl"
    build_bench(kept, bench, size=2, seed=0)
    held = read_exclusions(exclude_path(bench))
    pairs, summary = mix_pairs([DataSource(path=str(tmp_path / "out.jsonl.pairs.jsonl"))], exclude=held)
    assert summary.sources[0].excluded == sum(1 for r in rows if r["metadata"]["system_prompt_id"] in held) > 0
    assert len(pairs) == 6 - summary.sources[0].excluded
    assert not any(p.held_out_ids() & held for p in pairs)


def test_best_of_makes_pairs_even_when_the_first_reply_passes(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    def by_seed(body: dict[str, Any]) -> str:
        return COMMA if body.get("seed") == 1 else FIXED  # the second sample breaks the rule

    server = fake_server(reply=teacher_reply(answer=by_seed))
    out = tmp_path / "out.jsonl"
    pairs = tmp_path / "prefs.jsonl"
    _generate(server.base_url, out, "--best-of", "2", "--pairs", str(pairs))
    kept = list(read_examples(out))
    assert len(kept) == 6 and all(e.metadata["attempts"] == [1] for e in kept)
    assert all(e.messages[-1].content == FIXED for e in kept)
    rows = _rows(pairs)
    assert len(rows) == 6
    for row in rows:
        _check_pair_against_the_rule_library(row)
        meta = row["metadata"]
        assert (meta["chosen_sample"], meta["rejected_sample"], meta["chosen_attempt"]) == (0, 1, 1)


def test_without_pairs_nothing_is_written_and_the_card_says_how(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    server = fake_server(reply=teacher_reply(answer=_first_attempt_fails))
    out = tmp_path / "out.jsonl"
    _generate(server.base_url, out)
    assert not (tmp_path / "out.jsonl.pairs.jsonl").exists()
    assert "| preference pairs | 6 (not written: pass --pairs) |" in (tmp_path / "out.jsonl.card.md").read_text()


@pytest.mark.slow
def test_rnr_train_dpo_accepts_the_pairs_file(fake_server, tiny_model_dir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    server = fake_server(reply=teacher_reply(answer=_first_attempt_fails))
    out = tmp_path / "out.jsonl"
    _generate(server.base_url, out, "--pairs")
    model = tmp_path / "dpo"
    with pytest.raises(SystemExit) as info:
        main(["train", "--method", "dpo", "--pairs", str(tmp_path / "out.jsonl.pairs.jsonl"), "--model",
              str(tiny_model_dir), "--out", str(model), "--max-steps", "2", "--batch-size", "2", "--grad-accum", "1",
              "--precision", "fp32", "--no-gradient-checkpointing", "--logging-steps", "1", "--max-length", "256",
              "--dpo-args", "{disable_tqdm: true}"])
    assert info.value.code in (0, None)
    log = [json.loads(line) for line in (model / "train_log.jsonl").read_text().splitlines()]
    assert next(r for r in log if r["event"] == "data")["total"] == 6
    assert log[-1]["event"] == "end" and log[-1]["global_step"] == 2
