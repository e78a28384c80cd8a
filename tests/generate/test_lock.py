"""One process per run folder: a second `rnr generate` on the same --out (or `rnr eval` on the same
folder) stops at once, naming the process that holds it; the first finishes with nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rolenrules._lock import FolderLock
from rolenrules.errors import BusyError
from rolenrules.evaluate import EvalConfig, run_eval
from rolenrules.llm import BackendOptions, make_llm
from rolenrules.records import Example, Message, Rule, SystemPrompt
from rolenrules.testing.scripted import teacher_reply

SEEDS = Path(__file__).resolve().parents[1] / "data" / "self_instruct_seed_tasks.jsonl"


def _cli(out: Path, base_url: str) -> list[str]:
    return [sys.executable, "-m", "rolenrules", "generate", "--input", str(SEEDS), "--teacher", "openai:any",
            "--base-url", base_url, "--out", str(out), "--num-prompts", "4", "--k", "3", "--verifiable-rules", "0",
            "--concurrency", "2", "--quiet", "--judged-rules", "on"]


def test_second_generate_on_the_same_out_stops_at_once(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    # Slow replies keep the first run going however long the second takes to start (a loaded machine).
    server = fake_server(reply=teacher_reply(), latency=1.0)
    out = tmp_path / "out.jsonl"
    first = subprocess.Popen(_cli(out, server.base_url), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while server.requests < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    start = time.monotonic()
    second = subprocess.run(_cli(out, server.base_url), capture_output=True, text=True, timeout=60)
    assert second.returncode == 2 and time.monotonic() - start < 10
    assert f"in use by another rnr process (pid {first.pid}" in second.stderr and "Traceback" not in second.stderr
    assert first.poll() is None  # the refusal came while the first was still running
    server.latency = 0.0
    assert first.wait(timeout=120) == 0, first.stderr.read()
    partial = [json.loads(line)["id"] for line in (tmp_path / "out.jsonl.rnr-run" / "partial.jsonl").read_text().splitlines()]
    kept = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert len(partial) == len(set(partial)) == len(kept) > 0


def test_lock_is_released_when_its_holder_is_killed(tmp_path: Path) -> None:
    script = ("import sys, time; from rolenrules._lock import FolderLock\n"
              "with FolderLock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(BusyError, match=f"pid {holder.pid}"):
        FolderLock(tmp_path).__enter__()
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with FolderLock(tmp_path):  # no stale lock after kill -9
        pass


def test_eval_folder_is_locked(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    server = fake_server(reply=teacher_reply())
    sp = SystemPrompt(role="You are Nova.", rules=[Rule(text="No commas.", kind="verifiable", type="punctuation:no_comma")])
    bench = [Example(id="e0", messages=[Message(role="user", content="q")]).with_system(sp)]
    model = make_llm("openai:m", BackendOptions(base_url=server.base_url))
    with FolderLock(tmp_path / "run"), pytest.raises(BusyError, match="evaluation folder is in use"):
        run_eval(bench, tmp_path / "run", model=model, judge=None, config=EvalConfig(resamples=0, role_adherence=False))
    assert server.requests == 0
