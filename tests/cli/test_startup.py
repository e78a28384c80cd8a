"""`rnr` starts fast because it imports only what the command at hand uses (issue 17, P7; the
timings are in benchmarks/startup.md). These tests check which modules get imported, not time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = ("numpy", "scipy", "openai", "torch", "transformers", "nltk", "datasets", "pyarrow")


def _imported_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint('MODULES:' + ' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(next(line for line in out.splitlines() if line.startswith("MODULES:"))[8:].split())


def test_rnr_help_imports_no_heavy_module_and_no_command() -> None:
    modules = _imported_after("from rolenrules.cli import main\n"
                              "try:\n    main(['--help'])\nexcept SystemExit:\n    pass")
    assert {m.split(".")[0] for m in modules} & set(HEAVY) == set()
    assert [m for m in modules if m.startswith("rolenrules.cli.")] == []


def test_the_help_lines_of_rnr_help_are_the_commands_own() -> None:
    from rolenrules.cli import COMMANDS, load_commands
    from typer.core import TyperGroup

    group = TyperGroup(name="all")
    for module in dict.fromkeys(module for module, _ in COMMANDS.values()):
        load_commands(group, module)
    assert set(group.commands) == set(COMMANDS)
    for name, (_, line) in COMMANDS.items():
        assert group.commands[name].get_short_help_str(10_000) == line, name


def test_a_command_loads_its_module_on_demand() -> None:
    from typer.testing import CliRunner

    from rolenrules.cli import app

    result = CliRunner().invoke(app, ["ifeval", "--help"])
    assert result.exit_code == 0 and "score" in result.output
    result = CliRunner().invoke(app, ["no-such-command"])
    assert result.exit_code != 0 and "No such command" in result.output


def test_ifeval_score_uses_nltk_without_importing_all_of_it(tmp_path: Path) -> None:
    rows = Path(__file__).resolve().parents[1] / "data" / "gpt4_dev.jsonl"
    modules = _imported_after(
        "from rolenrules.cli import main\n"
        f"try:\n    main(['ifeval', 'score', {str(rows)!r}, '--out', {str(tmp_path)!r}])\nexcept SystemExit:\n    pass")
    assert "scipy" not in modules and "nltk" not in modules
    assert (tmp_path / "summary.json").is_file()
    # Afterwards NLTK imports whole and works, next to the submodules rnr loaded on its own.
    code = ("from rolenrules.rules._text import sentences, word_tokens\n"
            "assert sentences('Mr. Smith came. He sat.') == ['Mr. Smith came.', 'He sat.']\n"
            "import nltk\n"
            "assert nltk.tokenize.punkt.PunktSentenceTokenizer().tokenize('One. Two.') == ['One.', 'Two.']\n"
            "assert word_tokens(\"Don't.\") == nltk.tokenize.destructive.NLTKWordTokenizer().tokenize(\"Don't.\")")
    subprocess.run([sys.executable, "-c", code], check=True)

