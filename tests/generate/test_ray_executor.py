"""Sharded generation on Ray (`--executor ray`): a local Ray instance (2 CPUs) and the local test server.

The sharded run makes the same records, rejects and card as a local run; a driver killed with
`kill -9` and run again finishes with nothing lost or duplicated; a shard whose server failed is
run again on the next invocation while finished shards are not.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from rolenrules.cli import main
from rolenrules.generate.config import GenerateConfig
from rolenrules.generate.executors import shard_spans
from rolenrules.generate.pipeline import load_seeds, make_plans
from rolenrules.testing.scripted import schema_name, teacher_reply

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SEEDS = Path(__file__).resolve().parents[1] / "data" / "self_instruct_seed_tasks.jsonl"
#: Judged and library rules, near-duplicate prompts (threshold 0.3), regenerations: what a merge must get right.
OPTIONS = ["--num-prompts", "12", "--k", "3", "--seed", "0", "--judged-rules", "on", "--dedup-threshold", "0.3",
           "--judge-calibration", "2", "--quiet", "--max-retries", "0", "--timeout", "10"]
SHARDED = ["--executor", "ray", "--shards", "3", "--shard-cpus", "0.5"]


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A local Ray instance for the module (started once: it takes seconds)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def _run(server_url: str, out: Path, *extra: str) -> int:
    with pytest.raises(SystemExit) as info:
        main(["generate", "--input", str(SEEDS), "--teacher", "openai:any", "--base-url", server_url, "--out", str(out),
              *OPTIONS, *extra])
    return 0 if info.value.code is None else int(info.value.code)


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _card(path: Path) -> list[str]:
    """The card without what differs by design: the command, the client timing, the requests spent."""
    lines = path.read_text().replace(path.name.removesuffix(".card.md"), "OUT").splitlines()
    skip = ("Client timing", "rnr generate", "| teacher |", "| judge |")
    return [line for line in lines if not line.startswith(skip) and "rnr generate" not in line]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same command without --executor ray."""
    from rolenrules.testing.fake_openai import FakeOpenAIServer

    out = tmp_path_factory.mktemp("local") / "out.jsonl"
    with FakeOpenAIServer(reply=teacher_reply()) as server:
        assert _run(server.base_url, out) == 0
    return out


def test_sharded_run_makes_the_records_of_a_local_run(ray_cluster: str, local_run: Path, fake_server,  # noqa: ANN001
                                                     tmp_path: Path) -> None:
    server = fake_server(reply=teacher_reply())
    out = tmp_path / "out.jsonl"
    assert _run(server.base_url, out, *SHARDED) == 0
    kept, local = _rows(out), _rows(local_run)
    assert kept and [r["id"] for r in kept] == [r["id"] for r in local]
    assert kept == local  # the same records, in the same order
    rejects = _rows(tmp_path / "out.jsonl.rejects.jsonl")
    assert rejects == _rows(local_run.with_name("out.jsonl.rejects.jsonl"))
    assert any(r["stage"] == "dedup" for r in rejects)  # near-duplicates dropped at the merge, as locally
    assert _card(tmp_path / "out.jsonl.card.md") == _card(local_run.with_name("out.jsonl.card.md"))
    assert sorted(p.name for p in (tmp_path / "out.jsonl.rnr-run" / "shards").iterdir()) == [
        "000-of-003", "001-of-003", "002-of-003"]
    # One card, one rejects file: nothing else written beside the outputs.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "out.jsonl", "out.jsonl.card.md", "out.jsonl.rejects.jsonl", "out.jsonl.rnr-run", "out.jsonl.transcripts.jsonl"]
    before = server.requests
    assert _run(server.base_url, out, *SHARDED) == 0  # finished: nothing is sent again
    assert server.requests == before


def _shard_of_prompt(n_shards: int) -> tuple[dict[int, int], list[Any]]:
    config = GenerateConfig(input=str(SEEDS), out="x.jsonl", num_prompts=12, k=3, seed=0)
    plans = make_plans(config, load_seeds(config))
    return {idx: i for i, (a, b) in enumerate(shard_spans(len(plans), n_shards)) for idx in range(a, b)}, plans


def _sessions(shard: Path) -> int:
    with sqlite3.connect(shard / "run.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]


def test_a_shard_whose_server_failed_is_run_again_and_finished_shards_are_not(
        ray_cluster: str, local_run: Path, fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    shard_of, plans = _shard_of_prompt(3)
    failing = {s.user_turns[0] for p in plans if shard_of[p.idx] == 1 for s in p.seeds}
    state = {"down": True}
    script = teacher_reply()

    def reply(body: dict[str, Any]) -> str:
        answering = schema_name(body) is None and body["messages"][0]["role"] == "system"
        if state["down"] and answering and body["messages"][1]["content"] in failing:
            raise RuntimeError("outage")  # HTTP 500 for the second shard's answers only
        return script(body)

    server = fake_server(reply=reply)
    out = tmp_path / "out.jsonl"
    assert _run(server.base_url, out, *SHARDED) == 3  # incomplete: what failed is retried by the next run
    failed = [r for r in _rows(tmp_path / "out.jsonl.rejects.jsonl") if r["status"] == "failed"]
    assert failed and {shard_of[r["prompt_index"]] for r in failed} == {1}
    assert "Incomplete" in (tmp_path / "out.jsonl.card.md").read_text()
    state["down"] = False
    assert _run(server.base_url, out, *SHARDED) == 0
    assert _rows(out) == _rows(local_run)
    assert _rows(tmp_path / "out.jsonl.rejects.jsonl") == _rows(local_run.with_name("out.jsonl.rejects.jsonl"))
    shards = tmp_path / "out.jsonl.rnr-run" / "shards"
    # The finished shards were not run again; the one that failed was.
    assert [_sessions(shards / name) for name in ("000-of-003", "001-of-003", "002-of-003")] == [1, 2, 1]


def _cli(out: Path, base_url: str, address: str) -> list[str]:
    return [sys.executable, "-m", "rolenrules", "generate", "--input", str(SEEDS), "--teacher", "openai:any",
            "--base-url", base_url, "--out", str(out), *OPTIONS, "--num-prompts", "30", "--concurrency", "2",
            *SHARDED, "--ray-address", address]


def test_kill_9_of_the_driver_then_rerun_loses_and_duplicates_nothing(ray_cluster: str, fake_server,  # noqa: ANN001
                                                                      tmp_path: Path) -> None:
    reference = fake_server(reply=teacher_reply(), latency=0.03)
    subprocess.run(_cli(tmp_path / "ref.jsonl", reference.base_url, ray_cluster), check=True, timeout=300)
    expected = [r["id"] for r in _rows(tmp_path / "ref.jsonl")]

    server = fake_server(reply=teacher_reply(), latency=0.03)
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(_cli(out, server.base_url, ray_cluster), start_new_session=True)
    deadline = time.monotonic() + 180
    while server.requests < reference.requests // 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()  # nothing half-written
    subprocess.run(_cli(out, server.base_url, ray_cluster), check=True, timeout=300)
    got = [r["id"] for r in _rows(out)]
    assert len(got) == len(set(got)) and got == expected
    assert server.requests <= reference.requests * 1.10


def test_without_ray_the_executor_fails_at_once_with_the_install_line(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    server = fake_server(reply=teacher_reply())
    code = ("import sys; sys.modules['ray'] = None  # as if Ray were not installed\n"
            "from rolenrules.cli import main; main(sys.argv[1:])")
    proc = subprocess.run([sys.executable, "-c", code, "generate", "--input", str(SEEDS), "--teacher", "openai:any",
                           "--base-url", server.base_url, "--out", str(tmp_path / "out.jsonl"), *SHARDED],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--executor ray needs Ray, which is not installed: pip install 'rolenrules[ray]'" in proc.stderr
    assert "Traceback" not in proc.stderr and server.requests == 0 and list(tmp_path.iterdir()) == []
