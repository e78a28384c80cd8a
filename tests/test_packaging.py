"""The built wheel carries every task's data and licence, and an installed `rnr` finds them from any folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from rolenrules.evaluate.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]


def _pip(*args: str) -> None:
    # Offline: no index, and the environment's setuptools instead of an isolated build env from PyPI.
    done = subprocess.run([sys.executable, "-m", "pip", *args, "--no-deps", "--no-index", "-q"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel . --no-deps`, built from a copy of the tree (a stale build/ can never leak in)."""
    work = tmp_path_factory.mktemp("wheel")
    tree = work / "tree"
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    _pip("wheel", str(tree), "--no-build-isolation", "-w", str(work / "dist"))
    [built] = (work / "dist").glob("rolenrules-*.whl")
    return built


def test_wheel_holds_every_task_file_and_licence(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for task in TASKS.values():
        assert {f"rolenrules/data/{task.file}", f"rolenrules/data/{task.file}.gz"} & names, task.name
        for source in task.sources:
            assert {f"rolenrules/data/{source.folder}/LICENSE", f"rolenrules/data/{source.folder}/NOTICE"} <= names
    assert "rolenrules/evaluate/tasks/__init__.py" in names
    assert not [n for n in names if "alpaca" in n.lower()]          # CC BY-NC: never shipped
    # `rnr init` writes these from the package, so a pip install has the examples too.
    assert {f"rolenrules/starter/{n}" for n in ("quickstart.yaml", "experiment.yaml", "data/seed_sample.jsonl")} <= names
    assert wheel.stat().st_size < 2_000_000


def test_installed_rnr_finds_its_data_from_an_unrelated_folder(wheel: Path, tmp_path: Path, fake_server: Any) -> None:
    site = tmp_path / "site"
    _pip("install", "--target", str(site), str(wheel))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RNR_DATA_DIR")}
    env["PYTHONPATH"] = str(site)  # the installed wheel, ahead of the source tree's editable install
    elsewhere = tmp_path / "project"
    elsewhere.mkdir()

    def rnr(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(site / "bin" / "rnr"), *args], cwd=elsewhere, env=env, capture_output=True,
                              text=True, timeout=120)

    where = subprocess.run([sys.executable, "-c", "import rolenrules; print(rolenrules.__file__)"], cwd=elsewhere,
                           env=env, capture_output=True, text=True)
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout + where.stderr
    listed = rnr("tasks", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {row["name"]: row["examples"] for row in json.loads(listed.stdout)} == {
        "ifeval": 540, "sys-ifeval": 541, "realguardrails": 239, "distractors": 504}

    server = fake_server(reply=lambda body: "Hello there. This is a short answer")
    run = rnr("eval", "--task", "sys-ifeval", "--limit", "3", "--model", "openai:any", "--base-url", server.base_url,
              "--out", "run", "--bootstrap", "0")
    assert run.returncode == 0, run.stderr
    summary = json.loads((elsewhere / "run" / "summary.json").read_text())
    assert summary["run"]["n_bench"] == 3
    assert set(summary["ifeval"]["sys-ifeval"]) >= {"prompt_level_strict", "instruction_level_loose"}
    assert len((elsewhere / "run" / "results.jsonl").read_text().splitlines()) == 3
