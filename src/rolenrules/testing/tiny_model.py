"""Tiny causal LMs built on the spot, for tests and smoke runs with no model hub.

A byte-level BPE tokenizer is trained on the caller's own text, given a ChatML chat template,
and paired with a randomly initialised Llama or Qwen2 config of a few hundred thousand
parameters. SFT, LoRA and generation run on it in seconds on a CPU.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

def chatml_template(*, generation_markers: bool = True, system_role: bool = True) -> str:
    """A ChatML chat template. With `generation_markers`, each assistant reply and its end-of-turn
    token sit inside `{% generation %}` markers (what TRL's assistant-only loss needs); without
    them it is what many real templates look like. Without `system_role`, a system message
    raises, as Gemma's template does."""
    reply = "{{ message['content'] + '<|im_end|>' }}"
    if generation_markers:
        reply = "{% generation %}" + reply + "{% endgeneration %}"
    reject_system = "{% if message['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    return (
        "{% for message in messages %}"
        + ("" if system_role else reject_system)
        + "{% if message['role'] == 'assistant' %}"
        "{{ '<|im_start|>assistant\n' }}" + reply + "{{ '\n' }}"
        "{% else %}"
        "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
        "{% endif %}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )


CHATML_TEMPLATE = chatml_template()
CHATML_NO_MARKERS = chatml_template(generation_markers=False)
NO_SYSTEM_TEMPLATE = chatml_template(system_role=False)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_DEFAULT_TEXT = [
    "You are a helpful assistant. Answer in under fifty words. Never use emojis.",
    "What is the capital of France? The capital of France is Paris.",
    "Write a haiku about the sea. Waves fold into foam, the tide keeps its slow promise, salt on the cold wind.",
    "List three fruits: apple, banana, cherry.",
    "Rules: 1. Reply in English. 2. End with a question. 3. Refer to yourself as Ava.",
]


def build_tokenizer(texts: Iterable[str], vocab_size: int = 512, template: str = CHATML_TEMPLATE):  # noqa: ANN201
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(texts) * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", unk_token=None)
    fast.chat_template = template
    return fast


def build_tiny_model(out_dir: str | Path, texts: Iterable[str] | None = None, *, arch: str = "llama",
                     template: str = CHATML_TEMPLATE, hidden_size: int = 64, layers: int = 2, seed: int = 0,
                     vocab_size: int = 512) -> Path:
    """Write a tiny random chat model (config, weights, tokenizer with `template`) to `out_dir`."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    out = Path(out_dir)
    tokenizer = build_tokenizer(texts or _DEFAULT_TEXT, vocab_size=vocab_size, template=template)
    common = dict(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                  num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                  eos_token_id=tokenizer.eos_token_id, bos_token_id=None, tie_word_embeddings=True)
    if arch == "llama":
        config = LlamaConfig(**common)
    elif arch == "qwen2":
        config = Qwen2Config(**common)
    else:
        raise ValueError(f"unknown tiny architecture {arch!r} (llama or qwen2)")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
