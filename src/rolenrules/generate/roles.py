"""Where a system prompt's role comes from (`--roles`): the teacher, the built-in role library, or
the user's own file.

The teacher writes the role in the paper's method. A teacher too weak for that (the embedded
SmolLM2-135M copies the prompt template's example or writes a placeholder) gets roles from the
library instead (`auto`), one short deployment role per deployment style (`_hints.DEPLOYMENTS`),
so a run still makes data; the rules come from wherever they come from anyway. The choice is
said in one line at the start of a run and on the dataset card.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rolenrules.errors import ConfigError, DataError
from rolenrules.generate._hints import HINTS, ROLES

#: The `--roles` values that are not a file.
KEYWORDS = ("auto", "teacher", "library")
#: Shortest and longest role accepted from a file (a role is one to three sentences).
MIN_CHARS, MAX_CHARS = 3, 2000


@dataclass(frozen=True)
class RoleSource:
    """Where this run's roles come from, why, and (library, file) the roles to draw from."""

    kind: Literal["teacher", "library", "file"]
    reason: str
    roles: tuple[str, ...] = ()
    path: str | None = None

    def line(self) -> str:
        if self.kind == "teacher":
            return f"roles: written by the teacher ({self.reason})"
        where = "rnr's built-in library" if self.kind == "library" else self.path
        return (f"roles: drawn from {where} ({len(self.roles)} roles; {self.reason}); the teacher writes no role and "
                "the rules come from where they always do")

    def pick(self, hint: str, rng: random.Random) -> str | None:
        """The role for a system prompt drawn with deployment style `hint` (None: the teacher writes it).
        A library role is the one written for that style; a file's is drawn with the prompt's `rng`."""
        if self.kind == "teacher":
            return None
        if self.kind == "library":
            return self.roles[HINTS.index(hint)]
        return rng.choice(self.roles)


def is_file(option: str) -> bool:
    return option not in KEYWORDS


def decide_roles(option: str, teacher_identity: str) -> RoleSource:
    """The role source for `--roles option` with this teacher. `auto` takes the library when the
    teacher is the embedded `local:` model, which cannot write a role, else the teacher."""
    if option == "teacher":
        return RoleSource("teacher", "--roles teacher")
    if option == "library":
        return RoleSource("library", "--roles library", ROLES)
    if option == "auto":
        if teacher_identity.startswith("local:"):
            return RoleSource("library", f"the teacher is the embedded model {teacher_identity}, which copies the "
                                         "prompt template's example instead of writing a role (--roles teacher to "
                                         "ask it anyway)", ROLES)
        return RoleSource("teacher", "--roles auto with a teacher that can write roles")
    return RoleSource("file", f"--roles {option}", read_roles(option), path=option)


def read_roles(path: str | Path) -> tuple[str, ...]:
    """Roles from a file: one per line (blank lines and `#` comments skipped), or JSON Lines with a
    `role` field (a `.jsonl` file). A bad line stops with the file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--roles {path}: no such file (give auto, teacher, library, or a file of roles)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read roles: {error}", path=str(path)) from None
    jsonl = path.suffix == ".jsonl"
    roles: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or (not jsonl and line.startswith("#")):
            continue
        if jsonl:
            try:
                row = json.loads(line)
            except ValueError as error:
                raise DataError(f"not a JSON object ({error.msg})", path=str(path), line=number) from None
            if not isinstance(row, dict) or "role" not in row:
                raise DataError("each line needs a `role` (text)", path=str(path), line=number, field="role")
            role = row["role"]
            if not isinstance(role, str):
                raise DataError(f"expected text, got {type(role).__name__}", path=str(path), line=number,
                                field="role")
            role = role.strip()
        else:
            role = line
        if not MIN_CHARS <= len(role) <= MAX_CHARS:
            raise DataError(f"a role is {MIN_CHARS} to {MAX_CHARS} characters, this one is {len(role)}",
                            path=str(path), line=number, field="role" if jsonl else None)
        roles.append(role)
    if not roles:
        raise DataError("no roles in the file (one per line, or JSON Lines with `role`)", path=str(path))
    return tuple(dict.fromkeys(roles))


__all__ = ["KEYWORDS", "RoleSource", "decide_roles", "is_file", "read_roles"]
