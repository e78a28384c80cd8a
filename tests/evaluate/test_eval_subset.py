"""`rnr eval --sample N --sample-seed S` (a fixed seeded subset, the same prompts in ifeval and
sys-ifeval) and `--batch-size` (hf: batches, with concurrency to fill them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _eval_builders import run_cli

from rolenrules.errors import ConfigError
from rolenrules.evaluate.config import EvalCommandConfig
from rolenrules.evaluate.subset import seeded_subset
from rolenrules.evaluate.tasks import load_task
from rolenrules.llm.spec import build_llm
from rolenrules.records import Example, Message


def _examples(n: int) -> list[Example]:
    return [Example(id=f"e{i}", messages=[Message(role="user", content=f"q{i}")]) for i in range(n)]


@pytest.mark.parametrize(("n", "size"), [(None, 10), (10, 10), (25, 10), (4, 4), (1, 1)])
def test_a_seeded_subset_has_n_examples_in_file_order(n: int | None, size: int) -> None:
    examples = _examples(10)
    chosen = seeded_subset(examples, n, seed=3)
    assert len(chosen) == size
    assert [e.id for e in chosen] == [e.id for e in examples if e in chosen]  # file order kept
    assert seeded_subset(list(reversed(examples)), n, seed=3) == list(reversed(chosen))  # order-independent


def test_the_subset_depends_on_the_seed_not_on_luck() -> None:
    examples = _examples(200)
    picks = {seed: {e.id for e in seeded_subset(examples, 20, seed)} for seed in range(5)}
    assert picks[0] == {e.id for e in seeded_subset(examples, 20, 0)}
    assert len({frozenset(p) for p in picks.values()}) == 5


def test_ifeval_and_sys_ifeval_get_the_same_prompts() -> None:
    user, system = load_task("ifeval"), load_task("sys-ifeval")
    assert len(user) != len(system)  # the two files differ, so positions would not line up
    a = [e.metadata["ifeval"]["key"] for e in seeded_subset(user, 30, 7)]
    b = [e.metadata["ifeval"]["key"] for e in seeded_subset(system, 30, 7)]
    assert len(a) == 30 and len(set(a) & set(b)) >= 29  # a key missing from one file is the only difference


def test_eval_with_sample_scores_the_subset_and_says_so(tmp_path: Path, fake_server: Any) -> None:
    server = fake_server(reply=lambda body: "hello")
    out = tmp_path / "run"
    args = ["eval", "--task", "ifeval", "--task", "sys-ifeval", "--model", "openai:m", "--base-url", server.base_url,
            "--no-role-adherence", "--sample", "6", "--sample-seed", "2", "--out", str(out), "--max-tokens", "8"]
    assert run_cli(*args) == 0
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    by_task: dict[str, set[Any]] = {}
    for r in results:
        by_task.setdefault(r["task"], set()).add(r["metadata"]["ifeval"]["key"])
    assert len(results) == 12 and by_task["ifeval"] == by_task["sys-ifeval"]
    run = json.loads((out / "run.json").read_text())
    assert run["bench"] == "ifeval+sys-ifeval (seeded subset: --sample 6 --sample-seed 2)" and run["n_bench"] == 12


def test_batch_size_fills_with_concurrency_and_is_only_for_hf_models(tiny_model_dir: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert EvalCommandConfig(out=tmp_path, batch_size=32).concurrency == 32  # raised so batches can fill
    assert EvalCommandConfig(out=tmp_path, batch_size=4, concurrency=16).concurrency == 16
    assert run_cli("eval", "--task", "ifeval", "--model", f"hf:{tiny_model_dir}", "--batch-size", "8",
                   "--concurrency", "2", "--out", str(tmp_path / "a")) == 2
    assert "--concurrency 2 is below --batch-size 8" in capsys.readouterr().err
    assert run_cli("eval", "--task", "ifeval", "--model", "openai:m", "--base-url", "http://127.0.0.1:9/v1",
                   "--batch-size", "8", "--out", str(tmp_path / "b")) == 2
    assert "--batch-size sets the batch of an hf: model; openai:m is not one" in capsys.readouterr().err
    assert build_llm(f"hf:{tiny_model_dir}", batch_size=4).backend.batch_size == 4
    assert build_llm(f"hf:{tiny_model_dir}").backend.batch_size == 8
    with pytest.raises(ConfigError):
        build_llm("local:smollm2", batch_size=4)
