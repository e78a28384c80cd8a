"""RNR data generation: system prompts from K instructions, rule-abiding answers, verification,
regeneration, dedup, and a resumable run store."""

from rolenrules.generate.config import GenerateConfig, build_config
from rolenrules.generate.pipeline import RunResult, default_clients, generate

__all__ = ["GenerateConfig", "RunResult", "build_config", "default_clients", "generate"]
