from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rolenrules.cli import main
from rolenrules.testing.fake_openai import Faults


def _rnr(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rolenrules", *args], capture_output=True, text=True, timeout=timeout)


def test_help_and_version() -> None:
    result = _rnr("--help")
    assert result.returncode == 0, result.stderr
    for command in ("chat", "generate", "train", "eval", "report", "run"):
        assert f"\n  {command} " in result.stdout, command
    # The model specs come from the backend registry.
    assert all(form in result.stdout for form in ("openai:NAME", "hf:ID_OR_PATH", "local:smollm2", "vllm:NAME"))
    assert _rnr("--version").stdout.strip().startswith("rnr ")


def test_convert_self_instruct_seed_tasks(seed_tasks: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    result = _rnr("data", "convert", str(seed_tasks), str(out))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 175
    assert all(r["messages"][0]["role"] == "user" for r in rows)
    assert "wrote 175 records (self-instruct format)" in result.stderr


def test_convert_broken_line_3_fails_and_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"instruction": "a"}\n{"instruction": "b"}\n{"instruction": "c"\n{"instruction": "d"}\n')
    out = tmp_path / "out.jsonl"
    result = _rnr("data", "convert", str(src), str(out))
    assert result.returncode == 2
    assert f"{src}:3" in result.stderr and "malformed JSON" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]
    skipped = _rnr("data", "convert", str(src), str(out), "--skip-invalid")
    assert skipped.returncode == 0 and "skipped 1 invalid" in skipped.stderr
    assert len(out.read_text().splitlines()) == 3


def test_convert_to_parquet_and_folder(tmp_path: Path) -> None:
    src = tmp_path / "in.json"
    src.write_text(json.dumps([{"instruction": f"q{i}", "output": "a"} for i in range(4)]))
    for target in ("o.parquet", "o_ds"):
        main_args = ["data", "convert", str(src), str(tmp_path / target)]
        with pytest.raises(SystemExit) as info:
            main(main_args)
        assert info.value.code in (0, None)
    import datasets

    assert len(datasets.load_from_disk(str(tmp_path / "o_ds"))) == 4


def test_chat_prints_the_servers_reply(fake_server) -> None:  # noqa: ANN001
    server = fake_server(reply=lambda body: f"echo: {body['messages'][-1]['content']} / {body['messages'][0]['content']}")
    result = _rnr("chat", "--model", "openai:any", "--base-url", server.base_url, "--system", "Be brief.", "hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "echo: hi / Be brief."


def test_chat_survives_a_flaky_server(fake_server) -> None:  # noqa: ANN001
    server = fake_server(reply=lambda body: "still here", faults=Faults(rate=0.5, weights={"429": 1, "500": 1},
                                                                         retry_after=0.01, seed=11))
    for i in range(5):
        result = _rnr("chat", "--model", "openai:any", "--base-url", server.base_url, "--max-retries", "8", f"q{i}")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "still here"
    assert server.requests > 5


def test_chat_against_a_closed_port_fails_fast() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.monotonic()
    result = _rnr("chat", "--model", "openai:any", "--base-url", f"http://127.0.0.1:{port}/v1", "hi")
    assert time.monotonic() - start < 15
    assert result.returncode == 4  # ExitCode.SERVER
    assert "unreachable" in result.stderr and "Traceback" not in result.stderr


def test_bad_model_spec_is_a_clear_error() -> None:
    result = _rnr("chat", "--model", "gpt4", "hi")
    assert result.returncode == 2 and "bad model spec" in result.stderr


@pytest.mark.slow
def test_chat_without_a_model_says_which_flag_names_one() -> None:
    result = _rnr("chat", "--max-tokens", "4", "--temperature", "0", "Say hi.")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()  # the embedded model answered
    assert "embedded SmolLM2-135M" in result.stderr
    assert "pass --model openai:MODEL" in result.stderr and "set RNR_MODEL" in result.stderr
    assert "--teacher" not in result.stderr
