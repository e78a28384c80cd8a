"""`vllm:MODEL` — in-process vLLM (GPU) for large offline generation runs.

Optional: needs `pip install 'rolenrules[vllm]'` and a GPU. Without them it fails at once with
a message. For a vLLM *server*, use `openai:MODEL --base-url http://HOST:8000/v1` instead.
Not exercised by the test suite (no GPU in CI).
"""

from __future__ import annotations

import asyncio
from typing import Any

from rolenrules.errors import ConfigError
from rolenrules.llm.base import ChatRequest, ChatResult
from rolenrules.records import Usage


class VLLMBackend:
    def __init__(self, model: str) -> None:
        try:
            import vllm
        except ImportError:
            raise ConfigError(f"vllm:{model}: vLLM is not installed (pip install 'rolenrules[vllm]', needs a GPU); "
                              f"or serve it with `vllm serve {model}` and use openai:{model} --base-url "
                              "http://127.0.0.1:8000/v1") from None
        self.identity = f"vllm:{model}"
        self._vllm = vllm
        self._engine = vllm.LLM(model=model)
        self._lock = asyncio.Lock()

    async def complete(self, request: ChatRequest) -> ChatResult:
        s = request.sampling
        kwargs: dict[str, Any] = {"temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens,
                                  "seed": s.seed}
        if request.json_schema is not None:
            kwargs["guided_decoding"] = self._vllm.sampling_params.GuidedDecodingParams(json=request.json_schema)
        params = self._vllm.SamplingParams(**kwargs)
        messages = [m.model_dump() for m in request.messages]
        async with self._lock:
            outputs = await asyncio.to_thread(self._engine.chat, messages, params, use_tqdm=False)
        out = outputs[0].outputs[0]
        return ChatResult(text=out.text, finish_reason=out.finish_reason,
                          usage=Usage(requests=1, prompt_tokens=len(outputs[0].prompt_token_ids or []),
                                      completion_tokens=len(out.token_ids)))

    async def aclose(self) -> None:
        return None
