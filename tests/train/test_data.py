from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from _train_builders import AVA, BOB, make_examples

from rolenrules.errors import DataError
from rolenrules.io import write_examples
from rolenrules.records import Example, Message
from rolenrules.train.config import DataSource
from rolenrules.heldout import read_exclusions
from rolenrules.train.data import mix_examples, to_dataset


def _plain(n: int, tag: str) -> list[Example]:
    return [Example(id=f"{tag}{i}", messages=[Message(role="user", content=f"{tag} q{i}"),
                                              Message(role="assistant", content=f"{tag} a{i}")])
            for i in range(n)]


@pytest.mark.parametrize(("weight", "rows"), [(1.0, 10), (0.5, 5), (2.0, 20), (1.5, 15), (0.25, 2)])
def test_weight_is_a_sampling_proportion(tmp_path: Path, weight: float, rows: int) -> None:
    write_examples(_plain(10, "a"), tmp_path / "a.jsonl")
    write_examples(_plain(4, "b"), tmp_path / "b.jsonl")
    sources = [DataSource(path=str(tmp_path / "a.jsonl"), weight=weight), DataSource(path=str(tmp_path / "b.jsonl"))]
    mixed, summary = mix_examples(sources, seed=1)
    counts = Counter(e.id[0] for e in mixed)
    assert counts == {"a": rows, "b": 4}
    assert [s.used for s in summary.sources] == [rows, 4] and summary.total == rows + 4
    if weight >= 1:  # whole copies: every row appears floor(weight) or more times
        assert min(Counter(e.id for e in mixed if e.id[0] == "a").values()) >= int(weight)
    again, _ = mix_examples(sources, seed=1)
    assert [e.id for e in again] == [e.id for e in mixed]  # same seed, same mix


@pytest.mark.parametrize("lines", [
    ["{ava}"],
    ["# held-out prompts", "", "{ava}"],
    ['{{"system_prompt_id": "{ava}"}}'],
    ['{{"id": "{ava}", "messages": []}}'],
    ['{{"id": "bench-1", "system_prompt": {{"id": "{ava}"}}}}'],
])
def test_exclude_drops_held_out_system_prompts(tmp_path: Path, rnr_data: Path, lines: list[str]) -> None:
    held = tmp_path / "held_out.txt"
    held.write_text("\n".join(line.format(ava=AVA.id) for line in lines) + "\n", encoding="utf-8")
    ids = read_exclusions(held)
    assert ids == {AVA.id}
    mixed, summary = mix_examples([DataSource(path=str(rnr_data))], exclude=ids)
    assert summary.excluded == 2 and summary.total == 3
    assert all(e.system_prompt is None or e.system_prompt.id == BOB.id for e in mixed)


def test_exclude_matches_the_metadata_prompt_id(tmp_path: Path) -> None:
    examples = _plain(3, "m")
    examples[1].metadata["system_prompt_id"] = "sp-bench-7"
    write_examples(examples, tmp_path / "m.jsonl")
    mixed, summary = mix_examples([DataSource(path=str(tmp_path / "m.jsonl"))], exclude={"sp-bench-7"})
    assert sorted(e.id for e in mixed) == ["m0", "m2"] and summary.excluded == 1


def test_exclude_file_from_bench_build_drops_messages_only_examples(tmp_path: Path) -> None:
    from rolenrules.evaluate.bench import build_bench
    from rolenrules.heldout import exclude_path

    examples = make_examples()
    bench = tmp_path / "bench.jsonl"
    build_bench(examples, bench, size=1, seed=0)
    held = read_exclusions(exclude_path(bench))
    # The same data with only `messages` kept (no structured system prompt): matched by the text hash.
    bare = [e.model_copy(update={"system_prompt": None}) for e in examples]
    write_examples(bare, tmp_path / "bare.jsonl")
    mixed, summary = mix_examples([DataSource(path=str(tmp_path / "bare.jsonl"))], exclude=held)
    assert summary.excluded == 2 and len(mixed) == 3
    kept_systems = {e.system_text for e in mixed}
    assert len(kept_systems - {None}) == 1  # one of AVA/BOB held out, the other kept


def test_bad_exclusion_line_names_file_and_line(tmp_path: Path) -> None:
    held = tmp_path / "held.jsonl"
    held.write_text('{"system_prompt_id": "a"}\n{"broken": \n', encoding="utf-8")
    with pytest.raises(DataError, match=r"held.jsonl:2"):
        read_exclusions(held)
    held.write_text('{"other": 1}\n', encoding="utf-8")
    with pytest.raises(DataError, match="system_prompt_id"):
        read_exclusions(held)


def test_conversations_without_a_reply_are_dropped_and_counted(tmp_path: Path) -> None:
    rows = [{"messages": [{"role": "user", "content": "hello"}]},
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"}]}]
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    mixed, summary = mix_examples([DataSource(path=str(path))])
    assert len(mixed) == 1 and summary.sources[0].dropped == {"no assistant reply": 1} and summary.sources[0].read == 2


def test_dataset_has_the_messages_column_trl_expects() -> None:
    dataset = to_dataset(make_examples())
    assert dataset.column_names == ["messages"]
    assert dataset[0]["messages"][0] == {"role": "system", "content": AVA.render()}
