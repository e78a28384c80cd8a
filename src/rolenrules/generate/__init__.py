"""RNR data generation: system prompts from K instructions, rule-abiding answers, verification,
regeneration, dedup, judge calibration, preference pairs, and a resumable run store."""

from rolenrules.generate.config import GenerateConfig, build_config
from rolenrules.generate.dryrun import DryRunEstimate, estimate
from rolenrules.generate.pipeline import RunResult, default_clients, generate
from rolenrules.generate.progress import LogProgress, StageCounts

__all__ = ["DryRunEstimate", "GenerateConfig", "LogProgress", "RunResult", "StageCounts", "build_config",
           "default_clients", "estimate", "generate"]
