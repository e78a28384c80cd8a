"""How far to trust the judge: its agreement with exact checks on rules code can verify.

Ask the judge about *verifiable* rules too, then compare its verdicts with the rule library's.
Accuracy alone flatters a judge when most rules pass, so Cohen's kappa (agreement beyond chance)
and the false-pass rate (the judge calls a broken rule followed) are reported beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def cohen_kappa(a: Sequence[bool], b: Sequence[bool]) -> float | None:
    """Cohen's kappa of two raters' yes/no labels. None when undefined: no pairs, or both raters
    gave one constant label (chance agreement is then 1, and kappa divides by zero)."""
    if len(a) != len(b):
        raise ValueError("both raters need the same number of labels")
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b)) / n
    a_yes, b_yes = sum(a) / n, sum(b) / n
    chance = a_yes * b_yes + (1 - a_yes) * (1 - b_yes)
    if chance >= 1.0:
        return None
    return (observed - chance) / (1 - chance)


@dataclass(frozen=True)
class Agreement:
    """The judge against a reference (the rule library) on the same rules.

    `n` counts rules both scored; `judge_unscored` counts rules the reference scored but the
    judge did not (they are left out of the rates, and reported so that they are not hidden).
    """

    n: int
    accuracy: float | None
    kappa: float | None
    false_pass_rate: float | None
    false_fail_rate: float | None
    reference_fails: int
    reference_passes: int
    judge_unscored: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def agreement(reference: Sequence[bool | None], judged: Sequence[bool | None]) -> Agreement:
    """Agreement of `judged` with `reference`, paired by position (None = not scored)."""
    if len(reference) != len(judged):
        raise ValueError("reference and judged verdicts must be paired")
    pairs = [(r, j) for r, j in zip(reference, judged) if r is not None and j is not None]
    unscored = sum(1 for r, j in zip(reference, judged) if r is not None and j is None)
    ref = [r for r, _ in pairs]
    jud = [j for _, j in pairs]
    fails = [j for r, j in pairs if not r]
    passes = [j for r, j in pairs if r]
    return Agreement(
        n=len(pairs),
        accuracy=(sum(r == j for r, j in pairs) / len(pairs)) if pairs else None,
        kappa=cohen_kappa(ref, jud),
        false_pass_rate=(sum(fails) / len(fails)) if fails else None,
        false_fail_rate=(sum(not j for j in passes) / len(passes)) if passes else None,
        reference_fails=len(fails),
        reference_passes=len(passes),
        judge_unscored=unscored,
    )
