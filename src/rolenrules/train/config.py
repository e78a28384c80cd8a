"""The typed training configuration: every `rnr train` option, documented once (in `Field(description=...)`).

A YAML file (`--config`) gives any of these fields; flags given on the command line override it.
Paths are taken as written (relative to the current directory), as TRL and accelerate do.
The resolved config is saved beside the trained model and loads back with `--config`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rolenrules.config_file import load_yaml_mapping
from rolenrules.errors import ConfigError

Method = Literal["full", "lora", "qlora"]
Precision = Literal["auto", "bf16", "fp16", "fp32"]

#: Learning rates used when `lr` is not given: adapters take a larger step than full fine-tuning.
DEFAULT_LR = {"full": 2e-5, "lora": 2e-4, "qlora": 2e-4}


class DataSource(BaseModel):
    """One training dataset and its sampling weight (0.5 keeps half the rows, 2.0 repeats them twice)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1)
    weight: float = Field(1.0, gt=0)

    @staticmethod
    def split(spec: str) -> dict[str, Any]:
        """`PATH[:WEIGHT]` as fields. The suffix is a weight only when it is a number, so `hf://owner/name:train`
        stays a path."""
        head, sep, tail = spec.rpartition(":")
        if sep and head:
            try:
                return {"path": head, "weight": float(tail)}
            except ValueError:
                pass
        return {"path": spec}

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


class TrainConfig(BaseModel):
    """Everything `rnr train` needs. Field descriptions are the CLI help text."""

    model_config = ConfigDict(extra="forbid")

    # What to train, on what, and where the result goes.
    model: str = Field(min_length=1, description="Base model: a Hugging Face id, a local folder, or smollm2 (the embedded SmolLM2-135M-Instruct, offline).")
    data: list[DataSource] = Field(min_length=1, description=(
        "Training data, PATH[:WEIGHT], repeatable; any format `rnr data convert` reads. The weight is a "
        "sampling proportion: 0.5 keeps half the rows, 2.0 repeats them."
    ))
    out: Path = Field(description=(
        "Output folder: adapter or model, tokenizer with its chat template, resolved config, training log."
    ))
    eval_data: list[DataSource] = Field(default_factory=list, description=(
        "Evaluation data, PATH[:WEIGHT], repeatable; eval loss is logged every `eval_steps`."
    ))
    exclude: Path | None = Field(None, description=(
        "File of held-out system-prompt ids (one per line, or JSONL with `system_prompt_id`/`id`); "
        "matching examples are dropped."
    ))

    # How.
    method: Method = Field("full", description=(
        "full fine-tuning, lora (PEFT LoRA adapters) or qlora (LoRA on a 4-bit base; needs CUDA and "
        "bitsandbytes)."
    ))
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha (scale = alpha / r).")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout.")
    lora_target_modules: list[str] | None = Field(None, description=(
        "Modules that get adapters; default: attention and MLP projections for the model's architecture, "
        "else all linear layers."
    ))
    chat_template: Path | None = Field(None, description=(
        "A .jinja chat template to train (and save) with instead of the tokenizer's."
    ))
    template_fix: bool = Field(True, description=(
        "Apply the audit's fixes (merge the system prompt into the first user turn; add generation "
        "markers). When false, a template that needs a fix stops the run."
    ))

    # Hyper-parameters.
    epochs: float = Field(3.0, gt=0, description="Training epochs (ignored when max_steps is set).")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps.")
    lr: float | None = Field(None, gt=0, description=(
        "Peak learning rate (default: 2e-4 for LoRA/QLoRA, 2e-5 for full)."
    ))
    lr_scheduler: str = Field("cosine", description="transformers scheduler name (linear, cosine, constant, ...).")
    warmup: float = Field(0.03, ge=0, description="Warm-up: a ratio of total steps when < 1, else a number of steps.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    batch_size: int = Field(4, ge=1, description="Per-device batch size.")
    grad_accum: int = Field(4, ge=1, description="Gradient accumulation steps.")
    max_length: int = Field(2048, ge=16, description=(
        "Tokens per sequence (longer ones are truncated; the packed length when packing)."
    ))
    packing: bool = Field(False, description=(
        "Pack several conversations into each sequence (best with flash attention)."
    ))
    gradient_checkpointing: bool = Field(True, description="Recompute activations in the backward pass to save memory.")
    precision: Precision = Field("auto", description=(
        "auto picks bf16 on GPUs that support it, fp16 on older GPUs; on CPU bf16 where the CPU has native "
        "bf16 (AVX-512 BF16 or AMX), else fp32."
    ))
    attn_implementation: str | None = Field(None, description=(
        "Attention kernel passed to transformers (e.g. sdpa, flash_attention_2)."
    ))
    seed: int = Field(42, description="Seed for data mixing, shuffling and initialisation.")

    # Bookkeeping.
    logging_steps: int = Field(10, ge=1, description="Log loss every this many steps.")
    save_steps: int = Field(500, ge=1, description="Save a resumable checkpoint every this many steps.")
    save_total_limit: int = Field(2, ge=1, description="Checkpoints kept under OUT/checkpoints.")
    eval_steps: int = Field(500, ge=1, description="Evaluate on eval_data every this many steps.")
    resume: bool = Field(False, description="Resume from the last checkpoint in OUT/checkpoints.")
    overwrite: bool = Field(False, description="Allow writing into an OUT that already holds a training run.")
    merge: bool = Field(False, description=(
        "Also write OUT/merged: the base model with the adapter merged in, for vLLM."
    ))
    report_to: list[str] = Field(default_factory=list, description=(
        "Trackers for transformers to report to (tensorboard, wandb, ...)."
    ))
    sft_args: dict[str, Any] = Field(default_factory=dict, description=(
        "Extra trl.SFTConfig fields, passed through as given (checked against SFTConfig)."
    ))

    @field_validator("data", "eval_data", mode="before")
    @classmethod
    def _parse_sources(cls, value: Any) -> Any:
        return _sources(value)

    @field_validator("lora_target_modules", "report_to", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _fill_defaults(self) -> TrainConfig:
        if self.lr is None:
            self.lr = DEFAULT_LR[self.method]
        return self

    @property
    def is_peft(self) -> bool:
        return self.method in ("lora", "qlora")

    def to_yaml(self) -> str:
        import yaml

        data = self.model_dump(mode="json")
        data["data"] = [s.spec() for s in self.data]
        data["eval_data"] = [s.spec() for s in self.eval_data]
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _format_errors(error: ValidationError, source: str) -> str:
    parts = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "<config>"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown option (see `rnr train --help`)"
        elif item["type"] == "missing":
            message = "required"
        parts.append(f"field '{field}': {message}")
    return f"{source}: " + "; ".join(parts)


def resolve_config(config_file: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """YAML `config_file` (if any) with `overrides` on top; overrides that are None are not given.

    Repeatable options (`data`, `eval_data`) given on the command line replace the file's list.
    """
    values: dict[str, Any] = load_yaml_mapping(config_file) if config_file else {}
    given = {k: v for k, v in overrides.items() if v is not None and v != [] and v != ()}
    values.update(given)
    source = str(config_file) if config_file else "options"
    try:
        return TrainConfig.model_validate(values)
    except ValidationError as error:
        raise ConfigError(_format_errors(error, source)) from None


def describe(field: str) -> str:
    """The one description of a config field (the CLI help reuses it)."""
    return TrainConfig.model_fields[field].description or ""
