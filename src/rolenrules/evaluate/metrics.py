"""Metrics of an evaluation run, with bootstrap confidence intervals, and paired comparisons.

The headline is the **pass-rate**: the share of examples whose every rule was followed. An
unscored rule is never a pass, so an example with one counts against the pass-rate; unscored
counts are reported beside every figure.

Intervals are percentile bootstrap intervals over *examples* (rules of one response are not
independent, so rule-level figures resample whole examples too), from a seeded numpy RNG:
the same results and seed give the same intervals on any machine.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rolenrules.evaluate.results import EvalResult, ScoredRule
from rolenrules.judge.calibration import agreement

DEFAULT_RESAMPLES = 2000
#: Resamples drawn per block, to bound memory on large benchmarks (block x n integers).
_BLOCK = 250


@dataclass(frozen=True)
class Estimate:
    """A ratio `k / n` with a confidence interval [low, high]; all None when n == 0."""

    value: float | None
    low: float | None
    high: float | None
    k: float
    n: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ratio_ci(numerators: Sequence[float], denominators: Sequence[float] | None = None, *,
             resamples: int = DEFAULT_RESAMPLES, seed: int = 0, confidence: float = 0.95) -> Estimate:
    """sum(numerators) / sum(denominators) with a percentile bootstrap interval over the units.

    Each unit (an example) contributes a numerator and a denominator (default 1: a plain
    proportion). Resampling whole units keeps within-example correlation in the interval.
    """
    num = np.asarray(numerators, dtype=float)
    den = np.ones_like(num) if denominators is None else np.asarray(denominators, dtype=float)
    if num.shape != den.shape:
        raise ValueError("numerators and denominators must have the same length")
    total = float(den.sum())
    if num.size == 0 or total == 0:
        return Estimate(None, None, None, float(num.sum()), total)
    value = float(num.sum()) / total
    if resamples <= 0:
        return Estimate(value, None, None, float(num.sum()), total)
    rng = np.random.default_rng(seed)
    stats = []
    for start in range(0, resamples, _BLOCK):
        size = min(_BLOCK, resamples - start)
        index = rng.integers(0, num.size, size=(size, num.size))
        d = den[index].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            stats.append(np.where(d > 0, num[index].sum(axis=1) / np.where(d > 0, d, 1), np.nan))
    draws = np.concatenate(stats)
    draws = draws[~np.isnan(draws)]
    alpha = (1 - confidence) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    return Estimate(value, float(low), float(high), float(num.sum()), total)


def _rule_counts(result: EvalResult, keep: Callable[[ScoredRule], bool] = lambda r: True) -> tuple[int, int, int]:
    """(rules followed, rules scored, rules) among the rules of one result that `keep` selects."""
    chosen = [r for r in result.rules if keep(r)]
    followed = sum(1 for r in chosen if r.passed is True)
    scored = sum(1 for r in chosen if r.passed is not None)
    return followed, scored, len(chosen)


def _core(results: Sequence[EvalResult], resamples: int, seed: int, confidence: float) -> dict[str, Any]:
    ci = {"resamples": resamples, "seed": seed, "confidence": confidence}
    counts = [_rule_counts(r) for r in results]
    followed = [c[0] for c in counts]
    return {
        "n_examples": len(results),
        "n_rules": sum(c[2] for c in counts),
        "pass_rate": ratio_ci([1.0 if r.passed else 0.0 for r in results], **ci).as_dict(),
        # Unscored rules count as not followed here; `rule_accuracy_scored` leaves them out.
        "rule_accuracy": ratio_ci(followed, [c[2] for c in counts], **ci).as_dict(),
        "rule_accuracy_scored": ratio_ci(followed, [c[1] for c in counts], **ci).as_dict(),
        "n_failed_examples": sum(1 for r in results if r.status == "fail"),
        "n_unscored_examples": sum(1 for r in results if r.status == "unscored"),
        "n_unscored_rules": sum(c[2] - c[1] for c in counts),
    }


def _rule_groups(results: Sequence[EvalResult], key: Callable[[ScoredRule], str], resamples: int, seed: int,
                 confidence: float) -> dict[str, dict[str, Any]]:
    labels = sorted({key(rule) for r in results for rule in r.rules})
    out = {}
    for label in labels:
        counts = [_rule_counts(r, lambda rule, wanted=label: key(rule) == wanted) for r in results]
        counts = [c for c in counts if c[2] > 0]
        out[label] = {
            "n_rules": sum(c[2] for c in counts),
            "n_unscored": sum(c[2] - c[1] for c in counts),
            "accuracy": ratio_ci([c[0] for c in counts], [c[2] for c in counts], resamples=resamples,
                                 seed=seed, confidence=confidence).as_dict(),
        }
    return out


def _example_groups(results: Sequence[EvalResult], key: Callable[[EvalResult], Hashable | None], resamples: int,
                    seed: int, confidence: float) -> dict[str, dict[str, Any]]:
    buckets: dict[Hashable, list[EvalResult]] = defaultdict(list)
    for r in results:
        label = key(r)
        if label is not None:
            buckets[label].append(r)
    return {str(label): _core(buckets[label], resamples, seed, confidence) for label in sorted(buckets, key=_sort_key)}


def _sort_key(label: Hashable) -> tuple[int, Any]:
    return (0, label) if isinstance(label, (int, float)) else (1, str(label))


def role_adherence(results: Sequence[EvalResult], *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                   confidence: float = 0.95) -> dict[str, Any] | None:
    """Share of judged examples that stayed in role; unscored role verdicts count against it."""
    judged = [r.role for r in results if r.role is not None]
    if not judged:
        return None
    est = ratio_ci([1.0 if v.passed else 0.0 for v in judged], resamples=resamples, seed=seed, confidence=confidence)
    return {**est.as_dict(), "n_unscored": sum(1 for v in judged if v.passed is None)}


def calibration(results: Sequence[EvalResult]) -> dict[str, Any] | None:
    """The judge's agreement with the rule library on verifiable rules, overall and per rule type."""
    pairs: list[tuple[ScoredRule, ScoredRule]] = []
    for r in results:
        reference = {rule.rule_id: rule for rule in r.rules if rule.kind == "verifiable"}
        pairs += [(reference[c.rule_id], c) for c in r.calibration if c.rule_id in reference]
    if not pairs:
        return None
    overall = agreement([ref.passed for ref, _ in pairs], [jud.passed for _, jud in pairs]).as_dict()
    by_type: dict[str, list[tuple[ScoredRule, ScoredRule]]] = defaultdict(list)
    for ref, jud in pairs:
        by_type[ref.type_label].append((ref, jud))
    overall["per_type"] = {t: agreement([a.passed for a, _ in ps], [b.passed for _, b in ps]).as_dict()
                           for t, ps in sorted(by_type.items())}
    return overall


def summarise(results: Sequence[EvalResult], *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
              confidence: float = 0.95) -> dict[str, Any]:
    """Every metric of one run (the body of `summary.json`, less run provenance)."""
    kw = {"resamples": resamples, "seed": seed, "confidence": confidence}
    summary = _core(results, **kw)
    summary["verdict_sources"] = dict(Counter(rule.source for r in results for rule in r.rules))
    summary["per_category"] = _rule_groups(results, lambda rule: rule.category, **kw)
    summary["per_type"] = _rule_groups(results, lambda rule: rule.type_label, **kw)
    summary["per_kind"] = _rule_groups(results, lambda rule: rule.kind, **kw)
    summary["per_rule_count"] = _example_groups(results, lambda r: len(r.rules), **kw)
    turns = {r.turn for r in results}
    summary["per_turn"] = _example_groups(results, lambda r: r.turn, **kw) if len(turns) > 1 else {}
    tasks = {r.task for r in results}
    summary["per_task"] = _example_groups(results, lambda r: r.task, **kw) if len(tasks) > 1 else {}
    summary["per_subset"] = _example_groups(results, lambda r: r.subset, **kw)
    summary["role_adherence"] = role_adherence(results, **kw)
    summary["calibration"] = calibration(results)
    summary["bootstrap"] = {"resamples": resamples, "seed": seed, "confidence": confidence, "unit": "example"}
    return summary


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs (a binomial test at p=0.5)."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    k = min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def _paired_diff_ci(a_num: np.ndarray, a_den: np.ndarray, b_num: np.ndarray, b_den: np.ndarray, resamples: int,
                    seed: int, confidence: float) -> tuple[float | None, float | None]:
    if a_num.size == 0 or resamples <= 0:
        return None, None
    rng = np.random.default_rng(seed)
    draws = []
    for start in range(0, resamples, _BLOCK):
        size = min(_BLOCK, resamples - start)
        index = rng.integers(0, a_num.size, size=(size, a_num.size))
        da, db = a_den[index].sum(axis=1), b_den[index].sum(axis=1)
        ok = (da > 0) & (db > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            diff = b_num[index].sum(axis=1) / np.where(ok, db, 1) - a_num[index].sum(axis=1) / np.where(ok, da, 1)
        draws.append(diff[ok])
    values = np.concatenate(draws)
    if values.size == 0:
        return None, None
    alpha = (1 - confidence) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return float(low), float(high)


def compare(a: Iterable[EvalResult], b: Iterable[EvalResult], *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
            confidence: float = 0.95) -> dict[str, Any]:
    """Run B against run A on the examples both answered (paired by id): differences B - A in
    pass-rate and rule accuracy with paired-bootstrap intervals, and McNemar's exact test on
    per-example pass/fail."""
    by_id_a = {r.id: r for r in a}
    by_id_b = {r.id: r for r in b}
    common = [i for i in by_id_a if i in by_id_b]
    pa = np.array([1.0 if by_id_a[i].passed else 0.0 for i in common])
    pb = np.array([1.0 if by_id_b[i].passed else 0.0 for i in common])
    ones = np.ones_like(pa)
    ca = [_rule_counts(by_id_a[i]) for i in common]
    cb = [_rule_counts(by_id_b[i]) for i in common]
    fa, ta = np.array([c[0] for c in ca], float), np.array([c[2] for c in ca], float)
    fb, tb = np.array([c[0] for c in cb], float), np.array([c[2] for c in cb], float)
    kw = {"resamples": resamples, "seed": seed, "confidence": confidence}
    pass_low, pass_high = _paired_diff_ci(pa, ones, pb, ones, **kw)
    acc_low, acc_high = _paired_diff_ci(fa, ta, fb, tb, **kw)
    a_only = int(((pa == 1) & (pb == 0)).sum())
    b_only = int(((pa == 0) & (pb == 1)).sum())

    def _ratio(num: np.ndarray, den: np.ndarray) -> float | None:
        return float(num.sum() / den.sum()) if den.sum() > 0 else None

    pass_a, pass_b = _ratio(pa, ones), _ratio(pb, ones)
    acc_a, acc_b = _ratio(fa, ta), _ratio(fb, tb)
    return {
        "n_paired": len(common),
        "only_in_a": len(by_id_a) - len(common),
        "only_in_b": len(by_id_b) - len(common),
        "pass_rate": {"a": pass_a, "b": pass_b,
                      "diff": None if pass_a is None or pass_b is None else pass_b - pass_a,
                      "low": pass_low, "high": pass_high},
        "rule_accuracy": {"a": acc_a, "b": acc_b,
                          "diff": None if acc_a is None or acc_b is None else acc_b - acc_a,
                          "low": acc_low, "high": acc_high},
        "mcnemar": {"a_pass_b_fail": a_only, "a_fail_b_pass": b_only, "p_value": mcnemar_exact(a_only, b_only)},
        "bootstrap": {"resamples": resamples, "seed": seed, "confidence": confidence, "unit": "example (paired)"},
    }
