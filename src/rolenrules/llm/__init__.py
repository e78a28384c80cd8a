"""LLM backends behind one async protocol, with the request cache, retries and structured output.

The names below are imported on first use (PEP 562), so that reading the backend registry
(`rolenrules.llm.registry`, e.g. for `rnr --help`) does not load the client, pydantic models or asyncio.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rolenrules.llm.base import Backend, ChatRequest, ChatResult, InvalidReplyError, LLMError, Sampling
    from rolenrules.llm.cache import RequestCache
    from rolenrules.llm.client import LLM, parse_json_reply, schema_for
    from rolenrules.llm.registry import BACKENDS, BackendEntry, BackendOptions, register_backend, spec_forms
    from rolenrules.llm.spec import build_llm, make_backend, make_llm, parse_spec, resolve_default_spec
    from rolenrules.llm.stats import CallStats

_WHERE = {
    "base": ("Backend", "ChatRequest", "ChatResult", "InvalidReplyError", "LLMError", "Sampling"),
    "cache": ("RequestCache",),
    "client": ("LLM", "parse_json_reply", "schema_for"),
    "registry": ("BACKENDS", "BackendEntry", "BackendOptions", "register_backend", "spec_forms"),
    "spec": ("build_llm", "make_backend", "make_llm", "parse_spec", "resolve_default_spec"),
    "stats": ("CallStats",),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'rolenrules.llm' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"rolenrules.llm.{module}"), name)
    globals()[name] = value
    return value
