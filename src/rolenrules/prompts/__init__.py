"""Versioned Jinja2 prompt templates, with their variables checked at load.

A template file `NAME.j2` starts with a header comment naming its version and variables:

    {# version: 1; variables: instructions, min_rules, max_rules #}

and renders chat messages as sections introduced by a line `### system` or `### user`
(text before any section header is the user message). The sections are found in the template's
*source* and each is rendered on its own, so a value (a seed instruction, a reply under review)
that contains a `### system` line stays text inside its message and can never add a message.
Users can copy the package's templates into a folder, edit them and pass `--templates DIR`:
same names, same variables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta

from rolenrules.errors import ConfigError
from rolenrules.records import Message, Role

_HEADER = re.compile(r"^\{#\s*version:\s*([\w.\-]+)\s*;\s*variables:\s*([\w,\s]*)#\}")
_SECTION = re.compile(r"^###\s+(system|user)\s*$", re.MULTILINE)

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
                          trim_blocks=True, lstrip_blocks=True, autoescape=False)


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: str
    variables: frozenset[str]
    source: str
    #: (role, template of that message's content), in order.
    sections: tuple[tuple[Role, jinja2.Template], ...]

    @property
    def tag(self) -> str:
        """`name@version`, recorded in each example's provenance."""
        return f"{self.name}@{self.version}"

    def render(self, **values: Any) -> list[Message]:
        missing = self.variables - values.keys()
        if missing:
            raise ConfigError(f"prompt template {self.name}: missing variables {sorted(missing)}")
        messages: list[Message] = []
        for role, template in self.sections:
            try:
                text = template.render(**values).strip()
            except jinja2.TemplateError as error:
                raise ConfigError(f"prompt template {self.name} ({self.source}): {error}") from None
            if text:
                messages.append(Message(role=role, content=text))
        return messages


def _sections(text: str) -> list[tuple[Role, str]]:
    """The template source cut at its `### role` lines: (role, source of that message)."""
    parts = _SECTION.split(text)
    sections: list[tuple[Role, str]] = [("user", parts[0])]
    sections += [(role, body) for role, body in zip(parts[1::2], parts[2::2])]  # type: ignore[misc]
    return sections


def _read(name: str, templates_dir: str | Path | None) -> tuple[str, str]:
    if templates_dir is not None:
        if not Path(templates_dir).is_dir():
            raise ConfigError(f"--templates {templates_dir}: no such folder")
        path = Path(templates_dir) / f"{name}.j2"
        if path.exists():
            return path.read_text(encoding="utf-8"), str(path)
    resource = resources.files("rolenrules.prompts") / "templates" / f"{name}.j2"
    if not resource.is_file():
        raise ConfigError(f"no prompt template named {name!r}")
    return resource.read_text(encoding="utf-8"), f"rolenrules/prompts/templates/{name}.j2"


def load_template(name: str, templates_dir: str | Path | None = None) -> PromptTemplate:
    """Load `name.j2` from `templates_dir` (falling back to the package's) and check its variables."""
    text, source = _read(name, templates_dir)
    header = _HEADER.match(text)
    if not header:
        raise ConfigError(f"{source}: first line must be '{{# version: V; variables: a, b #}}'")
    version = header.group(1)
    declared = frozenset(v.strip() for v in header.group(2).split(",") if v.strip())
    sections = []
    used: set[str] = set()
    line = 1
    for role, body in _sections(text):
        try:
            used |= meta.find_undeclared_variables(_ENV.parse(body))
            sections.append((role, _ENV.from_string(body)))
        except jinja2.TemplateSyntaxError as error:
            # A block left open across a `### role` line lands here too: each message stands alone.
            raise ConfigError(f"{source}:{line + (error.lineno or 1) - 1}: template syntax error: {error.message} "
                              "(each `### role` section must be a complete template)") from None
        line += body.count("\n") + 1
    unknown = used - declared
    if unknown:
        raise ConfigError(f"{source}: uses undeclared variables {sorted(unknown)} (declared: {sorted(declared)})")
    if templates_dir is not None:
        packaged = load_template(name)
        if declared != packaged.variables:
            raise ConfigError(f"{source}: variables {sorted(declared)} differ from the packaged template's "
                              f"{sorted(packaged.variables)}")
    return PromptTemplate(name=name, version=version, variables=declared, source=source, sections=tuple(sections))
