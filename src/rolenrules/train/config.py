"""The typed training configuration: every `rnr train` option, documented once (in `Field(description=...)`).

A YAML file (`--config`) gives any of these fields; flags given on the command line override it.
Relative paths in a file are relative to the file (`config_file`); flags are relative to the current
directory. The resolved config is saved beside the trained model, its paths absolute, and loads back
with `--config` from anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rolenrules.config_file import PathKinds, load_yaml_mapping, split_weight
from rolenrules.errors import validate_config

Method = Literal["sft", "dpo", "grpo", "sft-then-dpo"]
Adapter = Literal["full", "lora", "qlora"]
Precision = Literal["auto", "bf16", "fp16", "fp32"]
Objective = Literal["sft", "dpo", "grpo"]

#: Learning rates used when `lr` is not given, per objective and adapter: adapters take a larger step
#: than full fine-tuning, and preference/RL objectives a much smaller one than SFT (TRL's defaults for
#: full DPO/GRPO; the alignment handbook's for LoRA DPO).
DEFAULT_LR: dict[tuple[Objective, str], float] = {
    ("sft", "full"): 2e-5, ("sft", "lora"): 2e-4, ("sft", "qlora"): 2e-4,
    ("dpo", "full"): 1e-6, ("dpo", "lora"): 5e-6, ("dpo", "qlora"): 5e-6,
    ("grpo", "full"): 1e-6, ("grpo", "lora"): 1e-5, ("grpo", "qlora"): 1e-5,
}

#: The objectives each method trains, in order.
STAGES: dict[str, tuple[Objective, ...]] = {
    "sft": ("sft",), "dpo": ("dpo",), "grpo": ("grpo",), "sft-then-dpo": ("sft", "dpo"),
}

#: Fields that only some objectives read. Giving one a non-default value for a method that ignores it
#: is an error, so nothing is silently unused (a saved config, all defaults included, still loads).
_USED_BY: dict[str, tuple[Objective, ...]] = {
    "data": ("sft", "grpo"), "eval_data": ("sft", "grpo"), "pairs": ("dpo",), "eval_pairs": ("dpo",),
    "packing": ("sft",), "max_length": ("sft", "dpo"), "sft_args": ("sft",), "dpo_args": ("dpo",),
    "beta": ("dpo", "grpo"), "loss_type": ("dpo", "grpo"),
    "num_generations": ("grpo",), "max_completion_length": ("grpo",), "temperature": ("grpo",),
    "reward": ("grpo",), "reward_mode": ("grpo",), "use_vllm": ("grpo",), "grpo_args": ("grpo",),
}


class DataSource(BaseModel):
    """One training dataset and its sampling weight (0.5 keeps half the rows, 2.0 repeats them twice)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1)
    weight: float = Field(1.0, gt=0)

    @staticmethod
    def split(spec: str) -> dict[str, Any]:
        """`PATH[:WEIGHT]` as fields. The suffix is a weight only when it is a number, so `hf://owner/name:train`
        stays a path."""
        path, weight = split_weight(spec)
        return {"path": path} if weight is None else {"path": path, "weight": weight}

    @classmethod
    def parse(cls, spec: str) -> DataSource:
        return cls(**cls.split(spec))

    def spec(self) -> str:
        return self.path if self.weight == 1.0 else f"{self.path}:{self.weight:g}"


def _sources(value: Any) -> Any:
    if isinstance(value, (str, dict)):
        value = [value]
    if isinstance(value, list):
        # Fields, not instances: a bad weight then reports as `data.N.weight`.
        return [DataSource.split(v) if isinstance(v, str) else v for v in value]
    return value


def _mapping(value: Any) -> Any:
    """A `*_args` value given as text on the command line (YAML or JSON) as a mapping."""
    if isinstance(value, str):
        import yaml

        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ValueError("expected a mapping such as '{optim: adafactor}'") from None
        return {} if value is None else value
    return value


class TrainConfig(BaseModel):
    """Everything `rnr train` needs. Field descriptions are the CLI help text."""

    model_config = ConfigDict(extra="forbid")

    #: The options that are paths (in a config file, relative ones are relative to the file).
    PATHS: ClassVar[PathKinds] = {"model": "model", "data": "data", "eval_data": "data", "pairs": "data",
                                  "eval_pairs": "data", "exclude": "input", "chat_template": "input",
                                  "out": "output"}

    # What to train, on what, and where the result goes.
    model: str = Field(min_length=1, description="Base model: a Hugging Face id, a local folder, or smollm2 (the embedded SmolLM2-135M-Instruct, offline).")
    data: list[DataSource] = Field(default_factory=list, description=(
        "SFT data (sft, sft-then-dpo) or GRPO prompts (grpo), PATH[:WEIGHT], repeatable; any format `rnr data "
        "convert` reads. The weight is a sampling proportion: 0.5 keeps half the rows, 2.0 repeats them (default: none)."
    ))
    pairs: list[DataSource] = Field(default_factory=list, description=(
        "Preference pairs for dpo and sft-then-dpo, PATH[:WEIGHT], repeatable: rows of `prompt`, `chosen`, "
        "`rejected` (message lists, TRL's format) and optional `metadata` (docs/training.md) (default: none)."
    ))
    out: Path = Field(description=(
        "Output folder: adapter or model, tokenizer with its chat template, resolved config, training log."
    ))
    eval_data: list[DataSource] = Field(default_factory=list, description=(
        "Evaluation data like `data`, PATH[:WEIGHT], repeatable; logged every `eval_steps` (default: none)."
    ))
    eval_pairs: list[DataSource] = Field(default_factory=list, description=(
        "Evaluation pairs like `pairs`, PATH[:WEIGHT], repeatable; DPO eval loss and reward margins every "
        "`eval_steps` (default: none)."
    ))
    exclude: Path | None = Field(None, description=(
        "File of held-out system-prompt ids (one per line, or JSONL with `system_prompt_id`/`id`); "
        "matching examples, pairs and prompts are dropped (default: none)."
    ))

    # How.
    method: Method = Field("sft", description=(
        "Training objective: sft (supervised, loss on assistant replies), dpo (preference pairs), grpo (RL "
        "with the rule library as reward) or sft-then-dpo (SFT on `data`, then DPO on `pairs` from the result)."
    ))
    adapter: Adapter = Field("full", description=(
        "What trains: full (every weight), lora (PEFT LoRA adapters) or qlora (LoRA on a 4-bit base; needs "
        "CUDA and bitsandbytes)."
    ))
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha (scale = alpha / r).")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout.")
    lora_target_modules: list[str] | None = Field(None, description=(
        "Modules that get adapters (default: attention and MLP projections for the model's architecture, "
        "else all linear layers)."
    ))
    chat_template: Path | None = Field(None, description=(
        "A .jinja chat template to train (and save) with instead of the tokenizer's (default: the tokenizer's)."
    ))
    template_fix: bool = Field(True, description=(
        "Apply the audit's fixes (merge the system prompt into the first user turn; add generation "
        "markers). When false, a template that needs a fix stops the run."
    ))

    # Hyper-parameters (every stage of sft-then-dpo; per-stage overrides go in sft_args / dpo_args).
    epochs: float = Field(3.0, gt=0, description="Training epochs (ignored when max_steps is set).")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (default: none; `epochs` decides).")
    lr: float | None = Field(None, gt=0, description=(
        "Peak learning rate; given, it applies to both stages of sft-then-dpo (default: by objective and adapter: "
        "SFT 2e-5 full, 2e-4 LoRA; DPO 1e-6 full, 5e-6 LoRA; GRPO 1e-6 full, 1e-5 LoRA)."
    ))
    lr_scheduler: str = Field("cosine", description="transformers scheduler name (linear, cosine, constant, ...).")
    warmup: float = Field(0.03, ge=0, description="Warm-up: a ratio of total steps when < 1, else a number of steps.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    batch_size: int = Field(4, ge=1, description="Per-device batch size (GRPO: completions per device per step).")
    grad_accum: int = Field(4, ge=1, description="Gradient accumulation steps.")
    max_length: int = Field(2048, ge=16, description=(
        "SFT/DPO: tokens per sequence (longer ones are truncated; the packed length when packing)."
    ))
    packing: bool = Field(False, description=(
        "SFT: pack several conversations into each sequence; needs attn_implementation flash_attention_2 (GPU), "
        "as other kernels let packed conversations attend to each other."
    ))
    gradient_checkpointing: bool = Field(True, description="Recompute activations in the backward pass to save memory.")
    precision: Precision = Field("auto", description=(
        "auto picks bf16 on GPUs that support it, fp16 on older GPUs; on CPU bf16 where the CPU has native "
        "bf16 (AVX-512 BF16 or AMX), else fp32."
    ))
    attn_implementation: str | None = Field(None, description=(
        "Attention kernel passed to transformers (e.g. sdpa, flash_attention_2) (default: transformers' choice)."
    ))
    seed: int = Field(42, description="Seed for data mixing, shuffling, sampling and initialisation.")

    # DPO and GRPO.
    beta: float | None = Field(None, ge=0, description=(
        "DPO: how far the policy may move from the reference. GRPO: KL coefficient (default: TRL's: 0.1 for "
        "DPO; 0.0 for GRPO, so no reference model is loaded)."
    ))
    loss_type: str | None = Field(None, description=(
        "TRL loss name. DPO: sigmoid, ipo, hinge, robust, apo_zero, ... (comma-separated ones are combined). "
        "GRPO: dapo, grpo, dr_grpo, bnpo, ... (default: TRL's: sigmoid for DPO, dapo for GRPO)."
    ))

    # GRPO.
    num_generations: int = Field(8, ge=2, description=(
        "GRPO: completions sampled per prompt (the group); batch_size x grad_accum x GPUs must be a multiple."
    ))
    max_completion_length: int = Field(256, ge=1, description="GRPO: longest sampled completion, in tokens.")
    temperature: float = Field(1.0, gt=0, description="GRPO: sampling temperature of the completions.")
    reward: Literal["fraction", "all"] = Field("fraction", description=(
        "GRPO reward per completion: fraction (share of its verifiable rules followed) or all (1 when every "
        "one is followed, else 0). Checked by the rule library; a rule it cannot score counts as broken."
    ))
    reward_mode: Literal["strict", "loose"] = Field("strict", description=(
        "GRPO: check rules strictly, or IFEval-loose (also try the reply without its first/last line and "
        "markdown emphasis)."
    ))
    use_vllm: bool = Field(False, description=(
        "GRPO: generate completions with vLLM (GPU; pip install vllm) instead of transformers in-process; "
        "vllm_mode and the other vllm_* options go in grpo_args."
    ))

    # Bookkeeping.
    logging_steps: int = Field(10, ge=1, description="Log loss (and GRPO rewards) every this many steps.")
    save_steps: int = Field(500, ge=1, description="Save a resumable checkpoint every this many steps.")
    save_total_limit: int = Field(2, ge=1, description="Checkpoints kept under OUT/checkpoints.")
    eval_steps: int = Field(500, ge=1, description="Evaluate on eval_data / eval_pairs every this many steps.")
    resume: bool = Field(False, description="Resume from the last checkpoint in OUT/checkpoints.")
    overwrite: bool = Field(False, description="Allow writing into an OUT that already holds a training run.")
    merge: bool = Field(False, description=(
        "Also write OUT/merged: the base model with the adapter merged in, for vLLM."
    ))
    report_to: list[str] = Field(default_factory=list, description=(
        "Trackers for transformers to report to (tensorboard, wandb, ...) (default: none)."
    ))
    sft_args: dict[str, Any] = Field(default_factory=dict, description=(
        "Extra trl.SFTConfig fields for SFT (and the SFT stage of sft-then-dpo), passed through as given; "
        "on the command line as YAML text, e.g. '{optim: adafactor}'."
    ))
    dpo_args: dict[str, Any] = Field(default_factory=dict, description=(
        "Extra trl.DPOConfig fields for DPO (and the DPO stage of sft-then-dpo), e.g. "
        "'{learning_rate: 5.0e-7, num_train_epochs: 1}'."
    ))
    grpo_args: dict[str, Any] = Field(default_factory=dict, description=(
        "Extra trl.GRPOConfig fields for GRPO, e.g. '{vllm_mode: colocate, top_p: 0.95}'."
    ))

    @model_validator(mode="before")
    @classmethod
    def _legacy_method(cls, values: Any) -> Any:
        # `method` used to name the parameterisation; old files say `method: lora` and still mean SFT.
        if isinstance(values, dict) and values.get("method") in ("full", "lora", "qlora"):
            values = dict(values)
            legacy = values.pop("method")
            if values.setdefault("adapter", legacy) != legacy:
                raise ValueError(f"`method: {legacy}` is the old spelling of `adapter: {legacy}`, but adapter is "
                                 f"{values['adapter']!r}; set `method` (sft, dpo, grpo, sft-then-dpo) and `adapter`")
        return values

    @field_validator("data", "eval_data", "pairs", "eval_pairs", mode="before")
    @classmethod
    def _parse_sources(cls, value: Any) -> Any:
        return _sources(value)

    @field_validator("lora_target_modules", "report_to", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("sft_args", "dpo_args", "grpo_args", mode="before")
    @classmethod
    def _parse_mapping(cls, value: Any) -> Any:
        return _mapping(value)

    @model_validator(mode="after")
    def _check_method(self) -> TrainConfig:
        stages = STAGES[self.method]
        for name, users in _USED_BY.items():
            if set(users) & set(stages):
                continue
            field = type(self).model_fields[name]
            default = field.get_default(call_default_factory=True)
            if getattr(self, name) != default:
                uses = sorted(m for m, s in STAGES.items() if set(s) & set(users))
                raise ValueError(f"`{name}` applies to method {' / '.join(uses)}, not {self.method}")
        needs = {"sft": "data", "grpo": "data", "dpo": "pairs"}
        for objective in stages:
            if not getattr(self, needs[objective]):
                raise ValueError(f"method {self.method} needs `{needs[objective]}` (at least one PATH[:WEIGHT])")
        return self

    @property
    def is_peft(self) -> bool:
        return self.adapter in ("lora", "qlora")

    @property
    def stages(self) -> tuple[Objective, ...]:
        return STAGES[self.method]

    def learning_rate(self, objective: Objective) -> float:
        """`lr` when given, else the default for `objective` and the adapter."""
        return self.lr if self.lr is not None else DEFAULT_LR[(objective, self.adapter)]

    def to_yaml(self) -> str:
        import yaml

        def absolute(path: str) -> str:
            return path if path.startswith("hf://") else os.path.abspath(path)

        data = self.model_dump(mode="json")
        for name in ("data", "eval_data", "pairs", "eval_pairs"):
            data[name] = [DataSource(path=absolute(s.path), weight=s.weight).spec() for s in getattr(self, name)]
        for name in ("out", "exclude", "chat_template"):
            if data[name] is not None:
                data[name] = absolute(data[name])
        if Path(self.model).exists():
            data["model"] = absolute(self.model)
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def validate_train_config(values: dict[str, Any], source: str = "options") -> TrainConfig:
    """`values` as a TrainConfig; a bad one is a ConfigError naming `source` and the field."""
    return validate_config(TrainConfig, values, source, unknown="unknown option (see `rnr train --help`)")


def resolve_config(config_file: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """YAML `config_file` (if any) with `overrides` on top; overrides that are None are not given.

    Repeatable options (`data`, `pairs`, ...) given as overrides replace the file's list.
    """
    values: dict[str, Any] = load_yaml_mapping(config_file, TrainConfig.PATHS) if config_file else {}
    given = {k: v for k, v in overrides.items() if v is not None and v != [] and v != ()}
    values.update(given)
    return validate_train_config(values, str(config_file) if config_file else "options")
