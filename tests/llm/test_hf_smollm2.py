"""`hf:smollm2` / `rnr train --model smollm2`: the embedded model as a transformers model, offline.

Uses the real conversion in the user cache (`~/.cache/rolenrules`, or `$RNR_CACHE_DIR`): the first
run on a machine converts the GGUF once (about a minute on 2 cores), later runs load the folder.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rolenrules.cli import app
from rolenrules.llm import make_llm
from rolenrules.llm.local_backend import LocalBackend

pytestmark = pytest.mark.slow

RECORDS = [
    [{"role": "system", "content": "You are Ava. Answer in one sentence."},
     {"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."}],
    [{"role": "user", "content": "2 + 2?"}, {"role": "assistant", "content": "4"}],
]


def test_hf_smollm2_renders_the_prompt_local_smollm2_renders() -> None:
    hf = make_llm("hf:smollm2").backend
    local = LocalBackend("smollm2", parallel=1)
    for messages in ([{"role": "user", "content": "Hi"}],
                     [{"role": "system", "content": "You are Ava."}, {"role": "user", "content": "Hi"}]):
        request = make_llm("hf:smollm2")._request(messages, None, {})
        assert hf.render(request) == local.render(messages)


def test_rnr_chat_hf_smollm2_answers() -> None:
    outcome = CliRunner().invoke(app, ["chat", "--model", "hf:smollm2", "What is the capital of France?",
                                       "--temperature", "0", "--max-tokens", "16"])
    assert outcome.exit_code == 0, outcome.output
    assert "Paris" in outcome.output


def test_rnr_train_smollm2_lora_offline_and_the_adapter_loads_as_hf_out(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"messages": m}) + "\n" for m in RECORDS), encoding="utf-8")
    out = tmp_path / "out"
    outcome = CliRunner().invoke(app, ["train", "--model", "smollm2", "--data", str(data), "--lora", "--max-steps",
                                       "1", "--max-length", "48", "--batch-size", "2", "--out", str(out)])
    assert outcome.exit_code == 0, outcome.output
    from rolenrules.train.trainer import _cpu_has_bf16

    # On a CPU with native bf16 the default precision is bf16 (transformers needs use_cpu for that).
    assert f"precision used: {'bf16' if _cpu_has_bf16() else 'fp32'}" in (out / "rnr_train_config.yaml").read_text()
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert Path(adapter["base_model_name_or_path"]).is_dir()  # the converted folder, found from anywhere
    llm = make_llm(f"hf:{out}")
    reply = llm.run(llm.chat([{"role": "user", "content": "Capital of France?"}], max_tokens=4, temperature=0.0))
    assert reply.usage.completion_tokens > 0


@pytest.mark.parametrize("offline", [True, False])
def test_rnr_train_with_an_uncached_hub_id_offline_fails_with_one_clear_line(tmp_path: Path, offline: bool) -> None:
    """No retries for a minute: HF_HUB_OFFLINE fails at once, an unreachable hub after one short probe."""
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"messages": RECORDS[0]}) + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    else:
        with socket.socket() as probe:  # a port nothing listens on stands for an unreachable hub
            probe.bind(("127.0.0.1", 0))
            env["HF_ENDPOINT"] = f"http://127.0.0.1:{probe.getsockname()[1]}"
    done = subprocess.run([sys.executable, "-m", "rolenrules", "train", "--model", "Qwen/Qwen2.5-0.5B-Instruct",
                           "--data", str(data), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Qwen/Qwen2.5-0.5B-Instruct: not in the Hugging Face cache" in lines[0]
    assert ("HF_HUB_OFFLINE is set" if offline else "cannot be reached") in lines[0]
    assert not (tmp_path / "out").exists()
