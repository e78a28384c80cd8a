"""DPO and SFT-then-DPO on tiny models (CPU, a few steps): loss, reward margins, reference model,
exclusion, template handling, outputs that `rnr eval --model hf:OUT` evaluates."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from _train_builders import AVA, make_bench
from _train_runs import FAST, evaluate_output, log_rows, run_cli, weights

from rolenrules.errors import ConfigError
from rolenrules.heldout import system_text_id
from rolenrules.io import write_jsonl
from rolenrules.train import TrainConfig, build_trainer, resolve_config, train
from rolenrules.train.template_audit import FIX_MERGE_SYSTEM

pytestmark = pytest.mark.slow


def _dpo(model: Path, pairs: Path, out: Path, **overrides: Any) -> TrainConfig:
    return TrainConfig.model_validate({"model": str(model), "pairs": [str(pairs)], "out": str(out),
                                       "method": "dpo", "batch_size": 5, **FAST,
                                       "dpo_args": {"disable_tqdm": True}, **overrides})


def test_dpo_loss_falls_and_the_reward_margin_grows(tiny_models: dict[str, Path], pairs_file: Path,
                                                    tmp_path: Path) -> None:
    session = build_trainer(_dpo(tiny_models["marked"], pairs_file, tmp_path / "out", max_steps=8, lr=5e-3))
    before = weights(session.trainer.model)
    session.run()
    history = [row for row in session.trainer.state.log_history if "loss" in row]
    losses = [row["loss"] for row in history]
    margins = [row["rewards/margins"] for row in history]
    assert len(losses) == 8  # the same 5 pairs every step
    # Step 1: the policy is the reference, so every implicit reward is 0 and the loss is -log sigmoid(0).
    assert margins[0] == pytest.approx(0.0, abs=1e-6) and losses[0] == pytest.approx(math.log(2), abs=1e-4)
    assert sum(losses[-3:]) / 3 < 0.5 * losses[0], losses
    assert margins[-1] > 1.0 and margins[-1] > max(margins[:4]), margins
    assert history[-1]["rewards/accuracies"] == 1.0  # every chosen reply now beats its rejected one
    # Full DPO: TRL keeps a frozen copy of the starting model as the reference.
    reference = dict(session.trainer.ref_model.named_parameters())
    assert all(reference[name].equal(value) for name, value in before.items())
    assert not all(p.equal(before[n]) for n, p in session.trainer.model.named_parameters())
    out = session.out
    assert (out / "model.safetensors").exists() and not (out / "adapter_config.json").exists()
    end = log_rows(out)[-1]
    assert (end["event"], end["objective"], end["global_step"]) == ("end", "dpo", 8)


def test_dpo_lora_from_the_cli_drops_held_out_pairs_and_evaluates(tiny_models: dict[str, Path], pairs_file: Path,
                                                                  bench_file: Path, tmp_path: Path) -> None:
    held = tmp_path / "bench.exclude.txt"
    held.write_text(system_text_id(AVA.render()) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    config_file = tmp_path / "dpo.yaml"
    config_file.write_text(json.dumps({**FAST, "dpo_args": {"disable_tqdm": True}, "batch_size": 4}),
                           encoding="utf-8")
    assert run_cli("train", "-c", str(config_file), "--method", "dpo", "--lora", "-m", str(tiny_models["no_markers"]),
                   "--pairs", f"{pairs_file}:2", "--exclude", str(held), "-o", str(out), "--max-steps", "3",
                   "--lr", "1e-2", "--beta", "0.2", "--loss-type", "sigmoid") == 0

    resolved = resolve_config(out / "rnr_train_config.yaml")
    assert (resolved.method, resolved.adapter, resolved.beta, resolved.pairs[0].weight) == ("dpo", "lora", 0.2, 2.0)
    rows = log_rows(out)
    template, data = rows[0], rows[1]
    # DPO splits prompt from reply itself: a template without generation markers needs no fix.
    assert template["event"] == "template" and template["fixes"] == [] and template["trainable"]
    assert (data["objective"], data["excluded"], data["total"]) == ("dpo", 1, 8)  # 4 of 5 pairs kept, twice
    assert "{% generation %}" not in (out / "chat_template.jinja").read_text(encoding="utf-8")

    from safetensors.torch import load_file

    adapter = load_file(out / "adapter_model.safetensors")
    assert [k for k in adapter if "lora_B" in k] and all(v.abs().sum() > 0 for k, v in adapter.items()
                                                            if "lora_B" in k)
    assert not (out / "config.json").exists()
    results = evaluate_output(out, bench_file, tmp_path)
    assert sorted(r["id"] for r in results) == sorted(e.id for e in make_bench())


@pytest.mark.parametrize("method", ["dpo", "sft-then-dpo"])
def test_a_bad_pair_stops_the_run_before_any_training(tiny_models: dict[str, Path], pairs_file: Path,
                                                      rnr_data: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str], method: str) -> None:
    rows = [json.loads(line) for line in pairs_file.read_text(encoding="utf-8").splitlines()]
    rows[3]["chosen"][0]["role"] = "user"
    bad = tmp_path / "bad.pairs.jsonl"
    write_jsonl(rows, bad)
    out = tmp_path / "out"
    data = ["--data", str(rnr_data)] if method == "sft-then-dpo" else []
    code = run_cli("train", "--method", method, "-m", str(tiny_models["marked"]), "--pairs", str(bad), *data,
                   "-o", str(out), "--max-steps", "1")
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"error: {bad}:4: field 'chosen': replies are assistant messages only"
    assert not out.exists()  # no SFT stage, no model loaded, nothing written


def test_sft_then_dpo_trains_dpo_from_the_sft_model(tiny_models: dict[str, Path], rnr_data: Path, pairs_file: Path,
                                                    tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = TrainConfig.model_validate({
        "model": str(tiny_models["no_system"]), "data": [str(rnr_data)], "pairs": [str(pairs_file)], "out": str(out),
        "method": "sft-then-dpo", "adapter": "lora", "batch_size": 5, "max_steps": 2, "save_steps": 2, "lr": 1e-2,
        **FAST, "sft_args": {"disable_tqdm": True}, "dpo_args": {"disable_tqdm": True, "learning_rate": 2e-2}})
    lines: list[str] = []
    assert train(config, echo=lines.append) == out

    sft = out / "sft"
    sft_rows, dpo_rows = log_rows(sft), log_rows(out)
    assert (sft_rows[-1]["objective"], dpo_rows[-1]["objective"]) == ("sft", "dpo")
    # The SFT stage fixed the template (the system prompt folded into the user turn) and saved it; DPO trains
    # with that template as it is, from the merged SFT model, with its own learning rate.
    assert sft_rows[0]["fixes"] == [FIX_MERGE_SYSTEM] and dpo_rows[0]["fixes"] == []
    assert (sft / "merged" / "config.json").exists() and (sft / "adapter_config.json").exists()
    adapter_config = json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))
    assert adapter_config["base_model_name_or_path"] == str((sft / "merged").resolve())
    assert [r["learning_rate"] for r in dpo_rows if r.get("event") == "log" and "loss" in r] == [2e-2, 2e-2]
    assert [r["learning_rate"] for r in sft_rows if r.get("event") == "log" and "loss" in r] == [1e-2, 1e-2]
    # What OUT records is the whole two-stage config: it reruns the same recipe.
    assert resolve_config(out / "rnr_train_config.yaml") == config

    from rolenrules.llm.hf_backend import load_hf_model

    tokenizer, model = load_hf_model(str(out))
    prompt = tokenizer.apply_chat_template([{"role": "system", "content": "Be Ava."}, {"role": "user", "content": "Hi"}],
                                           tokenize=False, add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nBe Ava.\n\nHi<|im_end|>\n<|im_start|>assistant\n"

    with pytest.raises(ConfigError, match="already holds a training run"):
        train(config)
    # Resuming a finished SFT stage skips it; DPO resumes from its last checkpoint.
    lines.clear()
    train(config.model_copy(update={"resume": True}), echo=lines.append)
    assert f"sft stage: already complete in {sft}" in lines and any("resuming from" in line for line in lines)
