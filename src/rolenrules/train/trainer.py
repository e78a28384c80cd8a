"""`train(config)`: TRL's SFT, DPO or GRPO trainer, configured for system-prompt data.

The steps, in order: audit the chat template and apply its fixes (or stop), read and mix the data
(held-out system prompts dropped) and build the objective's TRL config (`objectives.py`), load the
model (full, LoRA, or 4-bit QLoRA), train, then save the adapter or model with the tokenizer and
the template it was trained with, the resolved config, and the training log. `sft-then-dpo` runs
SFT into OUT/sft, then DPO from its result into OUT. Runs the same under `accelerate launch`
(DDP, FSDP, DeepSpeed): only the main process writes files.

Output folder layout (`hf:OUT` loads it, adapter or full model alike):

    OUT/adapter_model.safetensors + adapter_config.json   (LoRA/QLoRA)  or  model weights + config.json (full)
    OUT/tokenizer files + chat_template.jinja             the template used in training (fixes included)
    OUT/rnr_train_config.yaml                             resolved config; loads back with --config
    OUT/train_log.jsonl                                   template audit, data summary, every logged step
    OUT/checkpoints/checkpoint-N/                         resumable checkpoints (--resume)
    OUT/merged/                                           with --merge (LoRA/QLoRA): full model for vLLM
    OUT/sft/                                              sft-then-dpo: the SFT stage, same layout
"""

from __future__ import annotations

import importlib
import importlib.util
import json
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
from rolenrules.heldout import read_exclusions
from rolenrules.train.data import MixSummary, no_rows_left
from rolenrules.train.objectives import CHECKPOINTS, PREPARE
from rolenrules.train.pairs import mix_pairs
from rolenrules.train.template_audit import TemplateReport, audit_template, load_tokenizer

logger = logging.getLogger("rolenrules.train")

CONFIG_FILE = "rnr_train_config.yaml"
LOG_FILE = "train_log.jsonl"
MERGED = "merged"
SFT_STAGE = "sft"

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
    objective: str = "sft"

    @property
    def out(self) -> Path:
        return self.config.out

    @property
    def is_main(self) -> bool:
        return bool(self.trainer.is_world_process_zero())

    def log_rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = [{"event": "template", **self.template.as_dict()},
                                      {"event": "data", "split": "train", "objective": self.objective,
                                       **self.data.as_dict()}]
        if self.eval_data is not None:
            rows.append({"event": "data", "split": "eval", "objective": self.objective, **self.eval_data.as_dict()})
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
        end: dict[str, Any] = {"event": "end", "objective": self.objective,
                               "global_step": self.trainer.state.global_step,
                               "train_loss": getattr(result, "training_loss", None), "output": str(self.out)}
        if self.eval_data is not None:
            metrics = self.trainer.evaluate()
            end["eval_loss"] = metrics.get("eval_loss")
            if "eval_reward" in metrics:  # GRPO: the rule reward of replies sampled for the eval prompts
                end["eval_reward"] = metrics["eval_reward"]
        rewards = [row["reward"] for row in self.trainer.state.log_history if "reward" in row]
        if rewards:
            end["reward_first"], end["reward_last"] = rewards[0], rewards[-1]
            self.echo(f"rule reward: {rewards[0]:.3f} in the first logged step, {rewards[-1]:.3f} in the last")
        if self.config.merge:
            self.trainer.accelerator.wait_for_everyone()
            if self.is_main:
                merged = merge_into(self.out, self.tokenizer, self.config)
                end["merged"] = str(merged)
                self.echo(f"merged model for serving: {merged}" if self.config.is_peft
                          else f"--merge: a full fine-tune is already a full model; serve {merged}")
        self.write_log([end])
        # Every rank returns only once OUT is complete: the DPO stage of sft-then-dpo loads OUT/sft/merged next.
        self.trainer.accelerator.wait_for_everyone()
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


def _finished(out: Path) -> bool:
    """OUT holds a run that got to its end (its log's last row is the end event)."""
    try:
        lines = (out / LOG_FILE).read_text(encoding="utf-8").splitlines()
        return bool(lines) and json.loads(lines[-1]).get("event") == "end"
    except (OSError, ValueError):
        return False


def _check_out(config: TrainConfig) -> None:
    out = config.out
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    stages = len(config.stages) > 1
    previous = [out / CONFIG_FILE, out / CHECKPOINTS] + ([out / SFT_STAGE] if stages else [])
    if any(p.exists() for p in previous) and not (config.resume or config.overwrite):
        raise ConfigError(f"--out {out}: already holds a training run; pass --resume to continue it or "
                          "--overwrite to replace it")
    if config.resume and _last_checkpoint(out) is None and not (stages and (out / SFT_STAGE).exists()):
        raise ConfigError(f"--resume: no checkpoint in {out / CHECKPOINTS} to resume from")


def _check_environment(config: TrainConfig) -> None:
    if config.adapter != "qlora":
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
    if config.adapter == "qlora":
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
    if config.adapter == "qlora":
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


def _log_callback(session_ref: list[TrainSession]) -> Any:
    from transformers import TrainerCallback

    class _WriteLog(TrainerCallback):
        """Rewrites train_log.jsonl (atomically) at every checkpoint, so a crashed run keeps its log."""

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if session_ref:
                session_ref[0].write_log()

    return _WriteLog()


def _apply_template(config: TrainConfig, tokenizer: Any, echo: Echo, *, assistant_loss: bool) -> TemplateReport:
    if config.chat_template is not None:
        try:
            tokenizer.chat_template = Path(config.chat_template).read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"--chat-template {config.chat_template}: {error.strerror or error}") from None
    report = audit_template(tokenizer, assistant_loss=assistant_loss)
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


def build_trainer(config: TrainConfig, *, echo: Echo | None = None, record: TrainConfig | None = None) -> TrainSession:
    """Everything up to the first step of a one-stage method (sft, dpo, grpo): template audit and fixes,
    data, model, TRL trainer. `record` is the config saved in OUT (default: `config`)."""
    if len(config.stages) != 1:
        raise ConfigError(f"method {config.method} runs in stages: call train(), or build_trainer() on each of "
                          "stage_configs(config)")
    objective = config.stages[0]
    # Before the trainer exists the launcher's RANK is the only way to tell the main process.
    main_process = os.environ.get("RANK", "0") == "0"
    echo = (echo or logger.info) if main_process else _silent
    _check_environment(config)
    _check_out(config)
    if main_process and config.overwrite and not config.resume and (config.out / CHECKPOINTS).exists():
        shutil.rmtree(config.out / CHECKPOINTS, ignore_errors=True)

    # Data and options first: a bad row or option stops the run before anything is loaded.
    exclude = read_exclusions(config.exclude) if config.exclude else None
    precision = resolve_precision(config)
    prepared = PREPARE[objective](config, exclude, precision)
    summary = prepared.data
    unit = {"sft": "examples", "dpo": "pairs", "grpo": "prompts"}[objective]
    tokenizer = load_tokenizer(config.model)  # a model that cannot be had fails here, in one line
    echo(f"{objective} data: {summary.total} {unit} from {len(summary.sources)} source(s)"
         + (f", {summary.excluded} held out" if summary.excluded else ""))
    report = _apply_template(config, tokenizer, echo, assistant_loss=objective == "sft")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = _load_model(config, precision)

    ref: list[TrainSession] = []
    trainer = prepared.trainer_cls(model=model, args=prepared.args, train_dataset=prepared.train_set,
                                   eval_dataset=prepared.eval_set, processing_class=tokenizer,
                                   peft_config=_peft_config(config, model), callbacks=[_log_callback(ref)],
                                   **prepared.trainer_kwargs)
    session = TrainSession(config, trainer, tokenizer, report, summary, prepared.eval_data, echo, objective)
    ref.append(session)
    trainer.accelerator.wait_for_everyone()  # every rank has checked OUT before the main one writes there
    if session.is_main:
        config.out.mkdir(parents=True, exist_ok=True)
        _write_config(record or config, report, precision, config.learning_rate(objective))
    return session


def _write_config(config: TrainConfig, report: TemplateReport, precision: str, lr: float) -> None:
    versions = []
    for package in ("torch", "transformers", "trl", "peft", "accelerate"):
        try:
            versions.append(f"{package} {importlib.import_module(package).__version__}")
        except Exception:  # a version we cannot read is not worth failing a run over
            continue
    header = [f"# rnr train resolved config ({', '.join(versions)})",
              f"# precision used: {precision}; learning rate: {lr:g}; template fixes: {', '.join(report.fixes) or 'none'}",
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


def stage_configs(config: TrainConfig) -> list[TrainConfig]:
    """The one-stage configs a method runs, in order. sft-then-dpo: SFT on `data` into OUT/sft (merged
    there when an adapter is trained, as the DPO base), then DPO on `pairs` from that model into OUT."""
    if len(config.stages) == 1:
        return [config]
    sft_out = config.out / SFT_STAGE
    sft = config.model_copy(update={"method": "sft", "out": sft_out, "pairs": [], "eval_pairs": [], "beta": None,
                                    "loss_type": None, "dpo_args": {}, "merge": config.is_peft})
    # The SFT output carries the (fixed) chat template it trained with; DPO keeps it.
    dpo = config.model_copy(update={"method": "dpo", "model": str(sft_out / MERGED if config.is_peft else sft_out),
                                    "data": [], "eval_data": [], "packing": False, "sft_args": {},
                                    "chat_template": None})
    return [sft, dpo]


def _sft_then_dpo(config: TrainConfig, echo: Echo) -> Path:
    _check_out(config)
    # Bad or empty pairs should stop the run now, not after the SFT stage.
    exclude = read_exclusions(config.exclude) if config.exclude else None
    for sources, what in ((config.pairs, "training"), (config.eval_pairs, "eval")):
        if sources:
            pairs, summary = mix_pairs(sources, exclude=exclude, seed=config.seed)
            if not pairs:
                raise no_rows_left(summary, f"{what} pairs")
    sft, dpo = stage_configs(config)
    # OUT was checked as a whole above; each stage resumes where it has a checkpoint and starts over otherwise.
    if config.resume and _finished(sft.out):
        echo(f"sft stage: already complete in {sft.out}")
    else:
        echo(f"sft stage → {sft.out}")
        sft = sft.model_copy(update={"resume": config.resume and _last_checkpoint(sft.out) is not None,
                                     "overwrite": True})
        build_trainer(sft, echo=echo).run()
    echo(f"dpo stage from {dpo.model} → {dpo.out}")
    dpo = dpo.model_copy(update={"resume": config.resume and _last_checkpoint(dpo.out) is not None,
                                 "overwrite": True})
    return build_trainer(dpo, echo=echo, record=config).run()


def train(config: TrainConfig, *, echo: Echo | None = None) -> Path:
    """Train `config.model` with `config.method`; returns the output folder (`hf:` loads it)."""
    if len(config.stages) > 1:
        main_process = os.environ.get("RANK", "0") == "0"
        return _sft_then_dpo(config, (echo or logger.info) if main_process else _silent)
    return build_trainer(config, echo=echo).run()


__all__ = ["TrainSession", "build_trainer", "merge_into", "stage_configs", "train"]
