"""Import rules of the package, read from the source: the library never imports the CLI, and
private helpers (`_name`, `_module`) are imported only inside the package that holds them."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import rolenrules

SRC = Path(rolenrules.__file__).parent


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(SRC.rglob("*.py")):
        parts = ("rolenrules", *path.relative_to(SRC).with_suffix("").parts)
        yield ".".join(parts), ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imports(tree: ast.Module) -> Iterator[tuple[int, str, list[str]]]:
    """(line, module imported, names taken from it) for every import of a rolenrules module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("rolenrules"):
            yield node.lineno, node.module, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("rolenrules"):
                    yield node.lineno, alias.name, []
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module":
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and str(arg.value).startswith("rolenrules"):
                yield node.lineno, str(arg.value), []


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _is_cli(module: str) -> bool:
    return module == "rolenrules.cli" or module.startswith("rolenrules.cli.")


def test_only_the_cli_and_the_entry_point_import_the_cli() -> None:
    offenders = [f"{module}:{line} imports {target}"
                 for module, tree in _modules() if not _is_cli(module) and module != "rolenrules.__main__"
                 for line, target, names in _imports(tree)
                 if _is_cli(target) or (target == "rolenrules" and "cli" in names)]
    assert offenders == []


def test_private_helpers_stay_inside_their_package() -> None:
    offenders = []
    for module, tree in _modules():
        for line, target, names in _imports(tree):
            parts = target.split(".")
            # A private module belongs to the package above it; a private name to its module's package.
            cut = next((i for i, p in enumerate(parts) if _private(p)), None)
            owners = [".".join(parts[:cut])] if cut is not None else []
            owners += [target.rsplit(".", 1)[0] if target.count(".") else target for n in names if _private(n)]
            for owner in owners:
                if not (module == owner or module.startswith(owner + ".")):
                    offenders.append(f"{module}:{line} imports a private helper of {owner} ({target})")
    assert offenders == []


@pytest.mark.parametrize("source", [
    "from rolenrules.cli import main",
    "import rolenrules.cli.train",
    "from rolenrules import cli",
])
def test_the_cli_check_sees_every_import_form(source: str) -> None:
    (_, target, names), = _imports(ast.parse(source))
    assert _is_cli(target) or "cli" in names
