"""GRPO on a tiny model (CPU, a few steps) with the rule library as the reward."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _train_builders import DAN, make_prompt_examples
from _train_runs import FAST, evaluate_output, log_rows, weights

from rolenrules.errors import ConfigError, DataError
from rolenrules.records import Rule
from rolenrules.rules import check_rule
from rolenrules.train import TrainConfig, build_trainer

pytestmark = pytest.mark.slow


def _grpo(model: Path, data: Path, out: Path, **overrides: Any) -> TrainConfig:
    return TrainConfig.model_validate({
        "model": str(model), "data": [str(data)], "out": str(out), "method": "grpo", "adapter": "lora",
        "num_generations": 4, "batch_size": 4, "max_completion_length": 12, **FAST,
        "grpo_args": {"disable_tqdm": True}, **overrides})


def _followed_share(completion: list[dict[str, str]], rules_json: str) -> float:
    """What the reward should be, from the rule library's verdicts (unscored = broken)."""
    rules = [Rule.model_validate(r) for r in json.loads(rules_json)]
    verdicts = [check_rule(rule, completion[-1]["content"]).passed is True for rule in rules]
    return sum(verdicts) / len(verdicts)


def test_grpo_rewards_are_the_rule_library_verdicts_and_are_logged(tiny_models: dict[str, Path], prompt_data: Path,
                                                                   bench_file: Path, tmp_path: Path) -> None:
    session = build_trainer(_grpo(tiny_models["marked"], prompt_data, tmp_path / "out", max_steps=4, lr=5e-2,
                                  eval_data=[str(bench_file)], eval_steps=100))
    # Prompts come from RNR data; the record whose system prompt has no verifiable rule has no reward to give.
    source = session.data.sources[0]
    assert (source.read, source.used, source.dropped) == (5, 4, {"no verifiable rule": 1})

    reward_fn = session.trainer.reward_funcs[0]
    calls: list[dict[str, Any]] = []

    def recording(**kwargs: Any) -> list[float]:
        rewards = reward_fn(**kwargs)
        calls.append({**kwargs, "rewards": rewards})
        return rewards

    session.trainer.reward_funcs[0] = recording
    before = weights(session.trainer.model)
    out = session.run()

    for call in calls:  # training and eval alike: each reward is the share of the row's rules followed
        assert call["rewards"] == [_followed_share(c, r) for c, r in zip(call["completions"], call["rules"],
                                                                           strict=True)]
    training_users = {e.user_turns[-1] for e in make_prompt_examples()}
    train_calls = [c for c in calls if c["prompts"][0][-1]["content"] in training_users]
    assert len(train_calls) < len(calls)  # the rest rewarded the eval prompts
    assert all(p[0] == {"role": "system", "content": DAN.render()} for c in train_calls for p in c["prompts"])
    # 4 steps of 4 completions, every one under DAN's system prompt with DAN's verifiable rules as the column.
    assert len(train_calls) == 4 and all(len(c["rewards"]) == 4 for c in train_calls)
    assert all(json.loads(r) == [rule.model_dump(mode="json") for rule in DAN.rules]
               for c in train_calls for r in c["rules"])
    logged = [row for row in session.trainer.state.log_history if "reward" in row]
    assert [row["rewards/rules_fraction_strict/mean"] for row in logged] == pytest.approx(
        [sum(c["rewards"]) / 4 for c in train_calls])
    assert [row["rules/all_followed"] for row in logged] == pytest.approx(
        [sum(r == 1.0 for r in c["rewards"]) / 4 for c in train_calls])
    # Where a group's rewards differ, the advantage is non-zero and the adapter learns.
    assert any(row["reward_std"] > 0 for row in logged)
    after = dict(session.trainer.model.named_parameters())
    assert any(not after[n].equal(v) for n, v in before.items() if "lora_B" in n)

    rows = log_rows(out)
    assert sum(1 for r in rows if r["event"] == "log" and "reward" in r) == 4
    assert (rows[-1]["objective"], rows[-1]["reward_first"]) == ("grpo", logged[0]["reward"])
    # Eval prompts (here the benchmark's) are sampled and rewarded the same way at the end.
    assert 0.0 <= rows[-1]["eval_reward"] <= 1.0 and rows[2]["split"] == "eval" and rows[2]["total"] == 3
    assert (out / "adapter_model.safetensors").exists()
    evaluate_output(out, bench_file, tmp_path)


@pytest.mark.parametrize(("reward", "name", "expected"), [
    ("fraction", "rules_fraction_strict", [1.0, 0.5]),
    ("all", "rules_all_strict", [1.0, 0.0]),
])
def test_the_reward_option_picks_share_or_all_or_nothing(tiny_models: dict[str, Path], prompt_data: Path,
                                                         tmp_path: Path, reward: str, name: str,
                                                         expected: list[float]) -> None:
    session = build_trainer(_grpo(tiny_models["marked"], prompt_data, tmp_path / "out", reward=reward))
    fn = session.trainer.reward_funcs[0]
    completions = [[{"role": "assistant", "content": "Red."}], [{"role": "assistant", "content": "one two three four five"}]]
    rules = [json.dumps([r.model_dump(mode="json") for r in DAN.rules])] * 2
    assert fn.__name__ == name and fn(prompts=[[]] * 2, completions=completions, rules=rules) == expected


def test_grpo_without_usable_prompts_or_vllm_is_a_clear_error(tiny_models: dict[str, Path], prompt_data: Path,
                                                              tmp_path: Path) -> None:
    held = tmp_path / "held.txt"
    held.write_text(DAN.id + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"no training prompts with a verifiable rule left \(.*: 5 read, 4 held out, "
                                        r"1 no verifiable rule\)"):
        build_trainer(_grpo(tiny_models["marked"], prompt_data, tmp_path / "out", exclude=str(held)))
    from trl.import_utils import is_vllm_available

    if not is_vllm_available():
        with pytest.raises(ConfigError, match="use_vllm needs vLLM"):
            build_trainer(_grpo(tiny_models["marked"], prompt_data, tmp_path / "out", use_vllm=True))
    assert not (tmp_path / "out").exists()
