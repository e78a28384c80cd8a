"""LLM backends behind one async protocol, with the request cache, retries and structured output."""

from rolenrules.llm.base import Backend, ChatRequest, ChatResult, InvalidReplyError, LLMError, Sampling
from rolenrules.llm.cache import RequestCache
from rolenrules.llm.client import LLM, parse_json_reply, schema_for
from rolenrules.llm.registry import BACKENDS, BackendEntry, BackendOptions, register_backend, spec_forms
from rolenrules.llm.spec import build_llm, make_backend, make_llm, parse_spec, resolve_default_spec

__all__ = [
    "BACKENDS", "LLM", "Backend", "BackendEntry", "BackendOptions", "ChatRequest", "ChatResult", "InvalidReplyError",
    "LLMError", "RequestCache", "Sampling", "build_llm", "make_backend", "make_llm", "parse_json_reply", "parse_spec",
    "register_backend", "resolve_default_spec", "schema_for", "spec_forms",
]
