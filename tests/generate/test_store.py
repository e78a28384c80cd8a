"""The run store (typed outcomes in and out, identity, usage per session) and the seed plan."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from rolenrules.errors import ConfigError
from rolenrules.generate.config import GenerateConfig
from rolenrules.generate.outcomes import Failure, PromptDropped, Rejection, StageFailure, Status, dropped
from rolenrules.generate.pipeline import make_plans
from rolenrules.generate.store import RunStore
from rolenrules.records import Example, Message, Rule, SystemPrompt, Usage


def _seeds(n: int) -> list[Example]:
    return [Example(id=f"s{i}", messages=[Message(role="user", content=f"question {i}")]) for i in range(n)]


def _config(**values: object) -> GenerateConfig:
    return GenerateConfig(input="seeds.jsonl", out="out.jsonl", **values)


@pytest.mark.parametrize(("n_seeds", "k", "num_prompts", "groups"), [
    (10, 5, None, [5, 5]),          # every seed once, in groups of K
    (11, 5, None, [5, 5, 1]),       # the last group takes what is left
    (4, 2, 5, [2, 2, 2, 2, 2]),     # more prompts than the seeds fill once: seeds are drawn again
    (3, 3, 4, [3, 3, 3, 3]),        # K equal to the dataset: every group holds every seed
])
def test_make_plans_groups(n_seeds: int, k: int, num_prompts: int | None, groups: list[int]) -> None:
    seeds = _seeds(n_seeds)
    config = _config(k=k, num_prompts=num_prompts, seed=3)
    plans = make_plans(config, seeds)
    assert [len(p.seeds) for p in plans] == groups
    assert [p.idx for p in plans] == list(range(len(groups)))
    for plan in plans:
        assert len({s.id for s in plan.seeds}) == len(plan.seeds)  # never twice in one group
    used = Counter(s.id for p in plans for s in p.seeds)
    if num_prompts is None:
        assert set(used.values()) == {1} and len(used) == n_seeds
    else:
        assert max(used.values()) - min(used.values()) <= 1  # drawn from successive shuffles: even use
    assert make_plans(config, seeds) == plans  # seeded
    assert make_plans(_config(k=k, num_prompts=num_prompts, seed=4), seeds) != plans


def test_make_plans_refuses_k_larger_than_the_dataset() -> None:
    with pytest.raises(ConfigError, match="larger than the dataset"):
        make_plans(_config(k=6), _seeds(5))


def _kept(i: int) -> Example:
    sp = SystemPrompt(role="You are Nova.", rules=[Rule(text="Be brief.", category="length")])
    return Example(id=f"c{i}", messages=[Message(role="user", content="q"), Message(role="assistant", content="a")]
                   ).with_system(sp)


def test_store_round_trips_typed_outcomes_in_a_stable_order(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run.sqlite")
    sp = SystemPrompt(role="You are Nova.", rules=[Rule(text="Be brief.", category="length")])
    store.put_prompt(0, sp)
    store.put_prompt(1, PromptDropped(status="failed", stage="system_prompt", reason="server down"))
    common = {"seed_id": "s", "prompt_index": 1, "user_turns": ["q"]}
    retry = dropped(StageFailure("verify", "judge failed", retryable=True), id="c2", **common)
    final = dropped(StageFailure("response", "still broke 1 rule", last_reply="bad, reply", turn=0), id="c1",
                    system_prompt=sp.render(), **common)
    assert isinstance(retry, Failure) and isinstance(final, Rejection)
    store.put_conversation(1, 1, retry)
    store.put_conversation(1, 0, final)
    store.put_conversation(0, 0, _kept(0))
    store.close()

    store = RunStore(tmp_path / "run.sqlite")  # read back by a new process
    assert store.prompts() == {0: sp, 1: PromptDropped(status="failed", stage="system_prompt", reason="server down")}
    assert store.kept() == [_kept(0)]
    assert store.dropped() == [final, retry]  # prompt index, then position
    assert store.dropped()[0].last_reply == "bad, reply" and store.dropped()[0].details == {"turn": 0}
    assert store.finished_ids() == {"c0", "c1"}  # the failed one is retried
    assert [o.id for o in store.conversations(Status.FAILED)] == ["c2"]


def test_store_identity_resumes_rebinds_or_refuses(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run.sqlite")
    identity = {"num_prompts": 1, "k": 5, "input_content": "abc"}
    assert store.claim(identity) is False
    assert store.claim(identity) is True
    # nothing done yet: another identity (an option error found late, then corrected) rebinds the folder
    assert store.claim({**identity, "k": 4}) is False
    store.put_conversation(0, 0, _kept(0))
    with pytest.raises(ConfigError, match=r"k: 4 -> 3; num_prompts: 1 -> 2"):
        store.claim({**identity, "k": 3, "num_prompts": 2})
    with pytest.raises(ConfigError, match="the input's content changed"):
        store.claim({**identity, "k": 4, "input_content": "xyz"})


def test_store_sums_usage_over_sessions(tmp_path: Path) -> None:
    first = RunStore(tmp_path / "run.sqlite")
    first.record_usage(Usage(requests=2, prompt_tokens=10), Usage(requests=1, completion_tokens=3))
    first.record_usage(Usage(requests=5, prompt_tokens=50), Usage(requests=2, completion_tokens=6))  # replaces
    first.close()
    second = RunStore(tmp_path / "run.sqlite")
    second.record_usage(Usage(requests=1, prompt_tokens=4), Usage())
    teacher, judge = second.usage()
    assert teacher == Usage(requests=6, prompt_tokens=54) and judge == Usage(requests=2, completion_tokens=6)
    assert not second.complete
    second.set_complete(True)
    assert second.complete


def test_work_exists_only_once_committed(tmp_path: Path) -> None:
    """Writes are batched: until `commit()`, another process sees none of them (a `kill -9` takes them
    back, and the next run redoes that work); after it, all of them."""
    store = RunStore(tmp_path / "run.sqlite")
    store.put_prompt(0, SystemPrompt(role="You are Nova.", rules=[Rule(text="Be brief.", category="length")]))
    store.put_conversation(0, 0, _kept(0))
    store.put_conversation(0, 1, _kept(1))
    other = RunStore(tmp_path / "run.sqlite")
    assert other.prompts() == {} and other.finished_ids() == set()
    store.commit()
    assert len(other.prompts()) == 1 and other.finished_ids() == {"c0", "c1"}
    store.put_conversation(0, 2, _kept(2))
    store.rollback()  # what a killed process leaves: the open transaction is gone
    assert store.finished_ids() == other.finished_ids() == {"c0", "c1"}
    other.close()
    store.close()
