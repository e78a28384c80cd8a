"""Shared fixtures: a local OpenAI-compatible server factory, a tiny HF chat model, the test data."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rolenrules.testing.fake_openai import FakeOpenAIServer

# Tests never reach a hub, and never wait on one.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
for _var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RNR_TEACHER", "RNR_MODEL"):
    os.environ.pop(_var, None)

#: Small real data the tests read, with its sources and licences in tests/data/README.md.
TEST_DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def fake_server() -> Iterator[Callable[..., FakeOpenAIServer]]:
    """Start local OpenAI-compatible servers: `fake_server(reply=..., latency=..., faults=...)`."""
    started: list[FakeOpenAIServer] = []

    def start(**kwargs: object) -> FakeOpenAIServer:
        server = FakeOpenAIServer(**kwargs).start()  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama chat model with a ChatML template (built once per test session)."""
    from rolenrules.testing.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture
def seed_tasks() -> Path:
    """The 175 Self-Instruct seed tasks (`instruction` + `instances`), a small real instruction set."""
    return TEST_DATA / "self_instruct_seed_tasks.jsonl"
