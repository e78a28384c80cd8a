"""A tiny random Llama chat model written as a GGUF file, for tests of GGUF loading and conversion.

The model is `tiny_model.build_tiny_model`'s (byte-level BPE tokenizer, a few hundred thousand
parameters), written with the `gguf` package the way llama.cpp's converter writes a Llama: the
same metadata keys, the tokenizer as `gpt2` tokens and merges, float32 tensors under llama.cpp's
names, and the query/key projections permuted for llama.cpp's rotary layout (transformers undoes
that on load). Its chat template is SmolLM2's, default system prompt included.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

#: SmolLM2-135M-Instruct's chat template as its GGUF stores it.
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _permute(weights, n_head: int):  # noqa: ANN001, ANN202 - numpy in, numpy out
    # llama.cpp's convert_hf_to_gguf.py stores q/k rows interleaved per head for its rope kernel.
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def build_tiny_gguf(path: str | Path, *, seed: int = 0, template: str = SMOLLM2_TEMPLATE) -> Path:
    """Write a tiny random Llama chat model to `path` (a .gguf file); `seed` sets its weights."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    from rolenrules.testing.tiny_model import build_tiny_model

    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_tiny_model(tmp, seed=seed, template=template)
        config = json.loads((folder / "config.json").read_text())
        tensors = load_file(str(folder / "model.safetensors"))
        tokenizer = json.loads((folder / "tokenizer.json").read_text())
    vocab: dict[str, int] = tokenizer["model"]["vocab"]
    for added in tokenizer["added_tokens"]:
        vocab[added["content"]] = added["id"]
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    special = {added["content"] for added in tokenizer["added_tokens"] if added.get("special")}
    merges = [m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"]["merges"]]
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(config["hidden_size"] // heads)
    writer.add_rope_freq_base(float(config.get("rope_theta") or config.get("rope_parameters", {}).get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(len(tokens))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens])
    writer.add_token_merges(merges)
    writer.add_eos_token_id(vocab["<|im_end|>"])
    writer.add_bos_token_id(vocab["<|im_start|>"])
    writer.add_pad_token_id(vocab["<|endoftext|>"])
    writer.add_add_bos_token(False)
    writer.add_chat_template(template)

    names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    writer.add_tensor("token_embd.weight", tensors["model.embed_tokens.weight"].astype(np.float32))
    writer.add_tensor("output_norm.weight", tensors["model.norm.weight"].astype(np.float32))
    for layer in range(config["num_hidden_layers"]):
        for hf_name, gguf_name in names.items():
            data = tensors[f"model.layers.{layer}.{hf_name}.weight"].astype(np.float32)
            if hf_name == "self_attn.q_proj":
                data = _permute(data, heads)
            elif hf_name == "self_attn.k_proj":
                data = _permute(data, kv_heads)
            writer.add_tensor(f"blk.{layer}.{gguf_name}.weight", data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
