"""The rule-type API: one small class per rule, with typed parameters, phrasings and a check.

A rule type owns four things:

* `params_model` — a frozen pydantic model of its parameters (IFEval's kwargs names for the
  IFEval types);
* `sample(rng)` — parameters drawn from a seeded `random.Random`;
* `phrasings(params)` — several ways to say the rule in a system prompt (`describe` picks one);
* `test(params, text, context)` — does one text follow the rule: True, False, or None when the
  check cannot decide (a failed language detection, a missing system prompt).

`check` wraps `test` with the conventions every consumer shares: an empty response follows no
rule, and *loose* mode (IFEval's) also tries the response without its first line, its last line,
or both, each with and without asterisks, passing if any variant passes. `check_modes` is the
one implementation of both modes (the IFEval scorer calls it with variants built once per
response). `check` reads nothing that `describe` computed: both are pure functions of the
parameters.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from rolenrules.errors import ConfigError, config_error
from rolenrules.records import Rule

Mode = Literal["strict", "loose"]
MODES: tuple[Mode, ...] = ("strict", "loose")


class Params(BaseModel):
    """Base of every rule type's parameters: frozen, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class NoParams(Params):
    """For rule types without parameters."""


@dataclass(frozen=True)
class CheckContext:
    """What a check may need beyond the response: the system prompt and the user's turns."""

    system_prompt: str | None = None
    user_turns: list[str] = field(default_factory=list)


P = TypeVar("P", bound=Params)


def loose_variants(response: str) -> list[str]:
    """IFEval's loose-mode variants of a response, in the official order, duplicates removed.

    The response itself, without asterisks, and without its first line, last line or both
    (each also without asterisks). A check is a pure function of the text, so trying a
    duplicate again cannot change the outcome.
    """
    lines = response.split("\n")
    no_first = "\n".join(lines[1:]).strip()
    no_last = "\n".join(lines[:-1]).strip()
    no_both = "\n".join(lines[1:-1]).strip()
    candidates = (
        response,
        response.replace("*", ""),
        no_first,
        no_last,
        no_both,
        no_first.replace("*", ""),
        no_last.replace("*", ""),
        no_both.replace("*", ""),
    )
    return list(dict.fromkeys(candidates))


def relation_holds(count: int, relation: str, threshold: int) -> bool:
    """IFEval's two relations: 'less than' (count < threshold) and 'at least' (count >= threshold)."""
    if relation == "less than":
        return count < threshold
    return count >= threshold


class RuleType(Generic[P]):
    """One verifiable rule type. Subclasses set the class attributes and implement
    `_sample`, `phrasings` and `test`."""

    #: Stable id, `group:name`.
    id: ClassVar[str]
    #: One of `records.CATEGORIES`.
    category: ClassVar[str]
    params_model: ClassVar[type[Params]] = NoParams
    #: Ids of rule types that cannot hold together with this one (made symmetric by the registry).
    declared_conflicts: ClassVar[tuple[str, ...]] = ()
    #: Conflicts with every other type (e.g. "answer with exactly one of these phrases").
    conflicts_with_all: ClassVar[bool] = False
    #: Whether the rule reads naturally as a standing instruction in a system prompt.
    system_prompt_ok: ClassVar[bool] = True
    #: False when parameters cannot be drawn without outside input (e.g. the prompt to repeat).
    sampleable: ClassVar[bool] = True
    #: False for types drawn into generated data only when asked for by id (`--rule-types`),
    #: e.g. the literal and regex types, whose parameters only a user can choose well.
    sampled_by_default: ClassVar[bool] = True
    #: The check or its parameters assume English text (a phrase to open with, words to avoid).
    english_only: ClassVar[bool] = False
    #: The rule fixes the reply's language; it conflicts with every `english_only` type and with
    #: every other type that sets the language (the registry adds those conflicts).
    sets_language: ClassVar[bool] = False
    #: IFEval parity: a failed language detection counts as followed. A check that can pass
    #: without deciding is not fit for generated data, so such a type is never `system_prompt_ok`.
    passes_when_undetected: ClassVar[bool] = False
    #: One line for `rnr rules list`.
    summary: ClassVar[str] = ""

    # Filled by the registry: declared conflicts closed under symmetry.
    _conflicts: frozenset[str] = frozenset()

    @property
    def group(self) -> str:
        return self.id.split(":", 1)[0]

    @property
    def conflicts(self) -> frozenset[str]:
        return self._conflicts

    # --- parameters ---------------------------------------------------------------------

    def parse(self, params: P | Mapping[str, Any] | None) -> P:
        """Validated parameters from a model instance or a plain dict; ConfigError names the field."""
        if isinstance(params, self.params_model):
            return params  # type: ignore[return-value]
        try:
            return self.params_model.model_validate(dict(params or {}))  # type: ignore[return-value]
        except ValidationError as error:
            raise config_error(error, f"rule type '{self.id}': bad parameters") from None

    def sample(self, rng: random.Random) -> P:
        return self.parse(self._sample(rng))

    def _sample(self, rng: random.Random) -> P | dict[str, Any]:
        return {}

    # --- describing ---------------------------------------------------------------------

    def phrasings(self, params: P) -> list[str]:
        raise NotImplementedError

    def describe(self, params: P | Mapping[str, Any] | None = None, variant: int | None = None,
                 rng: random.Random | None = None) -> str:
        """A system-prompt phrasing: `variant` picks one (modulo their number), else `rng`, else the first."""
        options = self.phrasings(self.parse(params))
        if variant is not None:
            return options[variant % len(options)]
        if rng is not None:
            return rng.choice(options)
        return options[0]

    # --- checking -----------------------------------------------------------------------

    def test(self, params: P, text: str, context: CheckContext) -> bool | None:
        """Whether one text follows the rule (None: cannot tell). Called with non-blank text."""
        raise NotImplementedError

    def check(self, params: P | Mapping[str, Any] | None, response: str, *, mode: Mode = "strict",
              context: CheckContext | None = None) -> bool | None:
        """Whether `response` follows the rule: True, False, or None when it cannot be scored."""
        if mode not in MODES:
            raise ConfigError(f"unknown check mode '{mode}' (use 'strict' or 'loose')")
        parsed = self.parse(params)
        context = context or _NO_CONTEXT
        if mode == "strict":
            return self.test(parsed, response, context) if response.strip() else False
        return self.check_modes(parsed, response, context)[1]

    def check_modes(self, params: P, response: str, context: CheckContext | None = None, *,
                    variants: Sequence[str] | None = None) -> tuple[bool | None, bool | None]:
        """(strict, loose) outcomes of `response`, parameters already parsed.

        Loose passes if the response or any of its loose variants passes; otherwise the strict
        outcome (False, or None when that could not be scored) stands. `variants` is
        `loose_variants(response)`, for callers that check many rules on one response (computed
        here when not given); blank variants are skipped, like blank responses.
        """
        if not response.strip():
            return False, False
        context = context or _NO_CONTEXT
        strict = self.test(params, response, context)
        if strict:
            return strict, strict
        if variants is None:
            variants = loose_variants(response)
        if any(self.test(params, variant, context) for variant in variants[1:] if variant.strip()):
            return strict, True
        return strict, strict

    def explain(self, params: P, response: str, context: CheckContext) -> str | None:
        """What was measured, for verdict reasons (e.g. '143 words'); None when there is nothing to add."""
        return None

    #: Parameters for listings when the type cannot sample its own.
    example_params: ClassVar[dict[str, Any] | None] = None

    def example(self, seed: int = 0) -> str:
        """A phrasing with sampled (or example) parameters, for listings."""
        if not self.sampleable:
            return self.describe(self.example_params)
        return self.describe(self.sample(random.Random(seed)))

    def rule(self, params: P | Mapping[str, Any] | None = None, *, text: str | None = None,
             rng: random.Random | None = None) -> Rule:
        """A verifiable `Rule` record of this type: parameters validated (ConfigError names the
        field), text given or one of the phrasings (`rng` picks it, else the first)."""
        parsed = self.parse(params)
        return Rule(
            text=text if text is not None else self.describe(parsed, rng=rng),
            kind="verifiable",
            type=self.id,
            params=parsed.model_dump(mode="json"),
            category=self.category,
        )

    def __repr__(self) -> str:
        return f"<RuleType {self.id}>"


_NO_CONTEXT = CheckContext()
