"""Where roles come from (`--roles`) and which rule types are drawn (`--exclude-rule-types`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rolenrules.cli import main
from rolenrules.errors import ConfigError, DataError
from rolenrules.generate import build_config
from rolenrules.generate._hints import HINTS, ROLES
from rolenrules.generate.config import expand_rule_types
from rolenrules.generate.roles import decide_roles, read_roles
from rolenrules.generate.template_copy import copied_example
from rolenrules.io import read_examples
from rolenrules.rules.registry import IFEVAL_IDS
from rolenrules.testing.scripted import schema_name, teacher_reply

SEEDS = Path(__file__).resolve().parents[1] / "data" / "self_instruct_seed_tasks.jsonl"


@pytest.mark.parametrize(("option", "teacher", "kind"), [
    ("auto", "local:smollm2", "library"),     # the embedded model cannot write a role
    ("auto", "local:/models/other.gguf", "library"),
    ("auto", "openai:gpt-4o-mini", "teacher"),
    ("auto", "hf:Qwen/Qwen2.5-7B-Instruct", "teacher"),
    ("teacher", "local:smollm2", "teacher"),  # asked for explicitly
    ("library", "openai:gpt-4o-mini", "library"),
    ("FILE", "local:smollm2", "file"),
])
def test_the_role_source_by_option_and_teacher(option: str, teacher: str, kind: str, tmp_path: Path) -> None:
    if option == "FILE":
        option = str(tmp_path / "roles.txt")
        Path(option).write_text("# ours\nYou are the help desk of Zeta Corp.\n\nYou are Quill, a poetry tutor.\n")
    source = decide_roles(option, teacher)
    assert source.kind == kind
    assert source.kind in source.line() or "drawn from" in source.line()
    if kind == "library":
        assert source.roles == ROLES and "built-in library" in source.line()
    if kind == "file":
        assert source.roles == ("You are the help desk of Zeta Corp.", "You are Quill, a poetry tutor.")
        assert option in source.line()
    if kind == "teacher":
        assert source.roles == () and source.pick(HINTS[0], __import__("random").Random(0)) is None


def test_an_unknown_role_source_is_refused_by_the_config() -> None:
    with pytest.raises(ConfigError, match="--roles nowhere.txt: neither auto, teacher, library nor an existing file"):
        build_config({"input": str(SEEDS), "out": "o.jsonl", "roles": "nowhere.txt"})


def test_the_library_has_one_plausible_role_per_deployment_style_and_none_copies_the_template() -> None:
    from rolenrules.generate.template_copy import template_examples
    from rolenrules.prompts import load_template

    assert len(ROLES) == len(HINTS) == len(set(ROLES)) == 36
    found = template_examples(load_template("system_prompt").render(instructions=["x"], min_rules=1, max_rules=1,
                                                                      hint="x"))
    assert found  # the check has something to compare against
    for role in ROLES:
        assert role.startswith("You are ") and 40 <= len(role) <= 240, role
        assert copied_example(role, [], found) is None, role


@pytest.mark.parametrize(("content", "where"), [
    ('{"role": "You are the help desk of Zeta Corp."}\n{"rol": "You are Quill."}\n', "roles.jsonl:2: field 'role'"),
    ('{"role": "You are the help desk of Zeta Corp."}\nnot json\n', "roles.jsonl:2: not a JSON object"),
    ('{"role": 7}\n', "roles.jsonl:1: field 'role': expected text"),
])
def test_a_bad_line_in_a_roles_file_is_named_with_file_and_line(content: str, where: str, tmp_path: Path) -> None:
    path = tmp_path / "roles.jsonl"
    path.write_text(content)
    with pytest.raises(DataError) as info:
        read_roles(path)
    assert str(info.value).startswith(str(tmp_path / where))


def _generate(server, out: Path, *extra: str) -> int:  # noqa: ANN001
    args = ["generate", "--input", str(SEEDS), "--teacher", "openai:any", "--base-url", server.base_url,
            "--out", str(out), "--quiet", "--num-prompts", "4", "--k", "2", "--rules", "1",
            "--rule-types", "punctuation:no_comma", *extra]
    with pytest.raises(SystemExit) as info:
        main(args)
    return int(info.value.code or 0)


def _counting_server(fake_server):  # noqa: ANN001, ANN202
    script = teacher_reply()
    asked: dict[str, int] = {}

    def reply(body: dict[str, Any]) -> str:
        name = schema_name(body) or "reply"
        asked[name] = asked.get(name, 0) + 1
        return script(body)

    return fake_server(reply=reply), asked


def test_library_roles_make_data_without_asking_the_teacher_for_a_system_prompt(
        fake_server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    server, asked = _counting_server(fake_server)
    out = tmp_path / "out.jsonl"
    assert _generate(server, out, "--roles", "library", "--judged-rules", "off") == 0
    kept = list(read_examples(out))
    assert len(kept) == 8
    assert {e.system_prompt.role for e in kept} <= set(ROLES)
    assert all(e.messages[0].content.startswith(e.system_prompt.role) for e in kept)
    assert "TeacherSystemPrompt" not in asked  # the role is drawn and every rule comes from the library
    assert "roles: drawn from rnr's built-in library (36 roles; --roles library)" in " ".join(
        capsys.readouterr().err.split())  # said at the start of the run
    card = (tmp_path / "out.jsonl.card.md").read_text()
    assert "**Roles: drawn from rnr's built-in role library** (36 roles) — --roles library." in card


def test_library_roles_with_judged_rules_keep_the_teachers_rules(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    server, asked = _counting_server(fake_server)
    out = tmp_path / "out.jsonl"
    assert _generate(server, out, "--roles", "library", "--judged-rules", "on", "--rules", "3",
                     "--verifiable-rules", "1") == 0
    kept = list(read_examples(out))
    assert kept and asked["TeacherSystemPrompt"] == 4
    assert all(e.system_prompt.role in ROLES and "Nova" not in e.system_prompt.role for e in kept)
    assert all(sum(r.kind == "judged" for r in e.system_prompt.rules) == 2 for e in kept)


def test_auto_with_a_server_teacher_is_todays_behaviour(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    server, asked = _counting_server(fake_server)
    out = tmp_path / "out.jsonl"
    assert _generate(server, out, "--judged-rules", "off") == 0
    kept = list(read_examples(out))
    assert kept and all(e.system_prompt.role.startswith("You are Nova, the assistant of Acme") for e in kept)
    assert asked["TeacherSystemPrompt"] == 4
    assert "**Roles: written by the teacher** (--roles auto" in (tmp_path / "out.jsonl.card.md").read_text()


def test_roles_from_a_file_and_a_bad_line_stops_before_any_request(fake_server, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    server, asked = _counting_server(fake_server)
    roles = tmp_path / "roles.jsonl"
    roles.write_text('{"role": "You are the help desk of Zeta Corp."}\n{"role": "x"}\n')
    out = tmp_path / "out.jsonl"
    assert _generate(server, out, "--roles", str(roles)) == 2
    assert f"{roles}:2: field 'role': a role is 3 to 2000 characters" in capsys.readouterr().err
    assert server.requests == 0 and not out.exists()
    roles.write_text('{"role": "You are the help desk of Zeta Corp."}\n{"role": "You are Quill, a poetry tutor."}\n')
    assert _generate(server, out, "--roles", str(roles), "--judged-rules", "off") == 0
    kept = list(read_examples(out))
    assert len(kept) == 8 and {e.system_prompt.role for e in kept} <= {
        "You are the help desk of Zeta Corp.", "You are Quill, a poetry tutor."}
    assert f"**Roles: drawn from `{roles}`** (2 roles)" in (tmp_path / "out.jsonl.card.md").read_text()
    # The file's content is part of the run: an edited file is not resumed onto the old run.
    roles.write_text('{"role": "You are somebody else entirely."}\n')
    assert _generate(server, out, "--roles", str(roles), "--judged-rules", "off") == 2
    assert "roles_content" in capsys.readouterr().err


@pytest.mark.parametrize(("names", "check"), [
    (["ifeval"], lambda ids: ids == set(IFEVAL_IDS) and len(ids) == 25),
    (["punctuation:*"], lambda ids: ids == {"punctuation:no_comma"}),
    (["length:*", "style:no_emojis"], lambda ids: "length:max_words" in ids and "style:no_emojis" in ids
     and not any(i.startswith("length_constraints") for i in ids)),
])
def test_excluded_rule_types_by_id_group_or_set(names: list[str], check) -> None:  # noqa: ANN001
    assert check(expand_rule_types(names))


@pytest.mark.parametrize(("names", "message"), [
    (["nosuch:*"], "no rule-type group 'nosuch'"),
    (["length:max_word"], "length:max_words"),  # the closest id is suggested
])
def test_unknown_excluded_rule_types_are_refused(names: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        expand_rule_types(names)


def test_excluding_ifeval_types_keeps_them_out_of_the_data(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    server, _ = _counting_server(fake_server)
    out = tmp_path / "out.jsonl"
    args = ["generate", "--input", str(SEEDS), "--teacher", "openai:any", "--base-url", server.base_url,
            "--out", str(out), "--quiet", "--num-prompts", "6", "--k", "1", "--rules", "2", "--judged-rules", "off",
            "--roles", "library", "--rule-types", "punctuation:no_comma", "--rule-types", "style:no_emojis",
            "--rule-types", "format:no_code_blocks", "--exclude-rule-types", "ifeval", "--no-drop-unscored"]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code in (0, None)
    drawn = {r.type for e in read_examples(out) for r in e.system_prompt.rules}
    rejected = [json.loads(line) for line in (tmp_path / "out.jsonl.rejects.jsonl").read_text().splitlines()]
    assert drawn == {"style:no_emojis", "format:no_code_blocks"} and not rejected
