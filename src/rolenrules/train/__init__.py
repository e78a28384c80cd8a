"""Fine-tuning on RoleNRules data with TRL: SFT (assistant-only loss), DPO on preference pairs, GRPO
with the rule library as reward, and SFT then DPO; data mixing, held-out exclusion, chat-template audit.

    from rolenrules.train import TrainConfig, train, audit_template

    config = TrainConfig(model="Qwen/Qwen2.5-0.5B-Instruct", data=["rnr.jsonl", "alpaca.json:0.5"],
                         out="runs/qwen-rnr", adapter="lora")            # method="sft" by default
    out_dir = train(config)                       # adapter + tokenizer + resolved config + log
    train(TrainConfig(model=..., method="dpo", pairs=["rnr.pairs.jsonl"], out=..., adapter="lora"))
    print(audit_template("Qwen/Qwen2.5-0.5B-Instruct").summary())

torch, transformers, trl and peft are imported only when a function needs them.
"""

from rolenrules.train.config import DataSource, TrainConfig, resolve_config, validate_train_config
from rolenrules.train.pairs import PreferencePair, read_pairs
from rolenrules.train.template_audit import Check, TemplateReport, audit_template
from rolenrules.train.trainer import TrainSession, build_trainer, stage_configs, train

__all__ = ["Check", "DataSource", "PreferencePair", "TemplateReport", "TrainConfig", "TrainSession",
           "audit_template", "build_trainer", "read_pairs", "resolve_config", "stage_configs", "train",
           "validate_train_config"]
