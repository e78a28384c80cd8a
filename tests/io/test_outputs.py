"""Outputs never destroy what rnr did not write, collide, or fail half-way without a clear line:
folders are replaced only when rnr wrote them (or they are empty); `.`, `..`, home and the input's
folder are refused; leftovers of killed writes are cleaned; inputs that cannot be read say why."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rolenrules.cli import main
from rolenrules.errors import DataError
from rolenrules.io import OUTPUT_MARKER, read_examples, write_examples
from rolenrules.records import Example, Message
from rolenrules.testing.scripted import teacher_reply

SEEDS = Path(__file__).resolve().parents[1] / "data" / "self_instruct_seed_tasks.jsonl"


def rnr(*args: str) -> int:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return int(info.value.code or 0)


def _one_line_error(err: str, *parts: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert all(p in lines[0] for p in parts), err


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "seeds.jsonl"
    path.parent.mkdir()
    path.write_text(SEEDS.read_text())
    return path


def test_a_folder_rnr_did_not_write_is_never_replaced(seeds: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "thesis.txt").write_text("important")
    assert rnr("data", "convert", str(seeds), str(folder)) == 2
    _one_line_error(capsys.readouterr().err, "rnr did not write", str(folder))
    assert (folder / "thesis.txt").read_text() == "important"
    # an empty folder, or one rnr wrote, is replaced
    empty = tmp_path / "empty"
    empty.mkdir()
    assert rnr("data", "convert", str(seeds), str(empty), "--limit", "3") == 0
    assert (empty / OUTPUT_MARKER).exists() and len(list(read_examples(empty))) == 3
    assert rnr("data", "convert", str(seeds), str(empty), "--limit", "5") == 0
    assert len(list(read_examples(empty))) == 5


@pytest.mark.parametrize("target", [".", "..", "~", "INPUT_FOLDER", "INPUT"])
def test_protected_places_are_refused_before_reading(seeds: Path, tmp_path: Path, target: str,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    work = tmp_path / "cwd"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    path = {"~": str(home), "INPUT_FOLDER": str(seeds.parent), "INPUT": str(seeds)}.get(target, target)
    assert rnr("data", "convert", str(seeds), path) == 2
    _one_line_error(capsys.readouterr().err, "refusing" if target != "INPUT" else "is the input")
    assert (work / "notes.txt").read_text() == "mine" and seeds.read_text() == SEEDS.read_text()


def test_files_and_folders_are_not_mistaken_for_each_other(seeds: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "out.jsonl").mkdir()
    assert rnr("data", "convert", str(seeds), str(tmp_path / "out.jsonl")) == 2
    _one_line_error(capsys.readouterr().err, "is an existing folder")
    (tmp_path / "dataset").write_text("a file")
    assert rnr("data", "convert", str(seeds), str(tmp_path / "dataset")) == 2
    _one_line_error(capsys.readouterr().err, "existing file where a folder is needed")
    assert (tmp_path / "dataset").read_text() == "a file"


def test_zero_records_to_a_folder_output(tmp_path: Path) -> None:
    assert write_examples([], tmp_path / "ds") == 0
    with pytest.raises(DataError, match="empty"):
        list(read_examples(tmp_path / "ds"))


def test_leftovers_of_killed_writes_are_cleaned(tmp_path: Path) -> None:
    example = Example(id="a", messages=[Message(role="user", content="q")])
    dead = tmp_path / ".out.jsonl.999999999.abcd_123.tmp"  # a pid that cannot be alive
    old = tmp_path / ".out.jsonl.k3j4h5g6.tmp"               # an earlier rnr's name, without a pid
    alive = tmp_path / f".out.jsonl.{os.getppid()}.zz.tmp"    # a running process's write: left alone
    other = tmp_path / ".out.jsonl.meta.999999999.ab.tmp"    # another file's leftover
    for folder in (dead, old, alive, other):
        (folder / "data").mkdir(parents=True)
    write_examples([example], tmp_path / "out.jsonl")
    assert not dead.exists() and not old.exists() and alive.exists() and other.exists()


def test_generate_outputs_that_collide_are_refused_before_any_request(fake_server, seeds: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    server = fake_server(reply=teacher_reply())
    base = ["generate", "--input", str(seeds), "--teacher", "openai:any", "--base-url", server.base_url, "--quiet"]
    out = str(tmp_path / "o.jsonl")
    cases = [
        (["--out", out, "--rejects", out], "same path as --out"),
        (["--out", out, "--card", str(seeds)], "is the input"),
        (["--out", str(seeds)], "is the input"),
        (["--out", str(seeds.parent)], "holds the input"),
        (["--out", str(tmp_path / "o.jsonl"), "--run-dir", str(seeds.parent)], "holds the input"),
    ]
    for extra, message in cases:
        assert rnr(*base, *extra) == 2, extra
        _one_line_error(capsys.readouterr().err, message)
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "keep.txt").write_text("x")
    assert rnr(*base, "--out", str(folder)) == 2
    _one_line_error(capsys.readouterr().err, "rnr did not write")
    assert server.requests == 0
    assert seeds.read_text() == SEEDS.read_text() and (folder / "keep.txt").read_text() == "x"
    assert not (tmp_path / "o.jsonl").exists()


def test_zero_kept_run_with_a_folder_output_finishes(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    server = fake_server(reply=teacher_reply(judge_pass=lambda body, n: False))
    out = tmp_path / "ds"
    assert rnr("generate", "--input", str(SEEDS), "--teacher", "openai:any", "--base-url", server.base_url,
               "--out", str(out), "--num-prompts", "1", "--k", "2", "--verifiable-rules", "0", "--max-attempts", "1",
               "--quiet") == 0
    assert (out / OUTPUT_MARKER).exists()
    assert len((tmp_path / "ds.rejects.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize(("content", "message"), [
    ("[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply"),
    ("\ufeff" + json.dumps({"instruction": "With a byte-order mark."}) + "\n", None),
])
def test_unusual_input_bytes(tmp_path: Path, content: str, message: str | None,
                             capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(content, encoding="utf-8")
    code = rnr("data", "convert", str(src), str(tmp_path / "out.jsonl"))
    if message is None:
        assert code == 0 and len(list(read_examples(tmp_path / "out.jsonl"))) == 1
        (tmp_path / "in.json").write_text("\ufeff" + json.dumps([{"instruction": "BOM too"}]), encoding="utf-8")
        assert [e.user_turns[0] for e in read_examples(tmp_path / "in.json")] == ["BOM too"]
    else:
        assert code == 2
        _one_line_error(capsys.readouterr().err, f"{src}:1", message)


def test_symlink_loop_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    loop = tmp_path / "loop.jsonl"
    loop.symlink_to(loop)
    assert rnr("data", "convert", str(loop), str(tmp_path / "out.jsonl")) == 2
    _one_line_error(capsys.readouterr().err, "symlink loop")
    assert rnr("data", "convert", str(SEEDS), str(loop)) == 2
    _one_line_error(capsys.readouterr().err, "symlink loop")


def test_full_disk_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    """ENOSPC while writing (injected at the rename that finishes the write): exit 1, one line, no traceback."""
    import rolenrules.io.writers as writers

    def full(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(writers.os, "replace", full)
    assert rnr("data", "convert", str(SEEDS), str(tmp_path / "out.jsonl")) == 1
    _one_line_error(capsys.readouterr().err, "No space left on device", "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


@pytest.fixture
def unprivileged(tmp_path: Path) -> list[str]:
    """The command prefix that runs `rnr` without the power to ignore file permissions: root (as in CI
    containers) drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH with util-linux's `setpriv`."""
    rnr_cli = [sys.executable, "-m", "rolenrules"]
    if os.geteuid() != 0:
        return rnr_cli
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without util-linux's setpriv: cannot drop the permission override")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}", *rnr_cli]


def test_unreadable_input_and_read_only_output_are_one_line(fake_server, unprivileged: list[str],
                                                            tmp_path: Path) -> None:  # noqa: ANN001
    run = {"capture_output": True, "text": True, "timeout": 120}
    src = tmp_path / "in.jsonl"
    src.write_text(SEEDS.read_text())
    src.chmod(0o000)
    done = subprocess.run([*unprivileged, "data", "convert", str(src), str(tmp_path / "out.jsonl")], **run)
    assert done.returncode == 2, done.stderr
    _one_line_error(done.stderr, str(src), "permission denied")
    src.chmod(0o644)
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o555)
    try:
        done = subprocess.run([*unprivileged, "data", "convert", str(src), str(readonly / "out.jsonl")], **run)
        assert done.returncode == 2, done.stderr
        _one_line_error(done.stderr, f"cannot write in {readonly}")
        server = fake_server(reply=teacher_reply())
        done = subprocess.run([*unprivileged, "generate", "--input", str(src), "--teacher", "openai:any",
                               "--base-url", server.base_url, "--out", str(readonly / "gen.jsonl"), "--quiet"], **run)
        assert done.returncode == 2 and server.requests == 0, done.stderr
        _one_line_error(done.stderr, f"cannot write in {readonly}")
    finally:
        readonly.chmod(0o755)
