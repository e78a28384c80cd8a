"""`hf:MODEL_ID_OR_PATH` — in-process transformers generation with the model's chat template.

`hf:smollm2` is the embedded SmolLM2-135M-Instruct as a transformers model (converted once from
its GGUF into the user cache; see `gguf_to_hf`); any folder, .gguf file or cached hub id works too.

Concurrent requests are gathered into batches (same sampling parameters, left-padded) and run in
a worker thread so the event loop stays free. Structured output is not grammar-constrained here:
replies are validated and retried by `LLM` (the `local:` backend constrains decoding).
"""

from __future__ import annotations

import asyncio
from typing import Any

from rolenrules.errors import ConfigError
from rolenrules.llm.base import ChatRequest, ChatResult, Sampling
from rolenrules.llm.hf_models import pretrained_source
from rolenrules.records import Usage


def load_hf_model(name: str) -> tuple[Any, Any]:
    """Load tokenizer and causal LM: a local folder, an embedded model (`smollm2`, converted once from
    its GGUF), a .gguf file, or a cached hub id (see `hf_models`). Never waits on an unreachable
    hub: an uncached id fails within seconds with a clear message."""
    try:
        import torch  # noqa: F401
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as error:
        raise ConfigError("the hf: backend needs torch and transformers: pip install 'rolenrules[train]'") from error
    source = pretrained_source(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.ref, local_files_only=source.local_files_only)
        model = AutoModelForCausalLM.from_pretrained(source.ref, local_files_only=source.local_files_only)
    except Exception as error:  # transformers raises OSError/ValueError/HF errors for the same cause
        where = "local folder" if source.is_local else "Hugging Face hub"
        raise ConfigError(f"hf:{name}: cannot load model from {where} {source.ref}: "
                          f"{str(error).splitlines()[0][:300]}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer, model.eval()


class HFBackend:
    def __init__(self, name: str, *, batch_size: int = 8, gather_ms: float = 5.0) -> None:
        self.name = name
        self.identity = f"hf:{name}"
        self.batch_size = batch_size
        self.gather_s = gather_ms / 1000
        self.tokenizer, self.model = load_hf_model(name)
        self._queue: asyncio.Queue[tuple[ChatRequest, asyncio.Future[ChatResult]]] | None = None
        self._worker: asyncio.Task[None] | None = None

    async def complete(self, request: ChatRequest) -> ChatResult:
        loop = asyncio.get_running_loop()
        if self._queue is None or self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._serve())
        future: asyncio.Future[ChatResult] = loop.create_future()
        await self._queue.put((request, future))
        return await future

    async def _serve(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            await asyncio.sleep(self.gather_s)
            while not self._queue.empty() and len(batch) < self.batch_size:
                batch.append(self._queue.get_nowait())
            groups: dict[Sampling, list[tuple[ChatRequest, asyncio.Future[ChatResult]]]] = {}
            for item in batch:
                groups.setdefault(item[0].sampling, []).append(item)
            for sampling, items in groups.items():
                try:
                    results = await asyncio.to_thread(self._generate, [r for r, _ in items], sampling)
                except Exception as error:  # one bad batch must not kill the worker
                    for _, fut in items:
                        if not fut.done():
                            fut.set_exception(error)
                    continue
                for (_, fut), result in zip(items, results):
                    if not fut.done():
                        fut.set_result(result)

    def render(self, request: ChatRequest) -> str:
        messages = [m.model_dump() for m in request.messages]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _generate(self, requests: list[ChatRequest], sampling: Sampling) -> list[ChatResult]:
        import torch

        prompts = [self.render(r) for r in requests]
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        do_sample = sampling.temperature > 0
        kwargs: dict[str, Any] = {"max_new_tokens": sampling.max_tokens, "do_sample": do_sample,
                                  "pad_token_id": self.tokenizer.pad_token_id}
        if do_sample:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p)
        with torch.no_grad():
            out = self.model.generate(**enc, **kwargs)
        results = []
        prompt_len = enc["input_ids"].shape[1]
        eos = self.tokenizer.eos_token_id
        for i in range(len(requests)):
            new = out[i, prompt_len:]
            ids = new.tolist()
            finished = eos in ids
            if finished:
                ids = ids[: ids.index(eos)]
            while ids and ids[-1] == self.tokenizer.pad_token_id:
                ids.pop()
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            prompt_tokens = int(enc["attention_mask"][i].sum())
            results.append(ChatResult(text=text, finish_reason="stop" if finished else "length",
                                      usage=Usage(requests=1, prompt_tokens=prompt_tokens, completion_tokens=len(ids))))
        return results

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None
