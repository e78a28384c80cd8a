"""`vllm:MODEL` — vLLM's async engine in this process (GPU), so concurrent requests decode together.

Optional: needs `pip install 'rolenrules[vllm]'` and a GPU; without vLLM it fails at once with the
install line. For a vLLM *server*, use `openai:MODEL --base-url http://HOST:8000/v1` instead.

Why the async engine (`vllm.AsyncLLMEngine`, i.e. `AsyncLLM` in vLLM v1) rather than batched
`LLM.chat` calls fed from a queue: a batched `chat` call returns only when its longest reply is
done, and requests that arrive meanwhile wait for the next call; the async engine adds each
request to the running batch at the next decoding step (continuous batching) and frees its slot
the moment it finishes. It also takes per-request `SamplingParams` (each its own seed) and aborts a
single request when its caller is cancelled.

How it runs:
* The engine lives on its own thread with its own event loop (`_EngineThread`). vLLM's async
  engine binds its output handler to the loop it first runs in, while rnr may call one backend
  from several loops (the pipeline runs its work in one `asyncio.run` and closes in another).
  `complete` hands each request to that loop and awaits the answer from any loop; cancelling the
  caller cancels the request there, which makes vLLM abort it.
* The prompt is the model's own chat template, from the tokenizer vLLM loaded for the model
  (`apply_chat_template`, then token ids without added special tokens, as vLLM's chat rendering
  does), sent as token ids so nothing adds a second BOS.
* `Sampling` maps one to one onto `SamplingParams`: temperature (0 is greedy), top_p, max_tokens,
  seed, per request; only the final output is streamed back (`RequestOutputKind.FINAL_ONLY`).
  vLLM does not promise batch-invariant numerics: the same seed can give a different reply when
  the batch around it differs.
* Structured output uses the structured-output API this vLLM has (`VLLMParams`):
  `SamplingParams(structured_outputs=StructuredOutputsParams(json=schema))` in current vLLM, or
  `SamplingParams(guided_decoding=GuidedDecodingParams(json=schema))` in the older releases that
  had only that; with neither, or when vLLM refuses the schema, the request fails with an
  `LLMError` that says so.
* Engine options (`BackendOptions`): tensor_parallel_size, gpu_memory_utilization, max_model_len,
  dtype. `aclose()` aborts what is in flight and shuts the engine down (the GPU memory is freed);
  a later request starts it again.

The adapter (`AsyncEngineBackend`) runs against any object with vLLM's async-engine surface, so
the test suite drives it with an engine of ours (`rolenrules.testing.fake_engine`); the vLLM
engine itself has not been run by the test suite (no GPU in CI): see docs/scale.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import itertools
import logging
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Protocol

from rolenrules.errors import ConfigError
from rolenrules.llm.base import ChatRequest, ChatResult, InvalidReplyError, LLMError, Sampling
from rolenrules.records import Usage

log = logging.getLogger("rolenrules.llm")

INSTALL_HINT = "pip install 'rolenrules[vllm]', needs a GPU"
#: How long closing waits for in-flight requests to abort and the engine to shut down.
CLOSE_TIMEOUT_S = 120.0


class AsyncEngine(Protocol):
    """What the adapter uses of vLLM's async engine (`AsyncLLM` / `AsyncLLMEngine`)."""

    def generate(self, prompt: Any, sampling_params: Any, request_id: str) -> AsyncIterator[Any]: ...

    # Sync in current vLLM, a coroutine in older releases; both are accepted.
    def get_tokenizer(self) -> Any: ...


class SchemaNotEnforceable(LLMError):
    """A structured request this engine cannot constrain to its JSON schema."""


class VLLMParams:
    """Builds vLLM `SamplingParams` for one request, with the structured-output API the installed
    vLLM has. `module` is `vllm.sampling_params` (or an object with the same names)."""

    def __init__(self, module: Any) -> None:
        self._sampling_params = module.SamplingParams
        #: (SamplingParams field, its parameter class), or None when this vLLM has neither API.
        self.structured: tuple[str, Any] | None = None
        if hasattr(module, "StructuredOutputsParams"):
            self.structured = ("structured_outputs", module.StructuredOutputsParams)
        elif hasattr(module, "GuidedDecodingParams"):  # removed from vLLM after structured_outputs arrived
            self.structured = ("guided_decoding", module.GuidedDecodingParams)
        output_kind = getattr(module, "RequestOutputKind", None)
        self._final_only = getattr(output_kind, "FINAL_ONLY", None)

    def build(self, sampling: Sampling, json_schema: dict[str, Any] | None = None) -> Any:
        kwargs: dict[str, Any] = {"temperature": sampling.temperature, "top_p": sampling.top_p,
                                  "max_tokens": sampling.max_tokens, "seed": sampling.seed}
        if self._final_only is not None:
            kwargs["output_kind"] = self._final_only  # no partial outputs: we only use the last one
        if json_schema is not None:
            if self.structured is None:
                raise SchemaNotEnforceable(
                    "this vLLM has no structured-output parameters (neither StructuredOutputsParams nor "
                    "GuidedDecodingParams), so the JSON schema cannot be enforced; install a current vLLM")
            field, params_class = self.structured
            kwargs[field] = params_class(json=json_schema)
        return self._sampling_params(**kwargs)


def render_prompt(tokenizer: Any, request: ChatRequest) -> list[int]:
    """The request as token ids, through the model's chat template. Special tokens come from the
    template alone (as in vLLM's own chat rendering), so none is added twice."""
    messages = [m.model_dump() for m in request.messages]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if isinstance(rendered, str):
        return list(tokenizer.encode(rendered, add_special_tokens=False))
    return [int(i) for i in rendered]  # vLLM's own tokenizers (Mistral's) render straight to ids


class _EngineThread:
    """An event loop on a thread of its own, holding one engine; every engine call runs there."""

    def __init__(self, start_engine: Callable[[], Any], name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self.tokenizer: Any = None
        started: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._main, args=(start_engine, started), name=name, daemon=True)
        self._thread.start()
        try:
            self.engine = started.result()
        except BaseException:
            self._thread.join()
            raise

    def _main(self, start_engine: Callable[[], Any], started: concurrent.futures.Future[Any]) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            # Built before the loop runs, so the engine starts its background tasks in this loop
            # at its first request rather than in whichever loop built it.
            engine = start_engine()
        except BaseException as error:
            started.set_exception(error)
            self._loop.close()
            return
        started.set_result(engine)
        try:
            self._loop.run_forever()
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        finally:
            self._loop.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._closing

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        if self._closing:
            coro.close()
            raise LLMError("the vLLM backend is closing")
        return asyncio.run_coroutine_threadsafe(self._tracked(coro), self._loop)

    async def _tracked(self, coro: Coroutine[Any, Any, Any]) -> Any:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            return await coro
        except asyncio.CancelledError:
            if self._closing:  # the backend was closed under a caller that is still waiting
                raise LLMError("the vLLM backend was closed while this request was in flight") from None
            raise
        finally:
            self._tasks.discard(task)

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Abort the requests in flight, shut the engine down, stop the loop and the thread."""
        if self._closing or not self._thread.is_alive():
            return
        self._closing = True

        async def stop() -> None:
            ours = list(self._tasks)
            for task in ours:
                task.cancel()  # vLLM's generate() aborts its request when cancelled
            await asyncio.gather(*ours, return_exceptions=True)
            shutdown = getattr(self.engine, "shutdown", None)
            if shutdown is not None:
                try:
                    shutdown()
                except Exception as error:  # closing must still stop the thread
                    log.warning("vLLM engine shutdown failed: %s", error)
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)


class AsyncEngineBackend:
    """A `Backend` over an async continuous-batching engine: vLLM's, or any object with its
    surface (`AsyncEngine`). `start_engine` builds the engine (on the engine's own thread);
    `params` builds each request's sampling parameters."""

    def __init__(self, identity: str, start_engine: Callable[[], Any], params: VLLMParams) -> None:
        self.identity = identity
        self._start_engine = start_engine
        self._params = params
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._host: _EngineThread | None = None
        self._ensure_started()  # a model that cannot load fails here, before any request

    def _ensure_started(self) -> _EngineThread:
        with self._lock:
            if self._host is None or not self._host.alive:
                try:
                    self._host = _EngineThread(self._start_engine, name=f"rnr-engine-{self.identity}")
                except Exception as error:
                    raise ConfigError(f"{self.identity}: the engine did not start: {_detail(error)}") from None
            return self._host

    async def complete(self, request: ChatRequest) -> ChatResult:
        host = self._host
        if host is None or not host.alive:
            host = await asyncio.to_thread(self._ensure_started)  # closed before: start again
        return await asyncio.wrap_future(host.submit(self._generate(host, request)))

    async def _generate(self, host: _EngineThread, request: ChatRequest) -> ChatResult:
        """Runs on the engine's loop."""
        if host.tokenizer is None:
            tokenizer = host.engine.get_tokenizer()
            host.tokenizer = await tokenizer if inspect.isawaitable(tokenizer) else tokenizer
        try:
            prompt_ids = render_prompt(host.tokenizer, request)
        except Exception as error:
            raise LLMError(f"{self.identity}: the chat template failed on this conversation: {_detail(error)}") from None
        try:
            params = self._params.build(request.sampling, request.json_schema)
        except SchemaNotEnforceable as error:
            raise SchemaNotEnforceable(f"{self.identity}: {error}") from None
        except Exception as error:  # vLLM validates SamplingParams when they are built
            raise LLMError(f"{self.identity}: vLLM refused the sampling parameters: {_detail(error)}") from None
        request_id = f"rnr-{next(self._ids)}"
        final = None
        try:
            async for output in host.engine.generate({"prompt_token_ids": prompt_ids}, params, request_id):
                final = output
        except Exception as error:
            raise self._failure(request, error, started=final is not None) from None
        if final is None or not final.outputs:
            raise InvalidReplyError(f"{self.identity}: the engine returned no output")
        out = final.outputs[0]
        if not final.finished or out.finish_reason not in ("stop", "length"):
            raise LLMError(f"{self.identity}: generation ended without finishing (finish_reason={out.finish_reason!r})")
        echoed = getattr(final, "prompt_token_ids", None)
        prompt_tokens = len(echoed) if echoed is not None else len(prompt_ids)
        return ChatResult(text=out.text, finish_reason=out.finish_reason,
                          usage=Usage(requests=1, prompt_tokens=prompt_tokens, completion_tokens=len(out.token_ids)))

    def _failure(self, request: ChatRequest, error: Exception, *, started: bool) -> LLMError:
        detail = _detail(error)
        if request.json_schema is not None and not started and isinstance(_root(error), (ValueError, TypeError)):
            # vLLM validates a structured request when it is added: a schema its grammar backend
            # cannot compile is refused there, before any token.
            return SchemaNotEnforceable(f"{self.identity}: vLLM refused the structured request "
                                        f"({request.schema_name or 'JSON schema'}), so its schema cannot be "
                                        f"enforced: {detail}")
        return LLMError(f"{self.identity}: generation failed: {detail}")

    async def aclose(self) -> None:
        with self._lock:
            host, self._host = self._host, None
        if host is not None:
            await asyncio.to_thread(host.close)


def _root(error: BaseException) -> BaseException:
    # vLLM wraps unexpected errors (EngineGenerateError from the original): report the original.
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def _detail(error: BaseException) -> str:
    root = _root(error)
    message = (str(root).strip().splitlines() or [""])[0][:300]
    return f"{type(root).__name__}: {message}" if message else type(root).__name__


def engine_args(model: str, *, tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
                max_model_len: int | None = None, dtype: str = "auto") -> dict[str, Any]:
    """The `AsyncEngineArgs` for a `vllm:` spec; an unset max_model_len is left to vLLM (the model's)."""
    args: dict[str, Any] = {"model": model, "tensor_parallel_size": tensor_parallel_size,
                            "gpu_memory_utilization": gpu_memory_utilization, "dtype": dtype}
    if max_model_len is not None:
        args["max_model_len"] = max_model_len
    return args


class VLLMBackend(AsyncEngineBackend):
    def __init__(self, model: str, *, tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
                 max_model_len: int | None = None, dtype: str = "auto") -> None:
        try:
            import vllm
            import vllm.sampling_params
        except ImportError:
            raise ConfigError(f"vllm:{model}: vLLM is not installed ({INSTALL_HINT}); or serve it with "
                              f"`vllm serve {model}` and use openai:{model} --base-url http://127.0.0.1:8000/v1"
                              ) from None
        args = engine_args(model, tensor_parallel_size=tensor_parallel_size,
                           gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len, dtype=dtype)

        def start() -> Any:
            # `AsyncLLMEngine` is vLLM v1's `AsyncLLM` in current releases (and builds it in 0.8+).
            return vllm.AsyncLLMEngine.from_engine_args(vllm.AsyncEngineArgs(**args))

        super().__init__(f"vllm:{model}", start, VLLMParams(vllm.sampling_params))
