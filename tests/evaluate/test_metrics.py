"""Metric arithmetic: pass-rate, accuracies, Wilson and Newcombe intervals, pairing, trivial baseline."""

from __future__ import annotations

import math

import pytest
from scipy.stats import binomtest

from rolenrules.records import Verdict

from rolenrules.evaluate.metrics import (
    TRIVIAL_REPLY, compare, effective_size, mcnemar_exact, pair_results, paired_difference_ci, proportion, ratio_ci,
    summarise, trivial_flags, wilson_interval,
)

from _eval_builders import result, scored


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (0, 5), (3, 10), (7, 7), (50, 100), (200, 400), (1, 540)])
def test_wilson_matches_scipy(k: int, n: int) -> None:
    reference = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(k, n)
    assert low == pytest.approx(reference.low, abs=1e-9)
    assert high == pytest.approx(reference.high, abs=1e-9)


@pytest.mark.parametrize(("num", "den", "value"), [
    ([1], None, 1.0),                              # n = 1: not a point interval at 100%
    ([0], None, 0.0),
    ([1, 1, 1, 1], None, 1.0),                     # every example agrees: still an honest interval
    ([0, 0, 0], None, 0.0),
    ([2, 0, 1], [2, 2, 2], 0.5),
])
def test_small_samples_never_collapse(num: list[float], den: list[float] | None, value: float) -> None:
    est = ratio_ci(num, den)
    assert est.value == value
    assert est.low is not None and est.high is not None
    assert est.low <= value <= est.high
    assert est.high - est.low > 0.2                # a few examples cannot pin a rate down


@pytest.mark.parametrize(("num", "den"), [([], None), ([0, 0], [0, 0])])
def test_nothing_to_estimate_is_na(num: list[float], den: list[float] | None) -> None:
    est = ratio_ci(num, den)
    assert (est.value, est.low, est.high) == (None, None, None)
    assert proportion(0, 0).value is None


def test_proportion_is_wilson_with_counts() -> None:
    est = ratio_ci([1, 0, 1, 1])
    assert (est.k, est.n, est.value) == (3, 4, 0.75)
    assert (est.low, est.high) == pytest.approx(wilson_interval(3, 4))


@pytest.mark.parametrize(("num", "den", "expected"), [
    # every example follows exactly half its rules: no between-example variance, rules count fully
    ([1, 1, 1, 1], [2, 2, 2, 2], 8.0),
    # all-or-nothing examples of 3 rules: the rules of one example are one piece of evidence
    ([3] * 5 + [0] * 5, [3] * 10, 9.0),
    # a ratio of exactly 0 or 1 has no variance estimate: each example counts once
    ([2, 3], [2, 3], 2.0),
    ([0, 0, 0], [4, 1, 2], 3.0),
    ([1], [3], 1.0),                               # one example
])
def test_effective_size(num: list[float], den: list[float], expected: float) -> None:
    assert effective_size(num, den) == pytest.approx(expected)


def test_clustered_rule_accuracy_is_wider_than_independent_rules() -> None:
    num, den = [3] * 5 + [0] * 5, [3] * 10
    clustered = ratio_ci(num, den)
    independent = proportion(15, 30)
    assert clustered.value == independent.value == 0.5
    assert (clustered.low, clustered.high) == pytest.approx(wilson_interval(0.5 * 9, 9))
    assert clustered.high - clustered.low > independent.high - independent.low


def test_summary_pass_rate_counts_unscored_as_not_passed() -> None:
    results = [
        result("a", [scored(True), scored(True, category="style")]),                  # pass
        result("b", [scored(True), scored(False, category="style")]),                 # fail
        result("c", [scored(True), scored(None, category="style", kind="judged")]),   # unscored, not a pass
        result("d", [scored(True, category="content", kind="judged")]),               # pass
    ]
    s = summarise(results)
    every_verdict_passed = sum(all(r.passed is True for r in x.rules) for x in results) / len(results)
    assert s["pass_rate"]["value"] == every_verdict_passed == 0.5
    assert (s["pass_rate"]["k"], s["pass_rate"]["n"]) == (2, 4)
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
    assert s["intervals"]["method"] == "wilson"


def test_nothing_scored_is_na_not_zero() -> None:
    results = [result("a", [scored(None, kind="judged")]),
               result("b", [scored(None, kind="judged"), scored(None, kind="judged", category="style")])]
    s = summarise(results)
    for figure in ("pass_rate", "rule_accuracy", "rule_accuracy_scored"):
        assert s[figure]["value"] is None, figure
    assert (s["pass_rate"]["n"], s["rule_accuracy"]["n"]) == (2, 3)     # the counts are still reported
    assert s["per_category"]["format"]["accuracy"]["value"] is None
    assert s["per_type"]["judged"]["accuracy"]["value"] is None
    # ... while one scored rule among them makes the figures real again
    s = summarise([*results, result("c", [scored(False)])])
    assert s["pass_rate"]["value"] == 0.0 and s["rule_accuracy"]["value"] == 0.0


def test_role_adherence_with_nothing_scored_is_na() -> None:
    results = [result("a", [scored(True)]), result("b", [scored(True)])]
    unscored_role = [r.model_copy(update={"role": Verdict(rule_id="role", passed=None, source="unscored")})
                     for r in results]
    role = summarise(unscored_role)["role_adherence"]
    assert role["value"] is None and role["n"] == 2 and role["n_unscored"] == 2


def test_summary_per_turn_role_and_calibration() -> None:
    cal_ok = scored(True, source="judge")
    results = [
        result("a", [scored(True)], turn=1, role=True, calibration=[cal_ok]),
        result("b", [scored(False)], turn=3, role=False, calibration=[scored(True, source="judge")]),
        result("c", [scored(True)], turn=3, role=True, calibration=[scored(None)]),
    ]
    s = summarise(results)
    assert s["per_turn"]["1"]["pass_rate"]["value"] == 1.0
    assert s["per_turn"]["3"]["pass_rate"]["value"] == 0.5
    assert s["role_adherence"]["value"] == pytest.approx(2 / 3)
    cal = s["calibration"]
    assert (cal["n"], cal["judge_unscored"]) == (2, 1)
    assert cal["accuracy"] == 0.5
    assert cal["false_pass_rate"] == 1.0        # the one broken rule, the judge called followed
    assert cal["per_type"]["length:max_words"]["n"] == 2


# -- the trivial baseline ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("type", "params", "expected"), [
    ("punctuation:no_comma", {}, True),                                              # asks for nothing
    ("style:no_first_person", {}, True),
    ("length_constraints:number_words", {"relation": "less than", "num_words": 50}, True),
    ("length_constraints:number_words", {"relation": "at least", "num_words": 300}, False),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, False),
    ("length_constraints:number_words", {}, None),      # stored without its parameters: unknown
    ("no_such:type", {}, None),
])
def test_trivial_flags_per_rule(type: str, params: dict, expected: bool | None) -> None:
    rule = scored(True, type=type).model_copy(update={"params": params})
    assert trivial_flags(result("a", [rule])) == [expected]


def test_trivial_flags_leave_judged_rules_unknown() -> None:
    assert trivial_flags(result("a", [scored(True, kind="judged")])) == [None]


def test_trivial_baseline_per_type_beside_the_model() -> None:
    no_comma = scored(True, type="punctuation:no_comma", category="style")
    long = scored(True, type="length_constraints:number_words", category="length").model_copy(
        update={"params": {"relation": "at least", "num_words": 300}})
    results = [result(f"e{i}", [no_comma, long]) for i in range(4)] + [result("j", [scored(True, kind="judged")])]
    s = summarise(results)
    trivial = s["per_type"]["punctuation:no_comma"]["trivial"]
    assert (trivial["value"], trivial["k"], trivial["n"]) == (1.0, 4, 4)
    assert s["per_type"]["length_constraints:number_words"]["trivial"]["value"] == 0.0
    assert s["per_type"]["judged"]["trivial"]["value"] is None          # judged rules: the judge would be needed
    # the trivial reply passes no example whole (the 300-word rule), over the 4 fully checkable ones
    assert (s["trivial_pass_rate"]["value"], s["trivial_pass_rate"]["n"]) == (0.0, 4)
    assert s["intervals"]["trivial_reply"] == TRIVIAL_REPLY


# -- two runs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("a_only", "b_only", "p"), [
    (0, 0, 1.0),
    (1, 1, 1.0),
    (0, 5, 0.0625),            # 2 * 0.5**5
    (2, 8, 0.109375),          # 2 * (1 + 10 + 45) / 1024
    (10, 10, 1.0),
])
def test_mcnemar_exact(a_only: int, b_only: int, p: float) -> None:
    assert mcnemar_exact(a_only, b_only) == pytest.approx(p)


def test_newcombe_paired_interval_matches_published_example() -> None:
    # Cavo et al. (2012), Fagerland, Lydersen & Laake, Statistical Analysis of Contingency Tables, ch. 8:
    # the Newcombe square-and-add interval for the paired table [[59, 6], [16, 80]] is -0.0621 (-0.1186 to -0.0046).
    low, high = paired_difference_ci(both=59, b_only=6, a_only=16, neither=80)
    assert (round(low, 4), round(high, 4)) == (-0.1186, -0.0046)


@pytest.mark.parametrize(("both", "b_only", "a_only", "neither"), [
    (6, 0, 0, 6),      # no discordant pairs: a bootstrap says [0, 0]
    (1, 0, 0, 0),      # a single pair
    (0, 3, 0, 0),
    (0, 0, 0, 12),
])
def test_newcombe_interval_stays_informative_at_small_n(both: int, b_only: int, a_only: int, neither: int) -> None:
    n = both + b_only + a_only + neither
    diff = (b_only - a_only) / n
    low, high = paired_difference_ci(both, b_only, a_only, neither)
    assert -1 <= low <= diff <= high <= 1
    assert high - low > 0.1


def _ifeval(task: str, key: int, passed: bool):
    r = result(f"{task}-{key}", [scored(passed)], task=task)
    return r.model_copy(update={"metadata": {"ifeval": {"key": key}}})


@pytest.mark.parametrize(("a", "b", "key", "n"), [
    # the same benchmark: paired on example id
    ([("ifeval", 1), ("ifeval", 2)], [("ifeval", 2), ("ifeval", 3)], "id", 1),
    # ifeval against sys-ifeval: ids differ by task, IFEval keys match
    ([("ifeval", 1), ("ifeval", 2), ("ifeval", 3)], [("sys-ifeval", 1), ("sys-ifeval", 3)], "ifeval-key", 2),
    # a run holding both tasks has every key twice: those cannot pair by key, ids pair instead
    ([("ifeval", 1), ("sys-ifeval", 1)], [("sys-ifeval", 1)], "id", 1),
    ([("ifeval", 1), ("sys-ifeval", 1)], [("ifeval", 2)], "id", 0),
])
def test_pairing_key(a: list[tuple[str, int]], b: list[tuple[str, int]], key: str, n: int) -> None:
    matched = pair_results([_ifeval(t, k, True) for t, k in a], [_ifeval(t, k, True) for t, k in b])
    assert (matched["key"], len(matched["pairs"])) == (key, n)
    assert (matched["only_in_a"], matched["only_in_b"]) == (len(a) - n, len(b) - n)


def test_compare_pairs_ifeval_with_sys_ifeval_and_lists_flips() -> None:
    a = [_ifeval("ifeval", k, passed=k < 6) for k in range(10)]
    b = [_ifeval("sys-ifeval", k, passed=k < 3 or k == 8) for k in range(10)]
    c = compare(a, b, resamples=200)
    assert (c["n_paired"], c["paired_on"]) == (10, "ifeval-key")
    assert c["paired_on_label"].startswith("IFEval key")
    assert c["tasks"] == {"a": ["ifeval"], "b": ["sys-ifeval"]}
    assert c["pass_rate"]["diff"] == pytest.approx(0.4 - 0.6)
    assert c["mcnemar"]["a_pass_b_fail"] == 3 and c["mcnemar"]["a_fail_b_pass"] == 1
    assert [f["key"] for f in c["flips"]["a_pass_b_fail"]] == [3, 4, 5]
    assert c["flips"]["a_fail_b_pass"] == [{"key": 8, "a": "ifeval-8", "b": "sys-ifeval-8"}]


def test_compare_paired_runs() -> None:
    ids = [f"e{i}" for i in range(40)]
    # A passes the first 10; B passes the first 10 and the next 10: +25 points, all discordant in B's favour
    a = [result(i, [scored(n < 10)]) for n, i in enumerate(ids)]
    b = [result(i, [scored(n < 20)]) for n, i in enumerate(ids)] + [result("extra", [scored(True)])]
    c = compare(a, b, resamples=1000, seed=0)
    assert (c["n_paired"], c["only_in_a"], c["only_in_b"], c["paired_on"]) == (40, 0, 1, "id")
    assert c["pass_rate"]["a"] == 0.25 and c["pass_rate"]["b"] == 0.5
    assert c["pass_rate"]["diff"] == pytest.approx(0.25)
    assert (c["pass_rate"]["low"], c["pass_rate"]["high"]) == pytest.approx(
        paired_difference_ci(both=10, b_only=10, a_only=0, neither=20))
    assert 0 < c["pass_rate"]["low"] < 0.25 < c["pass_rate"]["high"]
    assert 0 < c["rule_accuracy"]["low"] < 0.25 < c["rule_accuracy"]["high"]
    assert c["mcnemar"] == {"a_pass_b_fail": 0, "a_fail_b_pass": 10, "p_value": pytest.approx(2 / 1024)}
    same = compare(a, a, resamples=200)
    assert same["pass_rate"]["diff"] == 0
    assert same["pass_rate"]["low"] < 0 < same["pass_rate"]["high"]    # 40 pairs cannot prove "no change"
    assert same["flips"] == {"a_pass_b_fail": [], "a_fail_b_pass": []}
    assert math.isclose(compare(a, b, resamples=300, seed=5)["rule_accuracy"]["low"],
                        compare(a, b, resamples=300, seed=5)["rule_accuracy"]["low"])
