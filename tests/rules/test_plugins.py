"""Rule types from a user's file (`--rules-plugin`) or an installed package (entry points)."""

from __future__ import annotations

import json
import random
import textwrap
from pathlib import Path
from typing import Any

import pytest

from rolenrules.cli import main
from rolenrules.errors import ConfigError
from rolenrules.rules import PLUGIN_ORIGINS, REGISTRY, get_rule_type, load_rule_plugins, rule_from_type, sample_rules
from rolenrules.testing.scripted import teacher_reply

pytestmark = pytest.mark.usefixtures("clean_registry")

PLUGIN = '''
"""ACME support's house rules."""

from __future__ import annotations

import random
import re
from typing import Annotated

from pydantic import StringConstraints

from rolenrules.rules import CheckContext, Params, RuleType


class TicketParams(Params):
    prefix: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2,5}$")] = "ACME"


class CitesTicket(RuleType[TicketParams]):
    id = "acme:cites_ticket"
    category = "content"
    params_model = TicketParams
    declared_conflicts = ("style:all_lowercase",)
    summary = "Cites a ticket id such as ACME-1234."

    def _sample(self, rng: random.Random) -> dict:
        return {"prefix": rng.choice(("ACME", "OPS"))}

    def phrasings(self, params: TicketParams) -> list[str]:
        return [f"Cite the ticket id ({params.prefix}-1234) in every reply.",
                f"Always mention the ticket number, e.g. {params.prefix}-1234."]

    def test(self, params: TicketParams, text: str, context: CheckContext) -> bool:
        return re.search(rf"\\b{params.prefix}-\\d{{4}}\\b", text) is not None


TYPES = (CitesTicket(),)
'''


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code or 0


def test_a_plugin_file_registers_its_types(tmp_path: Path) -> None:
    plugin = _write(tmp_path / "acme_rules.py", PLUGIN)
    with pytest.raises(ConfigError, match="--rules-plugin"):
        get_rule_type("acme:cites_ticket")
    (loaded,) = load_rule_plugins([plugin])
    assert get_rule_type("acme:cites_ticket") is loaded and PLUGIN_ORIGINS["acme:cites_ticket"] == str(plugin)
    assert load_rule_plugins([plugin]) == [loaded]  # loading again is a no-op
    rule = rule_from_type("acme:cites_ticket", {"prefix": "OPS"})
    assert loaded.check(rule.params, "See OPS-1234.") is True and loaded.check(rule.params, "See ACME-1234.") is False
    # Declared conflicts are made symmetric with the built-in types.
    assert "acme:cites_ticket" in REGISTRY["style:all_lowercase"].conflicts


def test_plugin_types_are_sampled_only_when_asked_for(tmp_path: Path) -> None:
    load_rule_plugins([_write(tmp_path / "acme_rules.py", PLUGIN)])
    drawn = {r.type for seed in range(30) for r in sample_rules(random.Random(seed), 6, system_only=True)}
    assert "acme:cites_ticket" not in drawn
    (rule,) = sample_rules(random.Random(0), 1, types=["acme:cites_ticket"], system_only=True)
    assert rule.type == "acme:cites_ticket" and rule.params["prefix"] in ("ACME", "OPS")


def test_rules_list_marks_plugin_types(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plugin = _write(tmp_path / "acme_rules.py", PLUGIN)
    assert _run(["rules", "list", "--json", "--rules-plugin", str(plugin)]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["acme:cites_ticket"]["plugin"] == str(plugin)
    assert rows["acme:cites_ticket"]["sampled_by_default"] is False
    assert rows["acme:cites_ticket"]["example"].startswith("Cite the ticket id (")
    assert rows["length:max_words"]["plugin"] is None
    assert _run(["rules", "list", "--group", "acme", "--rules-plugin", str(plugin)]) == 0
    table = capsys.readouterr().out
    assert "1 rule types (1 from plugins)" in table and "(plugin)" in table  # beside the id (wrapped)
    assert _run(["rules", "list", "--group", "text"]) == 0
    assert "(plugin)" not in capsys.readouterr().out


@pytest.mark.parametrize(("source", "message"), [
    (PLUGIN.replace('"acme:cites_ticket"', '"length:max_words"'),
     "rule type id 'length:max_words' is already a built-in rule type"),
    ("import not_a_module_anywhere\n", "failed to import: ModuleNotFoundError: No module named 'not_a_module_anywhere'"),
    ("def broken(:\n", "failed to import: SyntaxError: invalid syntax"),
    ("raise RuntimeError('boom\\non two lines')\n", "failed to import: RuntimeError: boom on two lines"),
    ("X = 1\n", "defines no TYPES"),
    (PLUGIN.replace('"acme:cites_ticket"', '"acme-cites-ticket"'), "is not 'group:name'"),
    (PLUGIN.replace('category = "content"', 'category = "vibes"'), "category must be one of"),
    (PLUGIN.replace('("style:all_lowercase",)', '("style:all_lowercas",)'), "conflict with unknown type"),
    (PLUGIN.replace('    category = "content"', '    category = "content"\n    passes_when_undetected = True'),
     "passes when detection fails, so it cannot be system_prompt_ok"),
])
def test_a_broken_plugin_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str,
                                             message: str) -> None:
    plugin = _write(tmp_path / "house.py", source)
    before = dict(REGISTRY)
    assert _run(["rules", "list", "--rules-plugin", str(plugin)]) == 2
    err = capsys.readouterr().err
    assert f"rules plugin {plugin}" in err.replace("\n", "") and message in err.replace("\n", " ")
    assert "Traceback" not in err
    assert REGISTRY == before  # nothing half-registered


def test_a_missing_plugin_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["rules", "sample", "--rules-plugin", str(tmp_path / "nope.py")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_installed_packages_register_through_entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A minimal installed distribution: its module and a dist-info with the entry point.
    _write(tmp_path / "acme_pkg_rules.py", PLUGIN)
    info = tmp_path / "acme_rules-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-rules\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[rolenrules.rules]\nacme = acme_pkg_rules\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = load_rule_plugins()
    assert [t.id for t in loaded] == ["acme:cites_ticket"]
    assert PLUGIN_ORIGINS["acme:cites_ticket"] == "entry point acme (acme_pkg_rules)"
    assert load_rule_plugins() == loaded
    # A file defining the same id on top is a collision with that plugin, named.
    with pytest.raises(ConfigError, match="already defined by rules plugin entry point acme"):
        load_rule_plugins([_write(tmp_path / "again.py", PLUGIN)])


def _documented_plugin() -> str:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "extending.md").read_text(encoding="utf-8")
    section = doc[doc.index("### Rule types in your own file"):]
    start = section.index("```python\n") + len("```python\n")
    return section[start:section.index("\n```", start)]


def test_the_documented_plugin_works(tmp_path: Path, fake_server: Any, capsys: pytest.CaptureFixture[str]) -> None:
    plugin = _write(tmp_path / "my_rules.py", _documented_plugin())
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"instruction": f"Question {i}: how do I reset my password?", "input": "",
                                         "output": "Use the reset link."}) + "\n" for i in range(4)), encoding="utf-8")
    server = fake_server(reply=teacher_reply(answer=lambda body: "Logged as ACME-1234: use the reset link."))
    argv = ["generate", "--input", str(seeds), "--teacher", "openai:any", "--base-url", server.base_url, "--quiet",
            "--num-prompts", "2", "--k", "2", "--verifiable-rules", "1", "--rule-types", "acme:cites_ticket"]
    # Without the plugin: the unknown id is refused before any model call, saying where types come from.
    assert _run([*argv, "--out", str(tmp_path / "none.jsonl")]) == 2
    assert "--rules-plugin" in capsys.readouterr().err and server.requests == 0
    assert _run([*argv, "--out", str(tmp_path / "out.jsonl"), "--rules-plugin", str(plugin)]) == 0
    kept = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    rejected = [json.loads(line) for line in (tmp_path / "out.jsonl.rejects.jsonl").read_text().splitlines()]
    assert len(kept) + len(rejected) == 4 and kept
    for record in kept:
        (rule,) = [r for r in record["system_prompt"]["rules"] if r["kind"] == "verifiable"]
        assert rule["type"] == "acme:cites_ticket" and rule["params"] == {"prefix": "ACME"}
        assert rule["text"] in ("Cite the ticket id (like ACME-1234) in every reply.",
                                "Always mention the ticket number, for example ACME-1234.")
        verdict = next(v for v in record["verdicts"] if v["rule_id"] == rule["id"])
        assert (verdict["passed"], verdict["source"]) == (True, "verifier")


def test_ifeval_score_reads_plugin_types(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plugin = _write(tmp_path / "acme_rules.py", PLUGIN)
    rows = [{"key": 1, "instruction_id_list": ["acme:cites_ticket", "punctuation:no_comma"], "kwargs": [{}, {}],
             "response": "See ACME-1234."},
            {"key": 2, "instruction_id_list": ["acme:cites_ticket"], "kwargs": [{"prefix": "OPS"}],
             "response": "See ACME-1234."}]
    responses = tmp_path / "responses.jsonl"
    responses.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert _run(["ifeval", "score", str(responses), "--out", str(tmp_path / "out")]) == 2
    assert "unknown rule type 'acme:cites_ticket'" in capsys.readouterr().err
    assert _run(["ifeval", "score", str(responses), "--out", str(tmp_path / "out"), "--rules-plugin", str(plugin)]) == 0
    verdicts = [json.loads(line) for line in (tmp_path / "out" / "verdicts.jsonl").read_text().splitlines()]
    assert verdicts == [{"key": 1, "strict": [True, True], "loose": [True, True]},
                        {"key": 2, "strict": [False], "loose": [False]}]
