"""The preference-pairs format: row checks with file/line/field errors, held-out exclusion, weights."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from _train_builders import AVA, CLARA, make_pairs

from rolenrules.errors import DataError
from rolenrules.heldout import system_text_id
from rolenrules.io import write_jsonl
from rolenrules.train.config import DataSource
from rolenrules.train.pairs import PreferencePair, mix_pairs, read_pairs


def _with(row: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `row` with the value at dotted `path` replaced (or removed when value is ...)."""
    row = copy.deepcopy(row)
    *parents, last = path.split(".")
    target: Any = row
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    if value is ...:
        del target[last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return row


GOOD = make_pairs()[0]
USER = {"role": "user", "content": "Hi"}
ASSISTANT = {"role": "assistant", "content": "Hello."}


@pytest.mark.parametrize(("row", "field", "needle"), [
    (_with(GOOD, "prompt", ...), "prompt", "required"),
    (_with(GOOD, "prompt", []), "prompt", "at least 1 item"),
    (_with(GOOD, "prompt", [GOOD["prompt"][0]]), "prompt", "must end with the user turn"),
    (_with(GOOD, "prompt", [USER, GOOD["prompt"][0], USER]), "prompt", "system message may only come first"),
    (_with(GOOD, "prompt.1.role", "human"), "prompt.1.role", "'system', 'user' or 'assistant'"),
    (_with(GOOD, "prompt.1.content", None), "prompt.1.content", "valid string"),
    (_with(GOOD, "chosen", "Paris."), "chosen", "valid list"),
    (_with(GOOD, "chosen", []), "chosen", "at least 1 item"),
    (_with(GOOD, "rejected", [USER]), "rejected", "assistant messages only"),
    (_with(GOOD, "rejected", GOOD["chosen"]), "rejected", "chosen and rejected are the same reply"),
    (_with(GOOD, "score", 3), "score", "unknown field (put anything else under `metadata`)"),
    (_with(GOOD, "metadata", "x"), "metadata", "valid dictionary"),
])
def test_a_bad_row_is_one_error_naming_file_line_and_field(tmp_path: Path, row: dict, field: str,
                                                           needle: str) -> None:
    path = tmp_path / "pairs.jsonl"
    write_jsonl([GOOD, GOOD, row], path)
    with pytest.raises(DataError) as caught:
        list(read_pairs(str(path)))
    message = str(caught.value)
    assert message.startswith(f"{path}:3: field '{field}': ") and needle in message, message
    assert "\n" not in message


def test_a_row_that_is_not_an_object_or_not_json_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(GOOD) + "\n[1, 2]\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"pairs.jsonl:2: expected an object"):
        list(read_pairs(str(path)))
    path.write_text(json.dumps(GOOD) + "\n{broken\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"pairs.jsonl:2: malformed JSON"):
        list(read_pairs(str(path)))


def test_multi_turn_prompts_and_pairs_without_system_or_metadata_are_valid(tmp_path: Path) -> None:
    rows = [{"prompt": [USER, ASSISTANT, USER], "chosen": [ASSISTANT], "rejected": [{"role": "assistant",
                                                                                   "content": "Go away."}]},
            GOOD]
    path = tmp_path / "pairs.json"  # a JSON array reads like JSONL
    path.write_text(json.dumps(rows), encoding="utf-8")
    pairs = list(read_pairs(str(path)))
    assert [len(p.prompt) for p in pairs] == [3, 2] and pairs[0].system_text is None
    assert pairs[0].trl_row() == rows[0]  # exactly TRL's columns, metadata left out
    assert set(pairs[1].trl_row()) == {"prompt", "chosen", "rejected"}


@pytest.mark.parametrize("held", [
    CLARA.id,                                   # metadata.system_prompt_id (what `rnr generate --pairs` writes)
    system_text_id(CLARA.render()),             # the system message's text hash (BENCH.exclude.txt's sys- ids)
])
def test_exclusion_drops_pairs_of_held_out_system_prompts(tmp_path: Path, held: str) -> None:
    path = tmp_path / "pairs.jsonl"
    rows = make_pairs()
    rows[1]["metadata"] = {}  # only the text hash identifies this one
    write_jsonl(rows, path)
    pairs, summary = mix_pairs([DataSource(path=str(path))], exclude={held})
    if held == CLARA.id:  # the pair without metadata is only caught by its text
        assert summary.excluded == 3 and len(pairs) == 2
    else:
        assert summary.excluded == 4 and len(pairs) == 1
        assert pairs[0].system_text == AVA.render()


def test_structured_system_prompt_in_metadata_is_an_exclusion_id() -> None:
    pair = PreferencePair.model_validate({**GOOD, "metadata": {"system_prompt": {"id": "sp-bench-3"}}})
    assert pair.held_out_ids() == {"sp-bench-3", system_text_id(CLARA.render())}


def test_pairs_mix_by_weight(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    write_jsonl(make_pairs(), path)
    pairs, summary = mix_pairs([DataSource(path=str(path), weight=2.0), DataSource(path=str(path), weight=0.4)])
    assert len(pairs) == 12 and [s.used for s in summary.sources] == [10, 2] and summary.sources[0].read == 5
