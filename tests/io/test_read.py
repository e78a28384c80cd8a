from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rolenrules.errors import DataError
from rolenrules.io import ReadStats, read_examples, write_examples

FORMAT_ROWS = [
    ("alpaca", {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
     [("user", "Add the numbers.\n\n2 and 3"), ("assistant", "5")]),
    ("alpaca", {"instruction": "Say hi.", "input": "", "output": ""}, [("user", "Say hi.")]),
    ("sharegpt", {"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"},
                                    {"from": "gpt", "value": "Hello"}]},
     [("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello")]),
    ("sharegpt", {"conversations": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]},
     [("user", "Q"), ("assistant", "A")]),
    ("messages", {"messages": [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"},
                               {"role": "user", "content": "Q2"}]},
     [("user", "Q1"), ("assistant", "A1"), ("user", "Q2")]),
    ("ultrachat", {"id": "7", "data": ["Q1", "A1", "Q2", "A2"]},
     [("user", "Q1"), ("assistant", "A1"), ("user", "Q2"), ("assistant", "A2")]),
    ("self-instruct", {"name": "t", "instruction": "Sort these.", "instances": [{"input": "b a", "output": "a b"}]},
     [("user", "Sort these.\n\nb a"), ("assistant", "a b")]),
    ("prompt", {"key": 1, "prompt": "Write a poem.", "response": "Roses."}, [("user", "Write a poem."), ("assistant", "Roses.")]),
]


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(("fmt", "row", "expected"), FORMAT_ROWS)
def test_each_format_is_detected_and_normalised(tmp_path: Path, fmt: str, row: dict, expected: list) -> None:
    stats = ReadStats()
    (example,) = list(read_examples(_write(tmp_path / "in.jsonl", [row]), stats=stats))
    assert stats.format == fmt
    assert [(m.role, m.content) for m in example.messages] == expected
    assert example.metadata["source"] == {"path": str(tmp_path / "in.jsonl"), "line": 1}


@pytest.mark.parametrize(("fmt", "row", "expected"), FORMAT_ROWS[:3])
def test_explicit_format_overrides_detection(tmp_path: Path, fmt: str, row: dict, expected: list) -> None:
    (example,) = list(read_examples(_write(tmp_path / "in.jsonl", [row]), format=fmt))
    assert [(m.role, m.content) for m in example.messages] == expected


def test_ids_are_stable_and_taken_from_the_row(tmp_path: Path) -> None:
    rows = [{"instruction": "A"}, {"instruction": "B", "id": "b-1"}]
    first = [e.id for e in read_examples(_write(tmp_path / "a.jsonl", rows))]
    second = [e.id for e in read_examples(_write(tmp_path / "b.jsonl", rows))]
    assert first == second
    assert first[1] == "b-1" and first[0] != first[1]


def test_json_array_and_wrapped_object(tmp_path: Path) -> None:
    rows = [{"instruction": f"task {i}", "output": "x"} for i in range(3)]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    (tmp_path / "b.json").write_text(json.dumps({"data": rows}))
    for name in ("a.json", "b.json"):
        examples = list(read_examples(tmp_path / name))
        assert [e.messages[0].content for e in examples] == ["task 0", "task 1", "task 2"]
        assert examples[2].metadata["source"]["row"] == 3


def test_self_instruct_seed_tasks(seed_tasks: Path) -> None:
    examples = list(read_examples(seed_tasks))
    assert len(examples) == 175
    assert all(e.messages[0].role == "user" and e.messages[0].content for e in examples)
    assert len({e.id for e in examples}) == 175


def test_alpaca_json_array_file(tmp_path: Path) -> None:
    # Alpaca's own file layout (a JSON array, `input` often empty); its data is CC BY-NC, so not in the repository.
    rows = [{"instruction": f"Give three tips for {topic}.", "input": extra, "output": "1. 2. 3."}
            for topic, extra in (("sleep", ""), ("a trip", "to Kyoto in May"), ("study", ""))]
    (tmp_path / "alpaca_data.json").write_text(json.dumps(rows, indent=4))
    stats = ReadStats()
    examples = list(read_examples(tmp_path / "alpaca_data.json", stats=stats))
    assert stats.format == "alpaca" and len(examples) == 3
    assert examples[1].messages[0].content == "Give three tips for a trip.\n\nto Kyoto in May"
    assert [m.role for m in examples[0].messages] == ["user", "assistant"]


BAD_INPUTS = [
    # (file content, expected fragments of the error)
    ('{"instruction": "a"}\n{"instruction": "b"}\n{"instruction": "c", \n', ["bad.jsonl:3", "malformed JSON"]),
    ('{"instruction": "a"}\n{"input": "no instruction"}\n', ["bad.jsonl:2", "field 'instruction'", "missing"]),
    ('{"instruction": 5}\n', ["bad.jsonl:1", "field 'instruction'", "expected a string"]),
    ('{"instruction": "   "}\n', ["bad.jsonl:1", "field 'instruction'", "empty"]),
    ('{"messages": [{"role": "robot", "content": "x"}]}\n', ["bad.jsonl:1", "messages[0].role", "unknown role"]),
    ('{"messages": [{"role": "user", "content": 3}]}\n', ["bad.jsonl:1", "messages[0].content"]),
    ('{"conversations": []}\n', ["bad.jsonl:1", "conversations"]),
    ('{"data": ["q", 7]}\n', ["bad.jsonl:1", "data[1]"]),
    ('[1, 2]\n', ["bad.jsonl:1", "expected a JSON object"]),
    ('{"foo": 1}\n', ["bad.jsonl:1", "cannot tell the format"]),
    ("", ["bad.jsonl", "empty"]),
    ("\n\n", ["bad.jsonl", "empty"]),
]


@pytest.mark.parametrize(("content", "fragments"), BAD_INPUTS)
def test_bad_input_names_file_line_and_field(tmp_path: Path, content: str, fragments: list[str]) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as info:
        list(read_examples(path))
    for fragment in fragments:
        assert fragment in str(info.value)


def test_non_utf8_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"instruction": "ok"}\n{"instruction": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: not valid UTF-8"):
        list(read_examples(path))


def test_json_array_errors(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text('[\n{"instruction": "a"},\n{"instruction": }\n]')
    with pytest.raises(DataError, match=r"broken\.json:3: malformed JSON"):
        list(read_examples(tmp_path / "broken.json"))
    (tmp_path / "missing.json").write_text(json.dumps([{"instruction": "a"}, {"output": "b"}]))
    with pytest.raises(DataError, match=r"missing\.json: row 2: field 'instruction'"):
        list(read_examples(tmp_path / "missing.json"))
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(DataError, match="empty"):
        list(read_examples(tmp_path / "empty.json"))


def test_skip_invalid_skips_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b'{"instruction": "a"}\n{"instruction": \n{"input": "x"}\n\xff\xfe\n{"instruction": "b"}\n')
    stats = ReadStats()
    examples = list(read_examples(path, skip_invalid=True, stats=stats))
    assert [e.messages[0].content for e in examples] == ["a", "b"]
    assert stats.skipped == 3 and stats.read == 2
    assert any(":2:" in r for r in stats.reasons) and any(":4:" in r for r in stats.reasons)


def test_missing_file_and_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        list(read_examples(tmp_path / "nope.jsonl"))
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unknown file type"):
        list(read_examples(tmp_path / "x.csv"))
    with pytest.raises(DataError, match="unknown format"):
        list(read_examples(tmp_path / "x.csv", format="csv"))


def test_hub_ids_fail_fast_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="hub is disabled"):
        list(read_examples("hf://tatsu-lab/alpaca"))


def test_unreachable_hub_fails_in_seconds(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on: the hub is unreachable
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{port}"
    # `datasets` alone retries for about 30 s before giving up; the timeout fails the test then.
    done = subprocess.run([sys.executable, "-m", "rolenrules", "data", "convert", "hf://owner/dataset:train",
                           str(tmp_path / "out.jsonl")], env=env, capture_output=True, text=True, timeout=20)
    assert done.returncode == 2
    assert "hf://owner/dataset:train: cannot load from the hub" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("name", ["out.parquet", "out_folder"])
def test_columnar_outputs_read_back(tmp_path: Path, name: str) -> None:
    rows = [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(5)]
    examples = list(read_examples(_write(tmp_path / "in.jsonl", rows)))
    assert write_examples(examples, tmp_path / name) == 5
    back = list(read_examples(tmp_path / name))
    assert [e.messages for e in back] == [e.messages for e in examples]
    assert [e.id for e in back] == [e.id for e in examples]


def test_parquet_from_foreign_writer(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"instruction": "x", "input": "", "output": "y"}] * 3), tmp_path / "a.parquet")
    assert len(list(read_examples(tmp_path / "a.parquet"))) == 3
