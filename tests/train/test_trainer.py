"""Real SFT runs on tiny models (CPU, a few steps each): labels, loss, weights, outputs, fixes, resume."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from _train_builders import AVA, BOB, make_examples

from rolenrules.cli import main
from rolenrules.errors import ConfigError
from rolenrules.train import TrainConfig, build_trainer, resolve_config, train
from rolenrules.train.template_audit import FIX_MARKERS, FIX_MERGE_SYSTEM

pytestmark = pytest.mark.slow

FAST = {"gradient_checkpointing": False, "precision": "fp32", "logging_steps": 1, "warmup": 0,
        "sft_args": {"disable_tqdm": True}}


def _config(model: Path, data: Path, out: Path, **overrides: Any) -> TrainConfig:
    return TrainConfig.model_validate({"model": str(model), "data": [str(data)], "out": str(out), "batch_size": 2,
                                       "grad_accum": 1, **FAST, **overrides})


def _labelled_spans(trainer: Any, tokenizer: Any) -> tuple[list[str], list[str]]:
    """Decoded runs of labelled tokens, and the full decoded inputs, over the whole training set."""
    spans, inputs = [], []
    for batch in trainer.get_train_dataloader():
        for ids, labels in zip(batch["input_ids"].tolist(), batch["labels"].tolist(), strict=True):
            run: list[int] = []
            for token, label in zip(ids, labels, strict=True):
                if label != -100:
                    assert label == token
                    run.append(label)
                elif run:
                    spans.append(tokenizer.decode(run))
                    run = []
            if run:
                spans.append(tokenizer.decode(run))
            inputs.append(tokenizer.decode(ids))
    return spans, inputs


@pytest.mark.parametrize("kind", ["marked", "no_markers", "no_system"])
def test_labels_are_exactly_the_assistant_replies_with_end_of_turn(tiny_models: dict[str, Path], rnr_data: Path,
                                                                   tmp_path: Path, kind: str) -> None:
    session = build_trainer(_config(tiny_models[kind], rnr_data, tmp_path / "out", max_steps=1, batch_size=3))
    spans, inputs = _labelled_spans(session.trainer, session.tokenizer)
    replies = [m.content for e in make_examples() for m in e.messages if m.role == "assistant"]
    assert sorted(spans) == sorted(r + "<|im_end|>" for r in replies)
    # Nothing of the system prompts or user turns is labelled, though the inputs carry them.
    prompts = [m.content for e in make_examples() for m in e.messages if m.role != "assistant"]
    assert not any(p in s for p in prompts for s in spans)
    assert any(AVA.render() in text for text in inputs)
    if kind == "no_system":  # the fix folded the system prompt into the first user turn
        assert any(f"<|im_start|>user\n{BOB.render()}\n\nName a fruit." in text for text in inputs)
        assert session.template.fixes == [FIX_MERGE_SYSTEM]


def _weights(model: Any) -> dict[str, Any]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_full_sft_loss_decreases_and_every_layer_changes(tiny_models: dict[str, Path], rnr_data: Path,
                                                         tmp_path: Path) -> None:
    config = _config(tiny_models["marked"], rnr_data, tmp_path / "out", max_steps=16, batch_size=5, lr=3e-3,
                     lr_scheduler="constant")
    session = build_trainer(config)
    before = _weights(session.trainer.model)
    out = session.run()
    after = _weights(session.trainer.model)
    changed = {name for name in before if not before[name].equal(after[name])}
    assert changed == set(before)  # the same 5 examples every step: every parameter gets a gradient

    losses = [row["loss"] for row in session.trainer.state.log_history if "loss" in row]
    assert len(losses) == 16
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses

    assert (out / "model.safetensors").exists() and (out / "config.json").exists()
    assert not (out / "adapter_config.json").exists()
    from rolenrules.llm.hf_backend import load_hf_model

    _, loaded = load_hf_model(str(out))
    name = "model.layers.0.self_attn.q_proj.weight"
    assert dict(loaded.named_parameters())[name].equal(after[name])


def test_lora_via_cli_trains_only_adapters_and_saves_a_loadable_adapter(tiny_models: dict[str, Path],
                                                                        rnr_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "lora-out"
    config_file = tmp_path / "train.yaml"
    config_file.write_text(
        f"model: {tiny_models['no_markers']}\ndata: ['{rnr_data}:2']\nout: {out}\nbatch_size: 4\ngrad_accum: 1\n"
        "gradient_checkpointing: false\nprecision: fp32\nlogging_steps: 1\nwarmup: 0\nmax_steps: 50\n"
        "sft_args: {disable_tqdm: true}\n", encoding="utf-8")
    from transformers import AutoModelForCausalLM

    base = _weights(AutoModelForCausalLM.from_pretrained(tiny_models["no_markers"]))
    with pytest.raises(SystemExit) as done:
        main(["train", "--config", str(config_file), "--lora", "--max-steps", "4", "--lr", "1e-2", "--merge",
              "--eval-data", f"{rnr_data}:0.4"])
    assert done.value.code == 0

    # The flags won over the file; the resolved config loads back as it was used.
    resolved = resolve_config(out / "rnr_train_config.yaml")
    assert (resolved.method, resolved.adapter, resolved.max_steps, resolved.lr, resolved.data[0].weight) == (
        "sft", "lora", 4, 1e-2, 2.0)

    from safetensors.torch import load_file

    adapter = load_file(out / "adapter_model.safetensors")
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # LoRA B starts at zero: non-zero means trained
    assert {k.split(".")[-3] for k in adapter if "lora_A" in k} >= {"q_proj", "v_proj", "gate_proj", "down_proj"}
    assert not (out / "config.json").exists()  # else transformers would load OUT as a full model

    # The tokenizer saved with the adapter carries the generation-marked template it was trained with.
    assert "{% generation %}" in (out / "chat_template.jinja").read_text(encoding="utf-8")
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text(encoding="utf-8").splitlines()]
    events = [row["event"] for row in log]
    assert events[:3] == ["template", "data", "data"] and events[-1] == "end" and events.count("log") >= 4
    assert log[0]["fixes"] == [FIX_MARKERS] and (log[1]["split"], log[1]["total"]) == ("train", 10)
    assert (log[2]["split"], log[2]["total"]) == ("eval", 2) and log[-1]["eval_loss"] > 0

    # hf: loads the adapter folder (base + adapter) and the merged model alike, with the same outputs.
    import torch

    from rolenrules.llm.hf_backend import HFBackend, load_hf_model

    tokenizer, adapted = load_hf_model(str(out))
    _, merged = load_hf_model(str(out / "merged"))
    assert {k: v for k, v in dict(merged.named_parameters()).items() if "lora" in k} == {}
    changed = [n for n, p in merged.named_parameters() if n in base and not p.detach().equal(base[n])]
    assert any("q_proj" in n for n in changed)
    ids = tokenizer(AVA.render(), return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(adapted(**ids).logits, merged(**ids).logits, atol=1e-4)
    _generate_once(HFBackend(str(out)))


def _generate_once(backend: Any) -> None:
    from rolenrules.llm.base import ChatRequest, Sampling
    from rolenrules.records import Message

    request = ChatRequest(messages=[Message(role="system", content=AVA.render()),
                                    Message(role="user", content="What is the capital of France?")],
                          sampling=Sampling(temperature=0, max_tokens=6))
    result = asyncio.run(backend.complete(request))
    assert result.usage.completion_tokens > 0


def test_train_applies_the_system_merge_fix_and_the_output_serves_system_prompts(
        tiny_models: dict[str, Path], rnr_data: Path, tmp_path: Path) -> None:
    out = train(_config(tiny_models["no_system"], rnr_data, tmp_path / "out", max_steps=2, adapter="lora"))
    from rolenrules.llm.hf_backend import HFBackend

    backend = HFBackend(str(out))
    prompt = backend.tokenizer.apply_chat_template(
        [{"role": "system", "content": "Be Ava."}, {"role": "user", "content": "Hi"}], tokenize=False,
        add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nBe Ava.\n\nHi<|im_end|>\n<|im_start|>assistant\n"
    _generate_once(backend)


def test_template_fix_off_stops_with_a_clear_message(tiny_models: dict[str, Path], rnr_data: Path,
                                                     tmp_path: Path) -> None:
    config = _config(tiny_models["no_system"], rnr_data, tmp_path / "out", template_fix=False)
    with pytest.raises(ConfigError, match="merge_system"):
        build_trainer(config)


@pytest.mark.parametrize(("sft_args", "field"), [
    ({"not_a_field": 1}, "sft_args.not_a_field"),
    ({"assistant_only_loss": False}, "sft_args.assistant_only_loss"),
    ({"output_dir": "elsewhere"}, "sft_args.output_dir"),
])
def test_bad_sft_args_are_config_errors_naming_the_field(tiny_models: dict[str, Path], rnr_data: Path,
                                                         tmp_path: Path, sft_args: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"field '{field}'"):
        build_trainer(_config(tiny_models["marked"], rnr_data, tmp_path / "out", sft_args=sft_args))
    assert not (tmp_path / "out").exists()  # nothing written before the config is known to be good


def test_exclude_keeps_held_out_prompts_out_of_the_trained_set(tiny_models: dict[str, Path], rnr_data: Path,
                                                               tmp_path: Path) -> None:
    held = tmp_path / "held.txt"
    held.write_text(AVA.id + "\n", encoding="utf-8")
    session = build_trainer(_config(tiny_models["marked"], rnr_data, tmp_path / "out", exclude=str(held),
                                    max_steps=1, batch_size=3))
    _, inputs = _labelled_spans(session.trainer, session.tokenizer)
    assert len(inputs) == 3 and not any(AVA.role in text for text in inputs)
    assert session.data.excluded == 2


def test_resume_continues_from_the_last_checkpoint(tiny_models: dict[str, Path], rnr_data: Path,
                                                   tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="no checkpoint"):
        build_trainer(_config(tiny_models["marked"], rnr_data, out, resume=True))
    train(_config(tiny_models["marked"], rnr_data, out, max_steps=2, save_steps=2, adapter="lora"))
    assert (out / "checkpoints" / "checkpoint-2").is_dir()
    with pytest.raises(ConfigError, match="--resume"):
        build_trainer(_config(tiny_models["marked"], rnr_data, out, max_steps=4, save_steps=2, adapter="lora"))
    session = build_trainer(_config(tiny_models["marked"], rnr_data, out, max_steps=4, save_steps=2, adapter="lora",
                                    resume=True))
    session.run()
    steps = [row["step"] for row in session.trainer.state.log_history if "loss" in row]
    assert steps == [1, 2, 3, 4]  # steps 1-2 come from the checkpoint's state, 3-4 from this run


def test_qlora_without_cuda_is_a_clear_error(tiny_models: dict[str, Path], rnr_data: Path, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present: QLoRA would run")
    with pytest.raises(ConfigError, match="--qlora needs a CUDA GPU"):
        build_trainer(_config(tiny_models["marked"], rnr_data, tmp_path / "out", adapter="qlora"))
