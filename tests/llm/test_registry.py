"""The backend registry: spec kinds, lazy loading, declared options, and the default-model notice."""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys

import pytest

from rolenrules.errors import ConfigError
from rolenrules.llm import BACKENDS, BackendEntry, BackendOptions, build_llm, make_backend, parse_spec, register_backend
from rolenrules.llm.base import ChatRequest, ChatResult
from rolenrules.llm.spec import toy_notice


class Recorder:
    """A backend that keeps the keyword options it was built with."""

    def __init__(self, name: str, **options: object) -> None:
        self.identity = f"recorder:{name}"
        self.options = options

    async def complete(self, request: ChatRequest) -> ChatResult:
        return ChatResult(text="ok")

    async def aclose(self) -> None:
        return None


@pytest.fixture
def recorder_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BACKENDS, "recorder", None)  # restored (removed) after the test
    register_backend(BackendEntry("recorder", f"{__name__}:Recorder", help="test", forms=("recorder:NAME",),
                                  accepts=("timeout", "batch_size")))


def test_unknown_kind_is_a_config_error_listing_every_registered_kind() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_spec("nope:model")
    for kind in ("openai", "hf", "local", "vllm"):
        assert kind in BACKENDS and kind in str(caught.value)
    with pytest.raises(ConfigError, match="KIND:NAME"):
        parse_spec("openai:")


def test_a_registered_kind_gets_only_the_options_it_declares(recorder_kind: None) -> None:
    backend = make_backend("recorder:x", BackendOptions(base_url="http://elsewhere/v1", timeout=7.0, batch_size=3))
    assert isinstance(backend, Recorder)
    assert backend.options == {"timeout": 7.0, "batch_size": 3}  # base_url is not its business
    assert parse_spec("recorder:a:b") == ("recorder", "a:b")


def test_an_entry_cannot_declare_an_option_that_does_not_exist() -> None:
    with pytest.raises(ValueError, match="parallelism"):
        BackendEntry("x", "m:C", help="", forms=("x:NAME",), accepts=("parallelism",))


def test_vllm_is_registered_and_fails_fast_with_the_install_line() -> None:
    assert importlib.util.find_spec("vllm") is None  # never installed here (it pulls CUDA)
    with pytest.raises(ConfigError, match=r"pip install 'rolenrules\[vllm\]'"):
        make_backend("vllm:Qwen/Qwen2.5-0.5B-Instruct")


def test_listing_the_kinds_imports_no_backend_module() -> None:
    code = ("import sys, rolenrules.cli\n"
            "heavy = [m for m in ('rolenrules.llm.hf_backend', 'rolenrules.llm.local_backend', "
            "'rolenrules.llm.vllm_backend', 'torch', 'llama_cpp') if m in sys.modules]\n"
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(("flag", "env_var"), [("--teacher", "RNR_TEACHER"), ("--model", "RNR_MODEL")])
def test_toy_notice_names_the_commands_own_flag(flag: str, env_var: str) -> None:
    notice = toy_notice(flag, env_var)
    assert f"pass {flag} openai:MODEL" in notice and f"set {env_var}" in notice


@pytest.mark.slow
def test_default_model_notice_is_logged_not_printed(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="rolenrules"):
        llm = build_llm(None, env_var="RNR_MODEL", flag="--model")
    assert llm.identity == "local:smollm2"
    # Through the `rolenrules` logger, which the CLI shows on stderr; the library prints nothing itself.
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        ("rolenrules.llm", f"note: {toy_notice('--model', 'RNR_MODEL')}")]
    caplog.clear()
    build_llm(None, quiet=True)
    assert not caplog.records
