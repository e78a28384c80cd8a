"""`rnr init [DIR]`: a ready local project from the package's own copies (a pip install has them too),
whose configs work from any folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rolenrules.cli import main
from rolenrules.config_file import load_yaml_mapping
from rolenrules.experiment import load_experiment
from rolenrules.generate import GenerateConfig, build_config
from rolenrules.io import read_examples
from rolenrules.testing.scripted import teacher_reply

REPO = Path(__file__).resolve().parents[2]


def _init(*args: str) -> int:
    with pytest.raises(SystemExit) as info:
        main(["init", *args])
    return int(info.value.code or 0)


def test_init_writes_a_project_whose_configs_resolve_into_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    assert _init(str(project)) == 0
    assert {p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()} == {
        "quickstart.yaml", "experiment.yaml", "data/seed_sample.jsonl"}
    # The shipped sample is the repository's example data, byte for byte.
    assert (project / "data" / "seed_sample.jsonl").read_bytes() == (REPO / "examples/data/seed_sample.jsonl").read_bytes()
    monkeypatch.chdir(tmp_path)  # from another folder
    quick = build_config(load_yaml_mapping(project / "quickstart.yaml", GenerateConfig.PATHS))
    assert quick.input == str(project / "data" / "seed_sample.jsonl") and quick.out == str(project / "out/quickstart.jsonl")
    assert quick.teacher is None and quick.judged_rules == "auto"  # the embedded model by default: rules checked exactly
    experiment = load_experiment(project / "experiment.yaml")
    assert experiment.generate.input == str(project / "data" / "seed_sample.jsonl")
    assert experiment.generate.teacher == "local:smollm2" and experiment.workdir == project / "runs" / "experiment"
    assert experiment.generate.pairs_path == project / "runs/experiment/generated.jsonl.pairs.jsonl"


def test_init_takes_the_users_data_and_never_overwrites_unasked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "mine.jsonl"
    mine.write_text(json.dumps({"instruction": "Name three colours."}) + "\n")
    project = tmp_path / "p"
    assert _init(str(project), "--data", str(mine)) == 0
    assert load_experiment(project / "experiment.yaml").generate.input == str(mine)
    (project / "quickstart.yaml").write_text("# mine\n")
    assert _init(str(project)) == 2
    assert "already has quickstart.yaml" in capsys.readouterr().err
    assert (project / "quickstart.yaml").read_text() == "# mine\n"
    assert _init(str(project), "--force") == 0 and "num_prompts" in (project / "quickstart.yaml").read_text()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text_only": "no instruction here"}\n')
    assert _init(str(tmp_path / "q"), "--data", str(bad)) == 2
    assert "bad.jsonl" in capsys.readouterr().err and not (tmp_path / "q").exists()


def test_the_initialised_quickstart_runs_from_another_folder(fake_server, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    project = tmp_path / "project"
    assert _init(str(project)) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    server = fake_server(reply=teacher_reply(answer=lambda body: "Plain words only and nothing more"))
    with pytest.raises(SystemExit) as info:
        main(["generate", "--config", str(project / "quickstart.yaml"), "--teacher", "openai:any", "--base-url",
              server.base_url, "--quiet", "--judge-calibration", "0"])
    assert info.value.code in (0, None)
    out = project / "out" / "quickstart.jsonl"
    assert out.exists() and (project / "out" / "quickstart.jsonl.card.md").exists()
    assert list(elsewhere.iterdir()) == []
    kept = list(read_examples(out)) if out.read_text() else []
    assert all(r.kind == "verifiable" for e in kept for r in e.system_prompt.rules)
