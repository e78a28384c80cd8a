"""`rnr data convert` refuses outputs it cannot write; `datasets`' own progress bars stay out of
quiet runs and of logs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
import pytest

from rolenrules.cli import main
from rolenrules.testing.scripted import teacher_reply

DATASETS_BARS = ("Generating train split", "Saving the dataset", "examples/s")


@pytest.fixture(autouse=True)
def _datasets_bars_on() -> Iterator[None]:
    """Each test starts with datasets' bars on (turning them off is process-wide)."""
    datasets.enable_progress_bars()
    yield
    datasets.enable_progress_bars()


def _rnr(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """`rnr ARGS` in this process (stderr is not a terminal here): exit code and stderr."""
    try:
        main(list(args))
        code = 0
    except SystemExit as done:
        code = int(done.code or 0)
    return code, capfd.readouterr().err


def _alpaca(path: Path, n: int = 3) -> Path:
    path.write_text("".join(json.dumps({"instruction": f"Name a colour ({i}).", "output": "Blue."}) + "\n"
                            for i in range(n)))
    return path


@pytest.mark.parametrize(("out", "message"), [
    ("x.csv", "x.csv: cannot write .csv files; write .jsonl, .parquet, or a folder"),
    ("x.tsv", "x.tsv: cannot write .tsv files"),
    ("x.json", "write .jsonl (one record per line) rather than a .json array"),
])
def test_convert_refuses_outputs_it_cannot_write(tmp_path: Path, capfd: pytest.CaptureFixture[str], out: str,
                                                  message: str) -> None:
    src = _alpaca(tmp_path / "in.jsonl")
    code, err = _rnr(capfd, "data", "convert", str(src), str(tmp_path / out))
    assert code == 2
    assert message in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]       # nothing written, no folder x.csv


def test_convert_refuses_to_turn_an_existing_csv_into_a_folder(tmp_path: Path,
                                                               capfd: pytest.CaptureFixture[str]) -> None:
    src = _alpaca(tmp_path / "in.jsonl")
    existing = tmp_path / "x.csv"
    existing.write_text("a,b\n1,2\n")
    code, err = _rnr(capfd, "data", "convert", str(src), str(existing))
    assert code == 2 and "cannot write .csv files" in err
    assert existing.read_text() == "a,b\n1,2\n"


@pytest.mark.parametrize("out", ["plain_ds", "data.v2/"])
def test_convert_writes_folders_without_progress_bars_in_a_log(tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                                               out: str) -> None:
    src = _alpaca(tmp_path / "in.jsonl")
    code, err = _rnr(capfd, "data", "convert", str(src), f"{tmp_path}/{out}")
    assert code == 0, err
    assert not any(bar in err for bar in DATASETS_BARS), err
    assert len(datasets.load_from_disk(f"{tmp_path}/{out}")) == 3


def test_generate_quiet_silences_datasets_bars(fake_server: Any, tmp_path: Path,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    server = fake_server(reply=teacher_reply())
    seeds = _alpaca(tmp_path / "seeds.jsonl", 4)
    with pytest.raises(SystemExit) as info:
        main(["generate", "--input", str(seeds), "--teacher", "openai:any", "--base-url", server.base_url,
              "--out", str(tmp_path / "out_ds"), "--num-prompts", "1", "--k", "2", "--verifiable-rules", "0",
              "--quiet", "--max-retries", "2", "--timeout", "5"])
    assert info.value.code in (0, None)
    assert (tmp_path / "out_ds").is_dir()
    err = capfd.readouterr().err
    assert not any(bar in err for bar in DATASETS_BARS), err
