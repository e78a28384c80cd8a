"""`train(config)`: TRL's SFTTrainer, configured for system-prompt data, with assistant-only loss.

The steps, in order: audit the chat template and apply its fixes (or stop), mix the data (held-out
system prompts dropped), load the model (full, LoRA, or 4-bit QLoRA), train with loss on the
assistant replies only, then save the adapter or model with the tokenizer and the template it
was trained with, the resolved config, and the training log. Runs the same under
`accelerate launch` (DDP, FSDP, DeepSpeed): only the main process writes files.

Output folder layout (`hf:OUT` loads it, adapter or full model alike):

    OUT/adapter_model.safetensors + adapter_config.json   (LoRA/QLoRA)  or  model weights + config.json (full)
    OUT/tokenizer files + chat_template.jinja             the template used in training (fixes included)
    OUT/rnr_train_config.yaml                             resolved config; loads back with --config
    OUT/train_log.jsonl                                   template audit, data summary, every logged step
    OUT/checkpoints/checkpoint-N/                         resumable checkpoints (--resume)
    OUT/merged/                                           with --merge (LoRA/QLoRA): full model for vLLM
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rolenrules.errors import ConfigError
from rolenrules.io import atomic_path, write_jsonl
# Folders resolve to absolute paths, which go into adapter_config.json, so `hf:OUT` finds the base
# from any directory; `smollm2` resolves to its converted folder; uncached hub ids fail fast offline.
from rolenrules.llm.hf_models import pretrained_source
from rolenrules.train._targets import target_modules
from rolenrules.train.config import TrainConfig
from rolenrules.train.data import MixSummary, build_dataset, load_exclusions
from rolenrules.train.template_audit import TemplateReport, audit_template, load_tokenizer

logger = logging.getLogger("rolenrules.train")

CONFIG_FILE = "rnr_train_config.yaml"
LOG_FILE = "train_log.jsonl"
CHECKPOINTS = "checkpoints"
MERGED = "merged"

#: Files a previous run may have left in OUT that would confuse loading a new one (e.g. a full
#: model's config.json next to a new adapter makes transformers load the folder as a full model).
_ARTEFACTS = ("config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json",
              "adapter_config.json", "adapter_model.safetensors", "training_args.bin", "README.md")

Echo = Callable[[str], None]


@dataclass
class TrainSession:
    """A configured trainer, ready to `run()`; tests and `rnr run` may inspect it first."""

    config: TrainConfig
    trainer: Any
    tokenizer: Any
    template: TemplateReport
    data: MixSummary
    eval_data: MixSummary | None = None
    echo: Echo = field(default=logger.info)

    @property
    def out(self) -> Path:
        return self.config.out

    @property
    def is_main(self) -> bool:
        return bool(self.trainer.is_world_process_zero())

    def log_rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = [{"event": "template", **self.template.as_dict()},
                                      {"event": "data", "split": "train", **self.data.as_dict()}]
        if self.eval_data is not None:
            rows.append({"event": "data", "split": "eval", **self.eval_data.as_dict()})
        rows += [{"event": "log", **entry} for entry in self.trainer.state.log_history]
        return rows

    def write_log(self, extra: list[dict[str, Any]] | None = None) -> None:
        if self.is_main:
            write_jsonl(self.log_rows() + (extra or []), self.out / LOG_FILE)

    def run(self) -> Path:
        """Train, save, optionally merge; returns the output folder."""
        resume = _last_checkpoint(self.out) if self.config.resume else None
        if resume:
            self.echo(f"resuming from {resume}")
        result = self.trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        self._save()
        end: dict[str, Any] = {"event": "end", "global_step": self.trainer.state.global_step,
                               "train_loss": getattr(result, "training_loss", None), "output": str(self.out)}
        if self.eval_data is not None:
            metrics = self.trainer.evaluate()
            end["eval_loss"] = metrics.get("eval_loss")
        if self.config.merge:
            self.trainer.accelerator.wait_for_everyone()
            if self.is_main:
                merged = merge_into(self.out, self.tokenizer, self.config)
                end["merged"] = str(merged)
                self.echo(f"merged model for serving: {merged}" if self.config.is_peft
                          else f"--merge: a full fine-tune is already a full model; serve {merged}")
        self.write_log([end])
        return self.out

    def _save(self) -> None:
        staging = self.out / ".final.tmp"
        if self.is_main and staging.exists():
            shutil.rmtree(staging)  # left by a run that died while saving
        self.trainer.accelerator.wait_for_everyone()
        # Every rank takes part: FSDP and DeepSpeed gather the weights here.
        self.trainer.save_model(str(staging))
        if not self.is_main:
            return
        self.tokenizer.save_pretrained(str(staging))
        for name in _ARTEFACTS:
            stale = self.out / name
            if stale.is_file() and not (staging / name).exists():
                stale.unlink()
        for item in staging.iterdir():
            target = self.out / item.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
        staging.rmdir()
        self.echo(f"saved {'adapter' if self.config.is_peft else 'model'} and tokenizer to {self.out}")


def _silent(line: str) -> None:
    del line


def _last_checkpoint(out: Path) -> Path | None:
    folder = out / CHECKPOINTS
    found = [p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None


def _check_out(config: TrainConfig) -> None:
    out = config.out
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    previous = (out / CONFIG_FILE).exists() or (out / CHECKPOINTS).exists()
    if previous and not (config.resume or config.overwrite):
        raise ConfigError(f"--out {out}: already holds a training run; pass --resume to continue it or "
                          "--overwrite to replace it")
    if config.resume and _last_checkpoint(out) is None:
        raise ConfigError(f"--resume: no checkpoint in {out / CHECKPOINTS} to resume from")


def _check_environment(config: TrainConfig) -> None:
    if config.method != "qlora":
        return
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("--qlora needs a CUDA GPU (bitsandbytes 4-bit kernels); use --lora on this machine")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("--qlora needs bitsandbytes: pip install bitsandbytes")


def resolve_precision(config: TrainConfig) -> str:
    if config.precision != "auto":
        return config.precision
    import torch

    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    # CPUs with native bf16 (AVX-512 BF16, AMX) train 1.4-2x faster in bf16 (benchmarks/train_speed.md).
    return "bf16" if _cpu_has_bf16() else "fp32"


def _cpu_has_bf16() -> bool:
    import torch

    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(probe and probe()) or bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def _load_model(config: TrainConfig, precision: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32,
             # fp16 mixed precision needs fp32 master weights for the parameters it trains.
             "fp16": torch.float16 if config.is_peft else torch.float32}[precision]
    kwargs: dict[str, Any] = {"dtype": dtype}
    if config.attn_implementation:
        kwargs["attn_implementation"] = config.attn_implementation
    if config.method == "qlora":
        from accelerate import PartialState
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if precision == "bf16" else torch.float16
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute, bnb_4bit_quant_storage=compute)
        kwargs["device_map"] = {"": PartialState().local_process_index}
    source = pretrained_source(config.model)
    kwargs["local_files_only"] = source.local_files_only
    try:
        model = AutoModelForCausalLM.from_pretrained(source.ref, **kwargs)
    except Exception as error:  # transformers raises OSError/ValueError/hub errors for the same cause
        raise ConfigError(f"--model {config.model}: cannot load: {str(error).splitlines()[0][:300]}") from None
    if config.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
    return model


def _peft_config(config: TrainConfig, model: Any) -> Any:
    if not config.is_peft:
        return None
    from peft import LoraConfig

    targets = config.lora_target_modules or target_modules(getattr(model.config, "model_type", None))
    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=targets, task_type="CAUSAL_LM", bias="none")


def _sft_config(config: TrainConfig, precision: str, has_eval: bool) -> Any:
    from trl import SFTConfig

    known = {f.name for f in dataclasses.fields(SFTConfig)}
    unknown = sorted(set(config.sft_args) - known)
    if unknown:
        raise ConfigError(f"field 'sft_args.{unknown[0]}': not a trl.SFTConfig field")
    owned = {"output_dir": "set `out` instead (checkpoints go to OUT/checkpoints)",
             "assistant_only_loss": "loss is always on assistant replies only",
             "completion_only_loss": "loss is always on assistant replies only"}
    clash = sorted(set(config.sft_args) & set(owned))
    if clash:
        raise ConfigError(f"field 'sft_args.{clash[0]}': {owned[clash[0]]}")
    warmup = config.warmup if config.warmup < 1 else int(config.warmup)
    args: dict[str, Any] = dict(
        output_dir=str(config.out / CHECKPOINTS),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        learning_rate=config.lr,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=warmup,
        weight_decay=config.weight_decay,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        max_length=config.max_length,
        packing=config.packing,
        # Loss on the assistant replies only; the chat template's {% generation %} markers say where they are.
        assistant_only_loss=True,
        gradient_checkpointing=config.gradient_checkpointing,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        # Batches of similar lengths: less padding (1.3-1.4x tokens/s on CPU, benchmarks/train_speed.md).
        **_length_grouping(known),
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=config.eval_steps,
        seed=config.seed,
        data_seed=config.seed,
        report_to=config.report_to or "none",
    )
    if precision == "bf16" and _training_on_cpu():
        args["use_cpu"] = True  # transformers refuses bf16 with no GPU unless told it trains on the CPU
    args.update(config.sft_args)
    try:
        return SFTConfig(**args)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"invalid training arguments: {str(error).splitlines()[0][:300]}") from None


def _length_grouping(known: set[str]) -> dict[str, Any]:
    if "train_sampling_strategy" in known:  # transformers 5
        return {"train_sampling_strategy": "group_by_length"}
    return {"group_by_length": True} if "group_by_length" in known else {}


def _training_on_cpu() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return not torch.cuda.is_available() and not (mps is not None and mps.is_available())


def _log_callback(session_ref: list[TrainSession]) -> Any:
    from transformers import TrainerCallback

    class _WriteLog(TrainerCallback):
        """Rewrites train_log.jsonl (atomically) at every checkpoint, so a crashed run keeps its log."""

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if session_ref:
                session_ref[0].write_log()

    return _WriteLog()


def _apply_template(config: TrainConfig, tokenizer: Any, echo: Echo) -> TemplateReport:
    if config.chat_template is not None:
        try:
            tokenizer.chat_template = Path(config.chat_template).read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"--chat-template {config.chat_template}: {error.strerror or error}") from None
    report = audit_template(tokenizer)
    if report.blocking:
        raise ConfigError("the chat template cannot be trained with assistant-only loss: "
                          + "; ".join(report.blocking) + f" (see `rnr template check {config.model}`)")
    if report.fixes:
        if not config.template_fix:
            raise ConfigError(f"the chat template needs fixes ({', '.join(report.fixes)}) and template_fix is off; "
                              f"see `rnr template check {config.model}`")
        tokenizer.chat_template = report.fixed_template
        echo(f"chat template: applied {', '.join(report.fixes)}")
    for warning in report.warnings:
        echo(f"chat template warning: {warning}")
    return report


def build_trainer(config: TrainConfig, *, echo: Echo | None = None) -> TrainSession:
    """Everything up to the first step: template audit and fixes, data, model, SFTTrainer."""
    # Before the trainer exists the launcher's RANK is the only way to tell the main process.
    main_process = os.environ.get("RANK", "0") == "0"
    echo = (echo or logger.info) if main_process else _silent
    _check_environment(config)
    _check_out(config)
    if main_process and config.overwrite and not config.resume and (config.out / CHECKPOINTS).exists():
        shutil.rmtree(config.out / CHECKPOINTS, ignore_errors=True)

    tokenizer = load_tokenizer(config.model)
    report = _apply_template(config, tokenizer, echo)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    exclude = load_exclusions(config.exclude) if config.exclude else None
    train_set, summary = build_dataset(config.data, exclude=exclude, seed=config.seed)
    echo(f"training data: {summary.total} examples from {len(summary.sources)} source(s)"
         + (f", {summary.excluded} held out" if summary.excluded else ""))
    eval_set, eval_summary = None, None
    if config.eval_data:
        eval_set, eval_summary = build_dataset(config.eval_data, exclude=exclude, seed=config.seed, what="eval")

    precision = resolve_precision(config)
    args = _sft_config(config, precision, eval_set is not None)
    model = _load_model(config, precision)
    from trl import SFTTrainer

    ref: list[TrainSession] = []
    trainer = SFTTrainer(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                         processing_class=tokenizer, peft_config=_peft_config(config, model),
                         callbacks=[_log_callback(ref)])
    session = TrainSession(config, trainer, tokenizer, report, summary, eval_summary, echo)
    ref.append(session)
    trainer.accelerator.wait_for_everyone()  # every rank has checked OUT before the main one writes there
    if session.is_main:
        config.out.mkdir(parents=True, exist_ok=True)
        _write_config(config, report, precision)
    return session


def _write_config(config: TrainConfig, report: TemplateReport, precision: str) -> None:
    versions = []
    for package in ("torch", "transformers", "trl", "peft", "accelerate"):
        try:
            versions.append(f"{package} {importlib.import_module(package).__version__}")
        except Exception:  # a version we cannot read is not worth failing a run over
            continue
    header = [f"# rnr train resolved config ({', '.join(versions)})",
              f"# precision used: {precision}; template fixes: {', '.join(report.fixes) or 'none'}",
              f"# rerun: rnr train --config {config.out / CONFIG_FILE}"]
    with atomic_path(config.out / CONFIG_FILE) as tmp:
        tmp.write_text("\n".join(header) + "\n" + config.to_yaml(), encoding="utf-8")


def merge_into(out: Path, tokenizer: Any, config: TrainConfig) -> Path:
    """Write OUT/merged: the base model reloaded unquantised with the adapter merged in (vLLM serves it)."""
    if not config.is_peft:
        return out  # a full fine-tune is already a full model: vLLM serves OUT itself
    target = out / MERGED
    import torch
    from peft import AutoPeftModelForCausalLM

    dtype = torch.bfloat16 if resolve_precision(config) == "bf16" else torch.float32
    model = AutoPeftModelForCausalLM.from_pretrained(str(out), dtype=dtype)
    merged = model.merge_and_unload()
    with atomic_path(target) as tmp:
        merged.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
    return target


def train(config: TrainConfig, *, echo: Echo | None = None) -> Path:
    """Fine-tune `config.model` on `config.data`; returns the output folder (`hf:` loads it)."""
    return build_trainer(config, echo=echo).run()


__all__ = ["TrainSession", "build_trainer", "merge_into", "train"]
