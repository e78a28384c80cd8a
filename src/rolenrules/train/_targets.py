"""LoRA target modules per architecture: attention and MLP projections, the QLoRA paper's choice."""

from __future__ import annotations

_LLAMA_LIKE = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

TARGET_MODULES: dict[str, list[str]] = {
    **{name: _LLAMA_LIKE for name in (
        "llama", "mistral", "ministral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2",
        "gemma3_text", "olmo", "olmo2", "granite", "smollm3", "cohere", "cohere2", "stablelm",
    )},
    "phi": ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"],
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "gpt_neox": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
    "falcon": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
    "starcoder2": ["q_proj", "k_proj", "v_proj", "o_proj", "c_fc", "c_proj"],
    "opt": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
}


def target_modules(model_type: str | None) -> list[str] | str:
    """Module names for `model_type`, or PEFT's `all-linear` (every linear layer but the output head)."""
    return list(TARGET_MODULES.get(model_type or "", [])) or "all-linear"
