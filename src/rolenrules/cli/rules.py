"""`rnr rules list` and `rnr rules sample`: browse the rule library and draw compatible rule sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, get_args, get_origin

import typer

from rolenrules.cli._console import console

rules_app = typer.Typer(help="The verifiable rule library (IFEval's 25 types, system-prompt rules, literal and "
                             "regex rules, and your plugins).", no_args_is_help=True)

#: The option of every command that reads rules.
RulesPluginOption = Annotated[Optional[list[Path]], typer.Option(
    "--rules-plugin", metavar="FILE.py",
    help="A Python file defining more rule types (repeatable; see docs/extending.md). Installed packages' "
         "`rolenrules.rules` entry points are loaded too.")]


def load_plugins(paths: Optional[list[Path]]) -> None:
    """Register the rule types of `--rules-plugin` files and installed plugins (one-line errors)."""
    from rolenrules.rules import load_rule_plugins

    load_rule_plugins(paths or [])


def _split(values: Optional[list[str]]) -> list[str] | None:
    """Options given repeatedly or comma-separated (`--types a,b --types c`)."""
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return "|".join(repr(value) for value in get_args(annotation))
    if origin is Annotated:
        return _type_name(get_args(annotation)[0])
    if origin in (tuple, list):
        return f"list[{_type_name(get_args(annotation)[0])}]"
    return getattr(annotation, "__name__", str(annotation))


def _param_summary(rule_type: Any) -> str:
    fields = rule_type.params_model.model_fields
    if not fields:
        return "-"
    parts = []
    for name, info in fields.items():
        default = "" if info.is_required() else f" = {info.default!r}"
        parts.append(f"{name}: {_type_name(info.annotation)}{default}")
    return ", ".join(parts)


@rules_app.command("list")
def list_rules(
    group: Annotated[Optional[str], typer.Option("--group", "-g", help="Only this group (the part of the id before ':').")] = None,
    system_only: Annotated[bool, typer.Option("--system-only", help="Only types that make sense in a system prompt.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    rules_plugin: RulesPluginOption = None,
) -> None:
    """A table of rule types: id, group, category, parameters and an example phrasing. Plugin
    types are marked (plugin)."""
    from rich.table import Table

    from rolenrules.errors import ConfigError
    from rolenrules.rules import PLUGIN_ORIGINS, REGISTRY

    load_plugins(rules_plugin)
    types = [t for t in REGISTRY.values()
             if (group is None or t.group == group) and (t.system_prompt_ok or not system_only)]
    if not types:
        groups = sorted({t.group for t in REGISTRY.values()})
        raise ConfigError(f"no rule types in group '{group}' (groups: {', '.join(groups)})")
    if as_json:
        rows = [{"id": t.id, "group": t.group, "category": t.category, "params": _param_summary(t),
                 "system_prompt": t.system_prompt_ok, "sampleable": t.sampleable,
                 "sampled_by_default": t.sampleable and t.sampled_by_default and t.id not in PLUGIN_ORIGINS,
                 "plugin": PLUGIN_ORIGINS.get(t.id), "summary": t.summary, "example": t.example(),
                 "conflicts": sorted(t.conflicts - {t.id})} for t in types]
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    plugins = sum(t.id in PLUGIN_ORIGINS for t in types)
    table = Table(title=f"{len(types)} rule types" + (f" ({plugins} from plugins)" if plugins else ""),
                  show_lines=False)
    for column in ("id", "group", "category", "parameters", "example phrasing"):
        table.add_column(column, overflow="fold")
    for t in types:
        label = f"{t.id} (plugin)" if t.id in PLUGIN_ORIGINS else t.id
        table.add_row(label, t.group, t.category, _param_summary(t), t.example())
    console.print(table)


@rules_app.command("sample")
def sample(
    n: Annotated[int, typer.Option("--n", "-n", min=0, help="Rules per set.")] = 3,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same output).")] = 0,
    types: Annotated[Optional[list[str]], typer.Option("--types", "-t", help="Draw only from these type ids (repeat or comma-separate).")] = None,
    exclude: Annotated[Optional[list[str]], typer.Option("--exclude", "-x", help="Never draw these type ids.")] = None,
    sets: Annotated[int, typer.Option("--sets", min=1, help="How many rule sets to draw.")] = 1,
    system_only: Annotated[bool, typer.Option("--system-only", help="Only types that make sense in a system prompt.")] = False,
    rules_plugin: RulesPluginOption = None,
) -> None:
    """Sample sets of mutually compatible rules, printed as JSON (a list of sets of Rule records).
    Literal, regex and plugin types are drawn only when named in --types."""
    import random

    from rolenrules.rules import get_rule_type, sample_rules

    load_plugins(rules_plugin)
    excluded = _split(exclude) or []
    for type_id in excluded:
        get_rule_type(type_id)  # unknown ids are an error, not silently ignored
    rng = random.Random(seed)
    drawn = [[rule.model_dump(mode="json") for rule in
              sample_rules(rng, n, types=_split(types), exclude=set(excluded), system_only=system_only)]
             for _ in range(sets)]
    typer.echo(json.dumps(drawn, indent=2, ensure_ascii=False))


def register(app: typer.Typer) -> None:
    app.add_typer(rules_app, name="rules")
