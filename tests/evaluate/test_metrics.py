"""Metric arithmetic: pass-rate, accuracies, bootstrap intervals, paired comparison."""

from __future__ import annotations

import math

import pytest

from rolenrules.evaluate.metrics import compare, mcnemar_exact, ratio_ci, summarise

from _eval_builders import result, scored


@pytest.mark.parametrize(("num", "den", "value", "low", "high"), [
    ([1, 1, 1, 1], None, 1.0, 1.0, 1.0),          # no variation: a point interval
    ([0, 0, 0], None, 0.0, 0.0, 0.0),
    ([2, 0, 1], [2, 2, 2], 0.5, None, None),      # value only checked (interval below)
    ([], None, None, None, None),                 # nothing to estimate
    ([0, 0], [0, 0], None, None, None),           # no denominator
])
def test_ratio_ci_known_inputs(num: list[float], den: list[float] | None, value: float | None,
                               low: float | None, high: float | None) -> None:
    est = ratio_ci(num, den, resamples=500, seed=1)
    assert est.value == value
    if low is not None:
        assert (est.low, est.high) == (low, high)
    if value is None:
        assert est.low is None and est.high is None


def test_ratio_ci_matches_normal_approximation_for_a_proportion() -> None:
    # 400 examples, half pass: the 95% interval is about 0.5 +- 1.96 * sqrt(0.25 / 400) = +-0.049
    est = ratio_ci([1] * 200 + [0] * 200, resamples=4000, seed=7)
    half = 1.96 * math.sqrt(0.25 / 400)
    assert est.value == 0.5
    assert est.low == pytest.approx(0.5 - half, abs=0.01)
    assert est.high == pytest.approx(0.5 + half, abs=0.01)


def test_ratio_ci_is_seeded_and_resamples_units() -> None:
    num, den = [3, 0, 2, 1, 4, 0, 1], [4, 2, 2, 3, 4, 1, 2]
    a = ratio_ci(num, den, resamples=1000, seed=3)
    b = ratio_ci(num, den, resamples=1000, seed=3)
    c = ratio_ci(num, den, resamples=1000, seed=4)
    assert a == b
    assert a != c
    assert a.value == pytest.approx(11 / 18)
    assert a.low < a.value < a.high
    assert (a.k, a.n) == (11, 18)


def test_summary_pass_rate_counts_unscored_as_not_passed() -> None:
    results = [
        result("a", [scored(True), scored(True, category="style")]),                  # pass
        result("b", [scored(True), scored(False, category="style")]),                 # fail
        result("c", [scored(True), scored(None, category="style", kind="judged")]),   # unscored, not a pass
        result("d", [scored(True, category="content", kind="judged")]),               # pass
    ]
    s = summarise(results, resamples=200, seed=0)
    every_verdict_passed = sum(all(r.passed is True for r in x.rules) for x in results) / len(results)
    assert s["pass_rate"]["value"] == every_verdict_passed == 0.5
    assert (s["n_examples"], s["n_rules"]) == (4, 7)
    assert s["rule_accuracy"]["value"] == pytest.approx(5 / 7)          # unscored counts as not followed
    assert s["rule_accuracy_scored"]["value"] == pytest.approx(5 / 6)   # ... or is left out
    assert (s["n_failed_examples"], s["n_unscored_examples"], s["n_unscored_rules"]) == (1, 1, 1)
    assert s["verdict_sources"] == {"verifier": 5, "judge": 1, "unscored": 1}
    assert s["per_category"]["style"]["accuracy"]["value"] == pytest.approx(1 / 3)
    assert s["per_category"]["style"]["n_unscored"] == 1
    assert s["per_category"]["format"]["accuracy"]["value"] == 1.0
    assert set(s["per_type"]) == {"length:max_words", "judged"}
    assert s["per_kind"]["judged"]["n_rules"] == 2
    assert s["per_rule_count"]["2"]["pass_rate"]["value"] == pytest.approx(1 / 3)
    assert s["per_rule_count"]["1"]["pass_rate"]["value"] == 1.0
    assert s["per_turn"] == {}           # one turn only: no per-turn table
    assert s["role_adherence"] is None and s["calibration"] is None


def test_summary_per_turn_role_and_calibration() -> None:
    cal_ok = scored(True, source="judge")
    results = [
        result("a", [scored(True)], turn=1, role=True, calibration=[cal_ok]),
        result("b", [scored(False)], turn=3, role=False, calibration=[scored(True, source="judge")]),
        result("c", [scored(True)], turn=3, role=True, calibration=[scored(None)]),
    ]
    s = summarise(results, resamples=100)
    assert s["per_turn"]["1"]["pass_rate"]["value"] == 1.0
    assert s["per_turn"]["3"]["pass_rate"]["value"] == 0.5
    assert s["role_adherence"]["value"] == pytest.approx(2 / 3)
    cal = s["calibration"]
    assert (cal["n"], cal["judge_unscored"]) == (2, 1)
    assert cal["accuracy"] == 0.5
    assert cal["false_pass_rate"] == 1.0        # the one broken rule, the judge called followed
    assert cal["per_type"]["length:max_words"]["n"] == 2


@pytest.mark.parametrize(("a_only", "b_only", "p"), [
    (0, 0, 1.0),
    (1, 1, 1.0),
    (0, 5, 0.0625),            # 2 * 0.5**5
    (2, 8, 0.109375),          # 2 * (1 + 10 + 45) / 1024
    (10, 10, 1.0),
])
def test_mcnemar_exact(a_only: int, b_only: int, p: float) -> None:
    assert mcnemar_exact(a_only, b_only) == pytest.approx(p)


def test_compare_paired_runs() -> None:
    ids = [f"e{i}" for i in range(40)]
    # A passes the first 10; B passes the first 10 and the next 10: +25 points, all discordant in B's favour
    a = [result(i, [scored(n < 10)]) for n, i in enumerate(ids)]
    b = [result(i, [scored(n < 20)]) for n, i in enumerate(ids)] + [result("extra", [scored(True)])]
    c = compare(a, b, resamples=1000, seed=0)
    assert (c["n_paired"], c["only_in_a"], c["only_in_b"]) == (40, 0, 1)
    assert c["pass_rate"]["a"] == 0.25 and c["pass_rate"]["b"] == 0.5
    assert c["pass_rate"]["diff"] == pytest.approx(0.25)
    assert 0 < c["pass_rate"]["low"] < 0.25 < c["pass_rate"]["high"]
    assert c["mcnemar"] == {"a_pass_b_fail": 0, "a_fail_b_pass": 10, "p_value": pytest.approx(2 / 1024)}
    same = compare(a, a, resamples=200)
    assert same["pass_rate"]["diff"] == 0 and (same["pass_rate"]["low"], same["pass_rate"]["high"]) == (0, 0)
