"""What differs between SFT, DPO and GRPO: the data each reads, the TRL config and trainer class.

Each `prepare_*` reads and checks its data, then builds its TRL config from the `TrainConfig` (plus
the pass-through `sft_args` / `dpo_args` / `grpo_args`), before any model is loaded, so bad data or
options stop the run in seconds. `trainer.build_trainer` loads the model and puts the pieces together.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rolenrules.errors import ConfigError
from rolenrules.train.config import Objective, TrainConfig
from rolenrules.train.data import MixSummary, build_dataset, build_prompt_dataset
from rolenrules.train.pairs import build_pair_dataset

CHECKPOINTS = "checkpoints"

#: TRL fields rnr sets itself, and why a pass-through may not change them.
_OWNED = {
    "output_dir": "set `out` instead (checkpoints go to OUT/checkpoints)",
    "assistant_only_loss": "loss is always on assistant replies only",
    "completion_only_loss": "loss is always on assistant replies only",
    "remove_unused_columns": "the `rules` column must reach the reward function",
}


@dataclass
class Prepared:
    """An objective's data and TRL config, ready for a model."""

    objective: Objective
    trainer_cls: type
    args: Any
    train_set: Any
    data: MixSummary
    eval_set: Any = None
    eval_data: MixSummary | None = None
    trainer_kwargs: dict[str, Any] = field(default_factory=dict)


def _common(config: TrainConfig, objective: Objective, precision: str, has_eval: bool) -> dict[str, Any]:
    """TrainingArguments fields every objective shares."""
    return dict(
        output_dir=str(config.out / CHECKPOINTS),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        learning_rate=config.learning_rate(objective),
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup if config.warmup < 1 else int(config.warmup),
        weight_decay=config.weight_decay,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        gradient_checkpointing=config.gradient_checkpointing,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=config.eval_steps,
        seed=config.seed,
        data_seed=config.seed,
        report_to=config.report_to or "none",
        # transformers refuses bf16 with no GPU unless told it trains on the CPU.
        **({"use_cpu": True} if precision == "bf16" and _training_on_cpu() else {}),
    )


def _training_on_cpu() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return not torch.cuda.is_available() and not (mps is not None and mps.is_available())


def _length_grouping(config_cls: type) -> dict[str, Any]:
    """Batches of similar lengths: less padding (1.3-1.4x tokens/s on CPU, benchmarks/train_speed.md)."""
    known = {f.name for f in dataclasses.fields(config_cls)}
    if "train_sampling_strategy" in known:  # transformers 5
        return {"train_sampling_strategy": "group_by_length"}
    return {"group_by_length": True} if "group_by_length" in known else {}


def _trl_config(config_cls: type, option: str, extra: dict[str, Any], args: dict[str, Any],
                owned: tuple[str, ...] = ("output_dir",)) -> Any:
    """`config_cls(**args)` with the pass-through `extra` on top; unknown or `owned` names are errors."""
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(extra) - known)
    if unknown:
        raise ConfigError(f"field '{option}.{unknown[0]}': not a trl.{config_cls.__name__} field")
    clash = sorted(set(extra) & set(owned))
    if clash:
        raise ConfigError(f"field '{option}.{clash[0]}': {_OWNED[clash[0]]}")
    if "activation_checkpointing" in known and "gradient_checkpointing" in args:
        # transformers 5 renamed it (the old name warns); older versions know only the old one.
        args = {**args, "activation_checkpointing": args["gradient_checkpointing"]}
        del args["gradient_checkpointing"]
    try:
        return config_cls(**{**args, **extra})
    except (ValueError, TypeError) as error:
        raise ConfigError(f"invalid training arguments: {str(error).splitlines()[0][:300]}") from None


def prepare_sft(config: TrainConfig, exclude: set[str] | None, precision: str) -> Prepared:
    from trl import SFTConfig, SFTTrainer

    if config.packing and not (config.attn_implementation or "").startswith("flash_attention"):
        # TRL keeps packed conversations apart through position ids, which only flash attention reads:
        # with sdpa or eager attention they attend to each other (measured: logits moved by up to 21.8).
        raise ConfigError("--packing needs --attn-implementation flash_attention_2 (a GPU): with other attention "
                          "kernels packed conversations attend to each other")

    train_set, summary = build_dataset(config.data, exclude=exclude, seed=config.seed)
    eval_set, eval_summary = None, None
    if config.eval_data:
        eval_set, eval_summary = build_dataset(config.eval_data, exclude=exclude, seed=config.seed, what="eval")
    args = _common(config, "sft", precision, eval_set is not None)
    # Loss on the assistant replies only; the chat template's {% generation %} markers say where they are.
    args.update(max_length=config.max_length, packing=config.packing, assistant_only_loss=True,
                **_length_grouping(SFTConfig))
    return Prepared("sft", SFTTrainer, _trl_config(SFTConfig, "sft_args", config.sft_args, args,
                                                 ("output_dir", "assistant_only_loss", "completion_only_loss")),
                    train_set, summary, eval_set, eval_summary)


def prepare_dpo(config: TrainConfig, exclude: set[str] | None, precision: str) -> Prepared:
    from trl import DPOConfig, DPOTrainer

    train_set, summary = build_pair_dataset(config.pairs, exclude=exclude, seed=config.seed)
    eval_set, eval_summary = None, None
    if config.eval_pairs:
        eval_set, eval_summary = build_pair_dataset(config.eval_pairs, exclude=exclude, seed=config.seed,
                                                    what="eval")
    args = _common(config, "dpo", precision, eval_set is not None)
    args["max_length"] = config.max_length
    if config.beta is not None:
        args["beta"] = config.beta
    if config.loss_type is not None:
        args["loss_type"] = [name.strip() for name in config.loss_type.split(",") if name.strip()]
    # The reference model is TRL's: the base with the adapter disabled (LoRA), else a frozen copy of the model.
    return Prepared("dpo", DPOTrainer, _trl_config(DPOConfig, "dpo_args", config.dpo_args, args),
                    train_set, summary, eval_set, eval_summary)


def prepare_grpo(config: TrainConfig, exclude: set[str] | None, precision: str) -> Prepared:
    from trl import GRPOConfig, GRPOTrainer

    from rolenrules.rules.reward import make_reward

    if config.use_vllm:
        from trl.import_utils import is_vllm_available

        if not is_vllm_available():
            raise ConfigError("use_vllm needs vLLM on a GPU machine (pip install vllm); leave it off to generate "
                              "with transformers in this process")
    train_set, summary = build_prompt_dataset(config.data, exclude=exclude, seed=config.seed)
    eval_set, eval_summary = None, None
    if config.eval_data:
        eval_set, eval_summary = build_prompt_dataset(config.eval_data, exclude=exclude, seed=config.seed,
                                                      what="eval")
    args = _common(config, "grpo", precision, eval_set is not None)
    args.update(num_generations=config.num_generations, max_completion_length=config.max_completion_length,
                temperature=config.temperature, use_vllm=config.use_vllm, remove_unused_columns=False)
    if config.beta is not None:
        args["beta"] = config.beta
    if config.loss_type is not None:
        args["loss_type"] = config.loss_type
    reward = make_reward(mode=config.reward_mode, all_or_nothing=config.reward == "all")
    return Prepared("grpo", GRPOTrainer, _trl_config(GRPOConfig, "grpo_args", config.grpo_args, args,
                                                   ("output_dir", "remove_unused_columns")),
                    train_set, summary, eval_set, eval_summary, {"reward_funcs": [reward]})


PREPARE: dict[str, Callable[[TrainConfig, set[str] | None, str], Prepared]] = {
    "sft": prepare_sft, "dpo": prepare_dpo, "grpo": prepare_grpo,
}
