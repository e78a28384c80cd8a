"""Tiny chat models and the small datasets (SFT, pairs, GRPO prompts, a benchmark), built once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _train_builders import corpus, make_bench, make_examples, make_pairs, make_prompt_examples

from rolenrules.io import write_examples, write_jsonl


@pytest.fixture(scope="session")
def rnr_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "rnr.jsonl"
    write_examples(make_examples(), path)
    return path


@pytest.fixture(scope="session")
def pairs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pairs") / "rnr.pairs.jsonl"
    write_jsonl(make_pairs(), path)
    return path


@pytest.fixture(scope="session")
def prompt_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "ruled.jsonl"
    write_examples(make_prompt_examples(), path)
    return path


@pytest.fixture(scope="session")
def bench_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "bench.jsonl"
    write_examples(make_bench(), path)
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three tiny chat models: a marked ChatML Llama, a Qwen2 without markers, a Llama rejecting system."""
    from rolenrules.testing.tiny_model import CHATML_NO_MARKERS, CHATML_TEMPLATE, NO_SYSTEM_TEMPLATE, build_tiny_model

    root = tmp_path_factory.mktemp("models")
    return {
        "marked": build_tiny_model(root / "llama", corpus(), arch="llama", template=CHATML_TEMPLATE),
        "no_markers": build_tiny_model(root / "qwen2", corpus(), arch="qwen2", template=CHATML_NO_MARKERS),
        "no_system": build_tiny_model(root / "nosys", corpus(), arch="llama", template=NO_SYSTEM_TEMPLATE),
    }


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny models train fastest on one thread; on a shared 2-core box two threads spin-wait (20x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
