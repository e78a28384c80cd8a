"""GGUF → transformers conversion cache, on a tiny GGUF written in the test (seconds, no real model)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rolenrules.errors import ConfigError
from rolenrules.llm import gguf_to_hf
from rolenrules.llm.gguf_to_hf import MARKER, converted_folder, strip_default_system
from rolenrules.llm.hf_models import pretrained_source
from rolenrules.testing.tiny_gguf import SMOLLM2_TEMPLATE, build_tiny_gguf


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    folder = tmp_path_factory.mktemp("ggufs")
    return {seed: build_tiny_gguf(folder / f"tiny-{seed}.gguf", seed=seed) for seed in (0, 1)}


def _state(folder: Path) -> tuple[int, int, str]:
    weights = (folder / "model.safetensors").stat()
    return weights.st_ino, weights.st_mtime_ns, (folder / MARKER).read_text()


def _weights(folder: Path):  # noqa: ANN202
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_conversion_is_a_loadable_model_with_tokenizer_and_the_template_minus_its_default_system(
        ggufs: dict[int, Path], tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = converted_folder(ggufs[0], "tiny", root=tmp_path)
    assert folder.parent == tmp_path / "models" and folder.name.startswith("tiny-")
    marker = json.loads((folder / MARKER).read_text())
    assert marker["sources"][0]["path"] == str(ggufs[0].resolve())
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.config.model_type == "llama" and not hasattr(model.config, "quantization_config")
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                           add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"  # no "You are ... SmolLM"
    with_system = tokenizer.apply_chat_template([{"role": "system", "content": "Be Ava."},
                                                 {"role": "user", "content": "hi"}], tokenize=False)
    assert with_system == "<|im_start|>system\nBe Ava.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"


def test_second_use_reuses_the_folder_and_a_changed_gguf_is_converted_again(
        ggufs: dict[int, Path], tmp_path: Path) -> None:
    source = tmp_path / "model.gguf"
    shutil.copy(ggufs[0], source)
    first = converted_folder(source, "m", root=tmp_path)
    before = _state(first)
    assert converted_folder(source, "m", root=tmp_path) == first
    assert _state(first) == before  # not written again: same weights file, same marker

    copy = tmp_path / "elsewhere.gguf"
    shutil.copy(source, copy)  # same content at another path: same folder, no conversion
    assert converted_folder(copy, "m", root=tmp_path) == first
    assert _state(first)[:2] == before[:2]
    assert len(json.loads((first / MARKER).read_text())["sources"]) == 2

    shutil.copy(ggufs[1], source)  # the file changes (other weights)
    second = converted_folder(source, "m", root=tmp_path)
    assert second != first and (second / MARKER).exists()
    assert not _weights(second)["model.layers.0.self_attn.q_proj.weight"].equal(
        _weights(first)["model.layers.0.self_attn.q_proj.weight"])
    assert first.exists()  # kept: an adapter trained on it names it by path


def test_a_conversion_that_dies_leaves_no_folder_under_the_final_name(
        ggufs: dict[int, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # as if killed after the weights were written

    with monkeypatch.context() as patch:
        patch.setattr(gguf_to_hf, "_write_marker", crash)
        with pytest.raises(KeyboardInterrupt):
            converted_folder(ggufs[0], "m", root=tmp_path)
    assert list((tmp_path / "models").iterdir()) == []
    folder = converted_folder(ggufs[0], "m", root=tmp_path)
    assert (folder / MARKER).exists() and (folder / "model.safetensors").exists()


def test_model_specs_resolve_gguf_files_folders_and_fail_fast_for_uncached_hub_ids(
        ggufs: dict[int, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNR_CACHE_DIR", str(tmp_path / "cache"))
    for spec in (str(ggufs[0]), f"hf:{ggufs[0]}", f"local:{ggufs[0]}"):
        source = pretrained_source(spec)
        assert source.local_files_only and Path(source.ref).parent == tmp_path / "cache" / "models"
    assert pretrained_source(f"hf:{tmp_path}").ref == str(tmp_path.resolve())
    with pytest.raises(ConfigError, match="no such folder"):
        pretrained_source("./not-here")
    with pytest.raises(ConfigError, match="local: takes an embedded model name"):
        pretrained_source("local:not-here")
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE is set"):
        pretrained_source("someone/uncached-model")


def test_uncached_hub_id_online_probes_the_hub_once_and_fails_with_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from huggingface_hub import constants

    from rolenrules.llm import hf_models

    with socket.socket() as probe:  # a port nothing listens on: connection refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(hf_models, "_probe_results", {})
    with pytest.raises(ConfigError) as caught:
        pretrained_source("someone/uncached-model")
    message = str(caught.value)
    assert "cannot be reached" in message and f"127.0.0.1:{port}" in message and "\n" not in message


def test_strip_default_system_leaves_other_templates_alone() -> None:
    stripped = strip_default_system(SMOLLM2_TEMPLATE)
    assert "SmolLM" not in stripped and stripped.startswith("{% for message in messages %}{{'<|im_start|>'")
    other = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert strip_default_system(other) == other
