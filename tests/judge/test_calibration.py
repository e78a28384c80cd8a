"""Judge calibration figures on constructed cases."""

from __future__ import annotations

import pytest

from rolenrules.judge.calibration import agreement, cohen_kappa


@pytest.mark.parametrize(("a", "b", "expected"), [
    ([True, False, True, False], [True, False, True, False], 1.0),     # perfect agreement
    ([True, False, True, False], [False, True, False, True], -1.0),    # perfect disagreement
    # 2x2 table: both yes 20, a-yes/b-no 5, a-no/b-yes 10, both no 15 (n=50):
    # po = 0.7; pe = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = 0.4
    ([True] * 25 + [False] * 25, [True] * 20 + [False] * 5 + [True] * 10 + [False] * 15, 0.4),
    ([True, True, True], [True, True, True], None),                     # constant raters: undefined
    ([], [], None),
])
def test_cohen_kappa(a: list[bool], b: list[bool], expected: float | None) -> None:
    got = cohen_kappa(a, b)
    assert got == pytest.approx(expected) if expected is not None else got is None


def test_agreement_rates_on_constructed_verdicts() -> None:
    # reference (rule library) vs judge, 10 rules:
    # 4 reference fails: judge says pass on 1 (false pass), fail on 3
    # 5 reference passes: judge says fail on 1 (false fail), pass on 4
    # 1 reference pass the judge could not score; 1 rule the reference could not score
    reference = [False] * 4 + [True] * 5 + [True, None]
    judged = [True, False, False, False, False, True, True, True, True, None, True]
    result = agreement(reference, judged)
    assert result.n == 9
    assert result.accuracy == pytest.approx(7 / 9)
    assert result.false_pass_rate == pytest.approx(1 / 4)
    assert result.false_fail_rate == pytest.approx(1 / 5)
    assert (result.reference_fails, result.reference_passes, result.judge_unscored) == (4, 5, 1)
    # po = 7/9; judge yes-rate 5/9, reference yes-rate 5/9; pe = (25 + 16)/81
    pe = 41 / 81
    assert result.kappa == pytest.approx((7 / 9 - pe) / (1 - pe))


def test_agreement_needs_pairs() -> None:
    with pytest.raises(ValueError):
        agreement([True], [True, False])
    empty = agreement([None], [True])
    assert empty.n == 0 and empty.accuracy is None and empty.false_pass_rate is None
