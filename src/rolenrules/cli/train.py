"""`rnr train` (TRL SFT, full / LoRA / QLoRA) and `rnr template check` (chat-template audit).

Option help comes from `TrainConfig`'s field descriptions, so each option is documented once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from rolenrules.cli._console import console, err_console
from rolenrules.errors import ConfigError
from rolenrules.train.config import describe, resolve_config


def _echo(line: str) -> None:
    err_console.print(line, highlight=False, markup=False)


def train_command(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML file with any of these options (flags given here override it).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help=describe("model"))] = None,
    data: Annotated[Optional[list[str]], typer.Option("--data", "-d", help=describe("data"))] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help=describe("out"))] = None,
    lora: Annotated[Optional[bool], typer.Option("--lora", help="Train LoRA adapters (PEFT).")] = None,
    qlora: Annotated[Optional[bool], typer.Option("--qlora", help="Train LoRA adapters on a 4-bit base (CUDA + bitsandbytes).")] = None,
    full: Annotated[Optional[bool], typer.Option("--full", help="Full fine-tuning (the default).")] = None,
    epochs: Annotated[Optional[float], typer.Option("--epochs", help=describe("epochs"))] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", help=describe("max_steps"))] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help=describe("lr"))] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help=describe("batch_size"))] = None,
    grad_accum: Annotated[Optional[int], typer.Option("--grad-accum", help=describe("grad_accum"))] = None,
    max_length: Annotated[Optional[int], typer.Option("--max-length", help=describe("max_length"))] = None,
    packing: Annotated[Optional[bool], typer.Option("--packing/--no-packing", help=describe("packing"))] = None,
    eval_data: Annotated[Optional[list[str]], typer.Option("--eval-data", help=describe("eval_data"))] = None,
    exclude: Annotated[Optional[Path], typer.Option("--exclude", help=describe("exclude"))] = None,
    chat_template: Annotated[Optional[Path], typer.Option("--chat-template", help=describe("chat_template"))] = None,
    lora_r: Annotated[Optional[int], typer.Option("--lora-r", help=describe("lora_r"))] = None,
    lora_alpha: Annotated[Optional[int], typer.Option("--lora-alpha", help=describe("lora_alpha"))] = None,
    precision: Annotated[Optional[str], typer.Option("--precision", help=describe("precision"))] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help=describe("seed"))] = None,
    resume: Annotated[Optional[bool], typer.Option("--resume", help=describe("resume"))] = None,
    overwrite: Annotated[Optional[bool], typer.Option("--overwrite", help=describe("overwrite"))] = None,
    merge: Annotated[Optional[bool], typer.Option("--merge", help=describe("merge"))] = None,
) -> None:
    """Fine-tune a model on RNR data (mixed with instruction data) with loss on assistant replies only.

    Every option can also come from a YAML --config; see docs/training.md. Multi-GPU:
    `accelerate launch --config_file examples/accelerate/ddp.yaml -m rolenrules.train --config train.yaml`.
    """
    methods = [name for name, flag in (("lora", lora), ("qlora", qlora), ("full", full)) if flag]
    if len(methods) > 1:
        raise ConfigError(f"choose one of --lora, --qlora, --full (got {', '.join('--' + m for m in methods)})")
    resolved = resolve_config(
        config, model=model, data=data, out=out, method=methods[0] if methods else None, epochs=epochs,
        max_steps=max_steps, lr=lr, batch_size=batch_size, grad_accum=grad_accum, max_length=max_length,
        packing=packing, eval_data=eval_data, exclude=exclude, chat_template=chat_template, lora_r=lora_r,
        lora_alpha=lora_alpha, precision=precision, seed=seed, resume=resume, overwrite=overwrite, merge=merge,
    )
    from rolenrules.train.trainer import train

    output = train(resolved, echo=_echo)
    console.print(str(output), highlight=False, markup=False)


template_app = typer.Typer(help="Chat-template tools.", no_args_is_help=True)


@template_app.command("check")
def template_check(
    model: Annotated[str, typer.Argument(help="Model: a folder, a Hugging Face id, smollm2 (also hf:smollm2, local:smollm2) or a .gguf file (only its tokenizer is loaded).")],
    chat_template: Annotated[Optional[Path], typer.Option("--chat-template", help="Audit this .jinja template instead of the tokenizer's.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Audit a chat template for system-prompt training; exit 1 when it has problems.

    Checks: system role supported and preserved verbatim; text the template injects on its own;
    {% generation %} markers; the assistant-token mask covers exactly the replies and their
    end-of-turn token; the inference prompt is a prefix of the training conversation. Reports
    the fixes `rnr train` applies, re-checked.
    """
    from rolenrules.train.template_audit import audit_template

    template = None
    if chat_template is not None:
        try:
            template = chat_template.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"--chat-template {chat_template}: {error.strerror or error}") from None
    report = audit_template(model, chat_template=template)
    if as_json:
        console.print_json(json.dumps(report.as_dict()))
    else:
        console.print(report.summary(), highlight=False, markup=False)
        if report.ok:
            console.print("the template is ready for system-prompt training", highlight=False)
        elif report.trainable:
            console.print("rnr train will apply the fixes above", highlight=False)
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.add_typer(template_app, name="template")
