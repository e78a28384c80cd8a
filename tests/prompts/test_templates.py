"""Prompt templates: variables checked at load, a `--templates DIR` overriding one template, and a
missing or broken template as one clear error before any model call."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from rolenrules.cli import main
from rolenrules.errors import ConfigError
from rolenrules.prompts import load_template
from rolenrules.testing.scripted import teacher_reply

PACKAGED = resources.files("rolenrules.prompts") / "templates"
NAMES = sorted(p.name[: -len(".j2")] for p in PACKAGED.iterdir() if p.name.endswith(".j2"))


def _packaged(name: str) -> str:
    return (PACKAGED / f"{name}.j2").read_text(encoding="utf-8")


def test_every_packaged_template_loads_and_renders_system_then_user() -> None:
    assert {"system_prompt", "feedback", "conflict_turn", "judge", "role_adherence"} <= set(NAMES)
    template = load_template("system_prompt")
    assert template.tag == f"system_prompt@{template.version}"
    assert template.variables == {"instructions", "min_rules", "max_rules", "hint"}
    messages = template.render(instructions=["Summarise this article.", "Fix my code."], min_rules=2, max_rules=4,
                               hint="a bank's support desk")
    assert [m.role for m in messages] == ["system", "user"]
    assert "Fix my code." in messages[1].content


def test_rendering_without_a_declared_variable_names_it() -> None:
    with pytest.raises(ConfigError, match=r"system_prompt: missing variables \['hint'\]"):
        load_template("system_prompt").render(instructions=["x"], min_rules=1, max_rules=2)


def test_a_templates_dir_overrides_only_the_templates_it_holds(tmp_path: Path) -> None:
    text = _packaged("system_prompt").replace("version: 3;", "version: 3-acme;", 1)
    (tmp_path / "system_prompt.j2").write_text(text.replace("### user\n", "### user\nACME HOUSE STYLE.\n", 1))
    custom = load_template("system_prompt", tmp_path)
    assert custom.source == str(tmp_path / "system_prompt.j2") and custom.version == "3-acme"
    rendered = custom.render(instructions=["q"], min_rules=1, max_rules=2, hint="h")
    assert rendered[1].content.startswith("ACME HOUSE STYLE.")
    judge = load_template("judge", tmp_path)  # not in the folder: the packaged one
    assert judge.source == "rolenrules/prompts/templates/judge.j2"


@pytest.mark.parametrize(("text", "message"), [
    ("### user\nno header\n", "first line must be '{# version: V; variables: a, b #}'"),
    ("{# version: 3; variables: instructions, min_rules, max_rules, hint #}\n{{ instructions }} {{ secret }}\n",
     "uses undeclared variables ['secret']"),
    ("{# version: 3; variables: instructions, min_rules, max_rules #}\n{{ instructions }}\n",
     "variables ['instructions', 'max_rules', 'min_rules'] differ from the packaged template's"),
    ("{# version: 3; variables: instructions, min_rules, max_rules, hint #}\n\n{% for x in instructions %}\n",
     "system_prompt.j2:3: template syntax error"),
])
def test_a_broken_override_is_one_clear_error_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "system_prompt.j2").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_template("system_prompt", tmp_path)
    assert message in str(caught.value)
    assert str(tmp_path / "system_prompt.j2") in str(caught.value)


def test_an_unknown_template_name_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no prompt template named 'nope'"):
        load_template("nope", tmp_path)


def _seeds(tmp_path: Path) -> Path:
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(json.dumps({"instruction": f"Give me tip number {i} for better sleep."}) + "\n"
                            for i in range(4)))
    return path


def _generate(server_url: str, tmp_path: Path, templates: Path) -> int | str | None:
    args = ["generate", "--input", str(_seeds(tmp_path)), "--teacher", "openai:any", "--base-url", server_url,
            "--out", str(tmp_path / "out.jsonl"), "--num-prompts", "1", "--k", "2", "--verifiable-rules", "0",
            "--quiet", "--templates", str(templates), "--judged-rules", "on"]
    with pytest.raises(SystemExit) as info:
        main(args)
    return info.value.code


def test_generate_uses_the_override_and_records_its_version(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    server = fake_server(reply=teacher_reply())
    folder = tmp_path / "templates"
    folder.mkdir()
    text = _packaged("system_prompt").replace("version: 3;", "version: 3-acme;", 1)
    (folder / "system_prompt.j2").write_text(text.replace("### user\n", "### user\nACME HOUSE STYLE.\n", 1))
    assert _generate(server.base_url, tmp_path, folder) in (0, None)
    design = [body for body in server.log if (body.get("response_format") or {}).get("json_schema", {}).get("name")
              == "TeacherSystemPrompt"]
    assert design and all("ACME HOUSE STYLE." in body["messages"][-1]["content"] for body in design)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert rows and all(row["metadata"]["templates"]["system_prompt"] == "3-acme" for row in rows)


def test_generate_with_a_broken_override_fails_before_any_request(fake_server, tmp_path: Path,  # noqa: ANN001
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    server = fake_server(reply=teacher_reply())
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "judge.j2").write_text("{# version: 9; variables: nothing #}\n{{ nothing }}\n")
    assert _generate(server.base_url, tmp_path, folder) == 2
    err = capsys.readouterr().err
    assert f"{folder / 'judge.j2'}: variables ['nothing'] differ from the packaged template's" in err
    assert "Traceback" not in err and server.requests == 0
    assert not (tmp_path / "out.jsonl").exists()
