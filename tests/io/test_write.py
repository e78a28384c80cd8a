from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rolenrules.io import read_examples, write_examples
from rolenrules.records import Example, Message, Rule, SystemPrompt, Verdict


def _rich_example(i: int) -> Example:
    sp = SystemPrompt(role=f"You are Ava {i}, a billing assistant.", rules=[
        Rule(text="Reply in under 120 words.", kind="verifiable", type="length:max_words", params={"max": 120},
             category="length"),
        Rule(text="Never give legal advice.", category="safety"),
    ])
    example = Example(id=f"ex-{i}", messages=[Message(role="user", content="Why was I charged twice?"),
                                              Message(role="assistant", content="Let me check.")])
    example = example.with_system(sp)
    return example.model_copy(update={
        "verdicts": [Verdict(rule_id=sp.rules[0].id, passed=True, source="verifier"),
                     Verdict(rule_id=sp.rules[1].id, passed=None, source="unscored", reason="judge failed")],
        "metadata": {"teacher": "openai:x", "attempts": 2, "usage": {"prompt_tokens": 10, "nested": [1, "a"]}},
    })


def test_example_json_round_trip_is_lossless() -> None:
    example = _rich_example(0)
    assert Example.model_validate_json(example.model_dump_json()) == example
    assert example.messages[0].content == example.system_prompt.render()


@pytest.mark.parametrize("name", ["out.jsonl", "out.parquet", "out_dataset"])
def test_rich_records_round_trip_through_every_output(tmp_path: Path, name: str) -> None:
    examples = [_rich_example(i) for i in range(3)]
    write_examples(examples, tmp_path / name)
    back = list(read_examples(tmp_path / name))
    for original, copy in zip(examples, back, strict=True):
        copy.metadata.pop("source", None) if "source" not in original.metadata else None
        assert copy.model_dump(exclude={"metadata"}) == original.model_dump(exclude={"metadata"})
        assert {k: v for k, v in copy.metadata.items() if k != "source"} == original.metadata


def test_failed_write_leaves_no_output(tmp_path: Path) -> None:
    def rows():  # noqa: ANN202
        yield _rich_example(0)
        raise RuntimeError("boom in the middle")

    for name in ("out.jsonl", "out.parquet"):
        with pytest.raises(RuntimeError):
            write_examples(rows(), tmp_path / name)
        assert not (tmp_path / name).exists()
    assert list(tmp_path.iterdir()) == []


def test_existing_output_survives_a_failed_rewrite(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    write_examples([_rich_example(0)], target)
    before = target.read_bytes()

    def rows():  # noqa: ANN202
        yield _rich_example(1)
        raise RuntimeError("fail")

    with pytest.raises(RuntimeError):
        write_examples(rows(), target)
    assert target.read_bytes() == before


def test_json_output_is_refused(tmp_path: Path) -> None:
    from rolenrules.errors import DataError

    with pytest.raises(DataError, match=r"\.jsonl"):
        write_examples([_rich_example(0)], tmp_path / "out.json")


def test_streaming_memory_does_not_grow_with_file_size(tmp_path: Path) -> None:
    """Peak RSS converting a 20 MB vs a 200 MB JSONL file stays within a small margin (streamed, not loaded)."""
    row = json.dumps({"instruction": "Explain the difference between a list and a tuple. " * 20, "output": "x " * 1500})
    small, big = tmp_path / "small.jsonl", tmp_path / "big.jsonl"
    small.write_text((row + "\n") * 5_000)
    big.write_text((row + "\n") * 50_000)
    script = ("import sys, resource; from rolenrules.io import read_examples, write_examples;"
              "n = write_examples(read_examples(sys.argv[1]), sys.argv[2]);"
              "print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    peaks = []
    for src in (small, big):
        out = subprocess.run([sys.executable, "-c", script, str(src), str(tmp_path / (src.stem + ".parquet"))],
                             capture_output=True, text=True, check=True).stdout.split()
        peaks.append(int(out[1]))
    assert big.stat().st_size > 10 * small.stat().st_size * 0.99
    # Loading the big file would add hundreds of MB; streaming keeps the difference small.
    assert peaks[1] - peaks[0] < 60_000, peaks  # KiB
