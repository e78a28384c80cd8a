"""Fine-tuning on RoleNRules data: TRL's SFTTrainer with assistant-only loss, data mixing, chat-template audit.

    from rolenrules.train import TrainConfig, train, audit_template

    config = TrainConfig(model="Qwen/Qwen2.5-0.5B-Instruct", data=["rnr.jsonl", "alpaca.json:0.5"],
                         out="runs/qwen-rnr", method="lora")
    out_dir = train(config)                       # adapter + tokenizer + resolved config + log
    print(audit_template("Qwen/Qwen2.5-0.5B-Instruct").summary())

torch, transformers, trl and peft are imported only when a function needs them.
"""

from rolenrules.train.config import DataSource, TrainConfig, resolve_config
from rolenrules.train.template_audit import Check, TemplateReport, audit_template
from rolenrules.train.trainer import TrainSession, build_trainer, train

__all__ = ["Check", "DataSource", "TemplateReport", "TrainConfig", "TrainSession", "audit_template",
           "build_trainer", "resolve_config", "train"]
