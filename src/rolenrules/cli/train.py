"""`rnr train` (TRL SFT, DPO, GRPO or SFT then DPO; full / LoRA / QLoRA) and `rnr template check`.

Every `TrainConfig` field is a flag, generated from the config (its description is the help), so each
option is documented once; `--lora` / `--qlora` / `--full` stay as short forms of `--adapter`.
"""

from __future__ import annotations

import inspect
import json
import typing
from contextvars import ContextVar
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from rolenrules.cli._console import console, err_console
from rolenrules.cli._model_options import command_from_config
from rolenrules.config_file import load_yaml_mapping
from rolenrules.errors import ConfigError
from rolenrules.train.config import TrainConfig, validate_train_config

_ADAPTER_FLAGS = ("lora", "qlora", "full")
#: The adapter named by --lora / --qlora / --full in this invocation; it overrides the YAML file's.
_ADAPTER_FLAG: ContextVar[str | None] = ContextVar("adapter_flag", default=None)


def _echo(line: str) -> None:
    err_console.print(line, highlight=False, markup=False)


def _run(values: dict[str, Any]) -> None:
    flag = _ADAPTER_FLAG.get()
    if flag is not None:
        values = {**values, "adapter": flag}
    resolved = validate_train_config(values, "rnr train")
    from rolenrules.train.trainer import train

    output = train(resolved, echo=_echo)
    console.print(str(output), highlight=False, markup=False)


def _with_adapter_flags(command: Any) -> Any:
    """`command` plus the flags --lora / --qlora / --full, each a short form of `--adapter`."""
    signature = inspect.signature(command)
    takes_ctx = "ctx" in signature.parameters
    params = [p for p in signature.parameters.values() if p.name != "ctx"]
    params.insert(0, inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context))
    params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=False, annotation=typing.Annotated[
        bool, typer.Option(f"--{name}", help=f"Same as --adapter {name}.", show_default=False)])
        for name in _ADAPTER_FLAGS]

    def train_command(ctx: typer.Context, **given: Any) -> None:
        chosen = [name for name in _ADAPTER_FLAGS if given.pop(name)]
        if getattr(ctx.get_parameter_source("adapter"), "name", None) == "COMMANDLINE":
            chosen.insert(0, given["adapter"])
        if len(set(chosen)) > 1:
            raise ConfigError(f"choose one adapter (got {', '.join(dict.fromkeys(chosen))})")
        token = _ADAPTER_FLAG.set(chosen[0] if chosen else None)
        try:
            command(ctx, **given) if takes_ctx else command(**given)
        finally:
            _ADAPTER_FLAG.reset(token)

    train_command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    train_command.__doc__ = command.__doc__
    return train_command


train_command = _with_adapter_flags(command_from_config(
    TrainConfig, _run, partial(load_yaml_mapping, paths=TrainConfig.PATHS), short={"config": "-c", "model": "-m", "data": "-d", "out": "-o"},
    doc="Fine-tune a model on RNR data: SFT (loss on assistant replies), DPO on preference pairs, GRPO with "
        "rule rewards, or SFT then DPO.\n\n"
        "Every option can also come from a YAML --config (flags override it); see docs/training.md. "
        "Multi-GPU: `accelerate launch --config_file examples/accelerate/ddp.yaml -m rolenrules.train "
        "--config train.yaml`."))


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
