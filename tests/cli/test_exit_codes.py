"""Every command exits with `errors.ExitCode`: 0 complete, 1 error outside rnr's checks, 2 bad
usage or input, 3 finished but incomplete (re-run to retry), 4 a model server unusable, 130
interrupted — each with one line, never a traceback."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rolenrules.cli import main
from rolenrules.errors import ExitCode
from rolenrules.testing.fake_openai import Faults
from rolenrules.testing.scripted import teacher_reply

SEEDS = Path(__file__).resolve().parents[1] / "data" / "self_instruct_seed_tasks.jsonl"


def rnr(*args: str) -> int:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return int(info.value.code or 0)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _generate(base_url: str, out: Path, *extra: str) -> tuple[str, ...]:
    return ("generate", "--input", str(SEEDS), "--teacher", "openai:any", "--base-url", base_url, "--out", str(out),
            "--num-prompts", "2", "--k", "2", "--verifiable-rules", "0", "--quiet", *extra)


def test_the_codes_are_distinct_and_documented() -> None:
    codes = {c.name: int(c) for c in ExitCode}
    assert codes == {"COMPLETE": 0, "ERROR": 1, "USAGE": 2, "INCOMPLETE": 3, "SERVER": 4, "INTERRUPTED": 130}
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Exit codes and outcomes"):]
    for code in codes.values():
        assert f"| {code} |" in section
    for word in ("complete", "rejected", "failed (retryable)", "unscored"):
        assert f"**{word}**" in section


def test_dead_server_fails_in_seconds_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    start = time.monotonic()
    assert rnr(*_generate(f"http://127.0.0.1:{closed_port()}/v1", tmp_path / "out.jsonl")) == ExitCode.SERVER
    assert time.monotonic() - start < 15
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "the teacher (openai:any) failed its check request" in err
    assert "unreachable" in err and not (tmp_path / "out.jsonl").exists()


def test_every_request_failing_is_never_success(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    server = fake_server(reply=teacher_reply(), faults=Faults(rate=1.0, weights={"500": 1}))
    assert rnr(*_generate(server.base_url, tmp_path / "out.jsonl", "--max-retries", "0")) == ExitCode.SERVER


def test_missing_api_key_for_openai_is_found_without_a_request(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    code = rnr("generate", "--input", str(SEEDS), "--teacher", "openai:gpt-4o-mini", "--out",
               str(tmp_path / "out.jsonl"), "--quiet")
    assert code == ExitCode.USAGE
    assert "no API key" in capsys.readouterr().err
    assert rnr("chat", "--model", "openai:gpt-4o-mini", "hello") == ExitCode.USAGE


def test_usage_errors_and_bad_urls_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert rnr("generate", "--no-such-option") == ExitCode.USAGE
    assert rnr("chat", "--model", "openai:m", "--base-url", "not-a-url", "hello") == ExitCode.USAGE
    assert "'not-a-url': neither an http(s) URL nor a file of URLs" in capsys.readouterr().err
    assert rnr("--version") == ExitCode.COMPLETE


def test_sqlite_disk_full_is_one_line(fake_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    """SQLite's 'database or disk is full' while committing work (injected): exit 1, one line."""
    from rolenrules.generate.store import RunStore

    def full(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(RunStore, "put_conversation", full)
    server = fake_server(reply=teacher_reply())
    assert rnr(*_generate(server.base_url, tmp_path / "out.jsonl")) == ExitCode.ERROR
    err = capsys.readouterr().err
    assert "SQLite: database or disk is full" in err and "Traceback" not in err


def test_ctrl_c_prints_how_to_resume_and_exits_130(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    server = fake_server(reply=teacher_reply(), latency=0.2)
    proc = subprocess.Popen([sys.executable, "-m", "rolenrules",
                             *_generate(server.base_url, tmp_path / "out.jsonl", "--concurrency", "1")],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while server.requests < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED
    assert "interrupted — run the same command to resume" in err and "Traceback" not in err
    # ... and it does resume
    assert rnr(*_generate(server.base_url, tmp_path / "out.jsonl")) == ExitCode.COMPLETE
