from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from rolenrules.errors import ConfigError
from rolenrules.llm import LLM, Sampling, make_llm


def test_hf_backend_generates_with_the_chat_template(tiny_model_dir: Path) -> None:
    llm = make_llm(f"hf:{tiny_model_dir}", sampling=Sampling(max_tokens=12, temperature=0.0))
    rendered = llm.backend.render(llm._request([{"role": "system", "content": "Be brief."},
                                                {"role": "user", "content": "hi"}], None, {}))
    assert rendered == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    # A random tiny model may stop at once or babble: check the backend's accounting, not the words.
    request = llm._request([{"role": "user", "content": "What is the capital of France?"}], None, {})
    result = asyncio.run(llm.backend.complete(request))
    assert isinstance(result.text, str) and result.finish_reason in ("stop", "length")
    assert result.usage.completion_tokens <= 12 and result.usage.prompt_tokens > 5
    if result.finish_reason == "length":
        assert result.usage.completion_tokens == 12


def test_hf_backend_batches_concurrent_requests_deterministically(tiny_model_dir: Path) -> None:
    llm = make_llm(f"hf:{tiny_model_dir}", sampling=Sampling(max_tokens=8, temperature=1.0, seed=3))
    prompts = [f"tell me about topic {i}" for i in range(5)]

    async def many(client: LLM) -> list[str]:
        requests = [client._request([{"role": "user", "content": p}], None, {}) for p in prompts]
        results = await asyncio.gather(*(client.backend.complete(r) for r in requests))
        return [r.text for r in results]

    first = llm.run(many(llm))
    again = make_llm(f"hf:{tiny_model_dir}", sampling=Sampling(max_tokens=8, temperature=1.0, seed=3))
    assert again.run(many(again)) == first
    # Greedy decoding of one prompt alone equals its result inside a padded batch.
    greedy = make_llm(f"hf:{tiny_model_dir}", sampling=Sampling(max_tokens=8, temperature=0.0))
    batched = greedy.run(many(greedy))
    alone = make_llm(f"hf:{tiny_model_dir}", sampling=Sampling(max_tokens=8, temperature=0.0))
    single = asyncio.run(alone.backend.complete(alone._request([{"role": "user", "content": prompts[2]}], None, {})))
    assert single.text == batched[2]


def test_hf_backend_missing_model_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such folder"):
        make_llm(f"hf:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="cannot load model from local folder"):
        make_llm(f"hf:{tmp_path / 'empty'}")
    with pytest.raises(ConfigError, match="not in the Hugging Face cache .* HF_HUB_OFFLINE is set"):
        make_llm("hf:someone/not-cached-model-xyz")
