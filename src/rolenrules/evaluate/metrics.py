"""Metrics of an evaluation run, with confidence intervals, and paired comparisons.

The headline is the **pass-rate**: the share of examples whose every rule was followed. An
unscored rule is never a pass, so an example with one counts against the pass-rate; unscored
counts are reported beside every figure. A figure with nothing scored behind it is n/a
(`value` None), never 0%.

Intervals (closed form, so the same results give the same intervals anywhere):

* a share of examples (pass-rate, role adherence, per-group pass-rates): the Wilson score
  interval. A percentile bootstrap collapses to [0, 0] or [100, 100] whenever every example
  agrees (always at n = 1), claiming certainty that a handful of examples cannot give; Wilson
  keeps near-nominal coverage down to small n and stays inside [0, 1].
* rule accuracy (rules followed / rules): rules of one response are not independent, so the
  Wilson interval is taken at the effective sample size, the number of rules divided by Kish's
  design effect estimated from the between-example variance of the ratio (clamped at 1, so
  clustering can only widen the interval).
* a paired difference of pass-rates (`compare`): Newcombe's hybrid score interval for paired
  proportions (Newcombe 1998, method 10), built from the two Wilson intervals and the
  correlation of the pairs. It stays informative with few or no discordant pairs, where a paired
  bootstrap returns [0, 0], and agrees with the single-run intervals shown beside it.
* a paired difference of rule accuracies: a paired bootstrap over examples (seeded). A
  difference of two clustered ratios has no score interval of that kind; resampling whole
  examples keeps both the within-example and the between-run correlation.

Each verifiable rule is also checked against a trivial reply (`TRIVIAL_REPLY`): a rule type
whose rules a content-free reply already passes ("no code blocks", "no first person", "at most
100 words") says little when the model passes it too.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

from rolenrules.evaluate.results import EvalResult, ScoredRule
from rolenrules.judge.calibration import agreement

DEFAULT_RESAMPLES = 2000
#: Resamples drawn per block, to bound memory on large benchmarks (block x n integers).
_BLOCK = 250
#: The reference reply of the trivial baseline: a content-free, off-topic answer. Not the empty
#: string: the rule library fails every rule on an empty reply (as IFEval's checker does), so an
#: empty reference would mark nothing; one neutral word passes exactly the rules that ask for nothing.
TRIVIAL_REPLY = "Sure."


@dataclass(frozen=True)
class Estimate:
    """A ratio `k / n` with a confidence interval [low, high]; value and interval are None (n/a)
    when nothing is scored (n == 0, or no verdict behind the figure)."""

    value: float | None
    low: float | None
    high: float | None
    k: float
    n: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(k: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion k / n. `n` may be fractional (an effective
    sample size), which is why this is written out rather than taken from scipy's binomtest."""
    if n <= 0:
        raise ValueError("n must be positive")
    z = _z(confidence)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(k: float, n: float, *, confidence: float = 0.95) -> Estimate:
    """k successes out of n independent trials, with a Wilson interval."""
    if n <= 0:
        return Estimate(None, None, None, float(k), float(n))
    low, high = wilson_interval(k, n, confidence)
    return Estimate(k / n, low, high, float(k), float(n))


def effective_size(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """The number of independent trials a clustered ratio sum(num) / sum(den) is worth.

    sum(den) / design effect, where the design effect compares the linearised between-unit
    variance of the ratio with a binomial one. Where that variance cannot be estimated (one
    unit, or a ratio of exactly 0 or 1) each unit counts once, the cautious choice.
    """
    import numpy as np  # here, not at module level: a generation run never needs it
    num = np.asarray(numerators, dtype=float)
    den = np.asarray(denominators, dtype=float)
    keep = den > 0
    num, den = num[keep], den[keep]
    units, total = int(num.size), float(den.sum())
    if units == 0:
        return 0.0
    p = float(num.sum()) / total
    if units < 2 or p <= 0.0 or p >= 1.0:
        return float(units)
    residuals = num - p * den
    variance = units / (units - 1) * float((residuals ** 2).sum()) / total ** 2
    if variance <= 0.0:
        return total
    return min(total, p * (1 - p) / variance)


def ratio_ci(numerators: Sequence[float], denominators: Sequence[float] | None = None, *,
             confidence: float = 0.95) -> Estimate:
    """sum(numerators) / sum(denominators) over units (examples), with a Wilson interval.

    Each unit contributes a numerator and a denominator (default 1: a plain proportion, one
    trial per unit). With several trials per unit (rules of one response), the interval is taken
    at the effective sample size (`effective_size`), so correlated rules do not pass for
    independent evidence.
    """
    import numpy as np  # here, not at module level: a generation run never needs it
    num = np.asarray(numerators, dtype=float)
    den = np.ones_like(num) if denominators is None else np.asarray(denominators, dtype=float)
    if num.shape != den.shape:
        raise ValueError("numerators and denominators must have the same length")
    k, total = float(num.sum()), float(den.sum())
    if num.size == 0 or total == 0:
        return Estimate(None, None, None, k, total)
    if np.all((den == 1) | (den == 0)):
        return proportion(k, total, confidence=confidence)
    n_eff = effective_size(num, den)
    low, high = wilson_interval(k / total * n_eff, n_eff, confidence)
    return Estimate(k / total, low, high, k, total)


def _not_scored(est: Estimate) -> Estimate:
    """The same counts with no figure: nothing behind it was scored."""
    return Estimate(None, None, None, est.k, est.n)


# -- the trivial baseline ---------------------------------------------------------------------------


Flags = list[bool | None]


def trivial_flags(result: EvalResult) -> Flags:
    """Per rule of `result` (aligned): does the trivial reply pass it? None where it cannot be
    known: judged rules, and rules stored without their parameters (runs before they were kept).
    A check that cannot decide on the trivial reply counts as not passed."""
    from rolenrules.errors import RnrError
    from rolenrules.rules import CheckContext, check_rule

    context = CheckContext(system_prompt=result.system,
                           user_turns=[m.content for m in result.messages if m.role == "user"])
    flags: Flags = []
    for rule in result.rules:
        if rule.kind != "verifiable" or not rule.type:
            flags.append(None)
            continue
        try:
            flags.append(check_rule(rule.as_rule(), TRIVIAL_REPLY, context=context).passed is True)
        except (RnrError, KeyError, ValueError):  # unknown type, or params missing or invalid
            flags.append(None)
    return flags


# -- one run ----------------------------------------------------------------------------------------


Item = tuple[EvalResult, Flags]


def _rule_counts(item: Item, keep: Callable[[ScoredRule], bool] = lambda r: True) -> tuple[int, int, int, int, int]:
    """(followed, scored, rules, trivially passed, trivially checkable) among the rules `keep` selects."""
    result, flags = item
    chosen = [(r, f) for r, f in zip(result.rules, flags) if keep(r)]
    followed = sum(1 for r, _ in chosen if r.passed is True)
    scored = sum(1 for r, _ in chosen if r.passed is not None)
    trivial = sum(1 for _, f in chosen if f is True)
    checkable = sum(1 for _, f in chosen if f is not None)
    return followed, scored, len(chosen), trivial, checkable


def _core(items: Sequence[Item], confidence: float) -> dict[str, Any]:
    counts = [_rule_counts(item) for item in items]
    results = [r for r, _ in items]
    scored = sum(c[1] for c in counts)
    pass_rate = ratio_ci([1.0 if r.passed else 0.0 for r in results], confidence=confidence)
    rule_accuracy = ratio_ci([c[0] for c in counts], [c[2] for c in counts], confidence=confidence)
    # The empty reply passes an example when it passes every rule; known only where every rule is checkable.
    known = [c for c in counts if c[2] > 0 and c[4] == c[2]]
    return {
        "n_examples": len(results),
        "n_rules": sum(c[2] for c in counts),
        "pass_rate": (pass_rate if scored or not counts else _not_scored(pass_rate)).as_dict(),
        # Unscored rules count as not followed here; `rule_accuracy_scored` leaves them out.
        "rule_accuracy": (rule_accuracy if scored else _not_scored(rule_accuracy)).as_dict(),
        "rule_accuracy_scored": ratio_ci([c[0] for c in counts], [c[1] for c in counts],
                                         confidence=confidence).as_dict(),
        "trivial_pass_rate": ratio_ci([1.0 if c[3] == c[2] else 0.0 for c in known],
                                      confidence=confidence).as_dict(),
        "n_failed_examples": sum(1 for r in results if r.status == "fail"),
        "n_unscored_examples": sum(1 for r in results if r.status == "unscored"),
        "n_unscored_rules": sum(c[2] - c[1] for c in counts),
    }


def _rule_groups(items: Sequence[Item], key: Callable[[ScoredRule], str],
                 confidence: float) -> dict[str, dict[str, Any]]:
    labels = sorted({key(rule) for r, _ in items for rule in r.rules})
    out = {}
    for label in labels:
        counts = [_rule_counts(item, lambda rule, wanted=label: key(rule) == wanted) for item in items]
        counts = [c for c in counts if c[2] > 0]
        accuracy = ratio_ci([c[0] for c in counts], [c[2] for c in counts], confidence=confidence)
        out[label] = {
            "n_rules": sum(c[2] for c in counts),
            "n_unscored": sum(c[2] - c[1] for c in counts),
            "accuracy": (accuracy if sum(c[1] for c in counts) else _not_scored(accuracy)).as_dict(),
            # The same rules against the trivial reply (n: the rules it could be checked on).
            "trivial": ratio_ci([c[3] for c in counts], [c[4] for c in counts], confidence=confidence).as_dict(),
        }
    return out


def _example_groups(items: Sequence[Item], key: Callable[[EvalResult], Hashable | None],
                    confidence: float) -> dict[str, dict[str, Any]]:
    buckets: dict[Hashable, list[Item]] = defaultdict(list)
    for item in items:
        label = key(item[0])
        if label is not None:
            buckets[label].append(item)
    return {str(label): _core(buckets[label], confidence) for label in sorted(buckets, key=_sort_key)}


def _sort_key(label: Hashable) -> tuple[int, Any]:
    return (0, label) if isinstance(label, (int, float)) else (1, str(label))


def role_adherence(results: Sequence[EvalResult], *, confidence: float = 0.95) -> dict[str, Any] | None:
    """Share of judged examples that stayed in role; unscored role verdicts count against it
    (n/a when none was scored)."""
    judged = [r.role for r in results if r.role is not None]
    if not judged:
        return None
    est = ratio_ci([1.0 if v.passed else 0.0 for v in judged], confidence=confidence)
    unscored = sum(1 for v in judged if v.passed is None)
    if unscored == len(judged):
        est = _not_scored(est)
    return {**est.as_dict(), "n_unscored": unscored}


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
    """Every metric of one run (the body of `summary.json`, less run provenance).

    Single-run intervals are closed-form (Wilson); `resamples` and `seed` are kept in the
    signature for callers that pass them to `compare` too, and recorded, but not used here.
    """
    del resamples, seed
    items = [(r, trivial_flags(r)) for r in results]
    summary = _core(items, confidence)
    summary["verdict_sources"] = dict(Counter(rule.source for r in results for rule in r.rules))
    summary["per_category"] = _rule_groups(items, lambda rule: rule.category, confidence)
    summary["per_type"] = _rule_groups(items, lambda rule: rule.type_label, confidence)
    summary["per_kind"] = _rule_groups(items, lambda rule: rule.kind, confidence)
    summary["per_rule_count"] = _example_groups(items, lambda r: len(r.rules), confidence)
    turns = {r.turn for r in results}
    summary["per_turn"] = _example_groups(items, lambda r: r.turn, confidence) if len(turns) > 1 else {}
    tasks = {r.task for r in results}
    summary["per_task"] = _example_groups(items, lambda r: r.task, confidence) if len(tasks) > 1 else {}
    summary["per_subset"] = _example_groups(items, lambda r: r.subset, confidence)
    summary["role_adherence"] = role_adherence(results, confidence=confidence)
    summary["calibration"] = calibration(results)
    summary["intervals"] = {"method": "wilson", "confidence": confidence, "unit": "example",
                            "rule_level": "wilson at the design-effect-adjusted number of rules",
                            "trivial_reply": TRIVIAL_REPLY}
    return summary


# -- two runs ---------------------------------------------------------------------------------------


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs (a binomial test at p=0.5)."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    k = min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_difference_ci(both: int, b_only: int, a_only: int, neither: int,
                         confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Newcombe's hybrid score interval (1998, method 10) for p_B - p_A on paired yes/no outcomes.

    `both`: pairs where A and B pass; `b_only`: B passes, A fails; `a_only`: A passes, B fails;
    `neither`: both fail.
    """
    n = both + b_only + a_only + neither
    if n == 0:
        return None, None
    b_pass, a_pass = both + b_only, both + a_only
    p1, p2 = b_pass / n, a_pass / n
    l1, u1 = wilson_interval(b_pass, n, confidence)
    l2, u2 = wilson_interval(a_pass, n, confidence)
    # The correlation of the two proportions, continuity-corrected towards 0 as in Newcombe's method 10.
    margins = b_pass * (n - b_pass) * a_pass * (n - a_pass)
    phi = 0.0
    if margins > 0:
        cross = both * neither - b_only * a_only
        if cross > n / 2:
            phi = (cross - n / 2) / math.sqrt(margins)
        elif cross < 0:
            phi = cross / math.sqrt(margins)
    diff = p1 - p2
    low = diff - math.sqrt(max(0.0, (p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2)))
    high = diff + math.sqrt(max(0.0, (p2 - l2) ** 2 + (u1 - p1) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1)))
    return max(-1.0, low), min(1.0, high)


def _paired_bootstrap_ci(a_num: np.ndarray, a_den: np.ndarray, b_num: np.ndarray, b_den: np.ndarray,
                         resamples: int, seed: int, confidence: float) -> tuple[float | None, float | None]:
    import numpy as np  # here, not at module level: a generation run never needs it
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


def _ifeval_key(result: EvalResult) -> Hashable | None:
    block = result.metadata.get("ifeval")
    key = block.get("key") if isinstance(block, dict) else None
    return key if isinstance(key, (str, int)) else None


#: How examples of two runs can be matched, tried in order; the key pairing the most examples wins
#: (ties keep the earlier). IFEval's key pairs `ifeval` with `sys-ifeval` (same prompt, constraints
#: moved into the system message), whose example ids differ by task.
PAIR_KEYS: dict[str, tuple[str, Callable[[EvalResult], Hashable | None]]] = {
    "id": ("example id", lambda r: r.id),
    "ifeval-key": ("IFEval key (metadata.ifeval.key)", _ifeval_key),
}


def _index(results: Sequence[EvalResult], key: Callable[[EvalResult], Hashable | None]) -> dict[Hashable, EvalResult]:
    """key -> result, leaving out results with no key and keys that occur more than once (ambiguous)."""
    counts = Counter(key(r) for r in results)
    return {k: r for r in results if (k := key(r)) is not None and counts[k] == 1}


def pair_results(a: Iterable[EvalResult], b: Iterable[EvalResult]) -> dict[str, Any]:
    """Match the examples of two runs: {"key": name in PAIR_KEYS, "label", "pairs": [(key, a, b)],
    "only_in_a", "only_in_b"} with the key that pairs the most."""
    a, b = list(a), list(b)
    best: dict[str, Any] | None = None
    for name, (label, key) in PAIR_KEYS.items():
        index_a, index_b = _index(a, key), _index(b, key)
        pairs = [(k, r, index_b[k]) for k, r in index_a.items() if k in index_b]
        if best is None or len(pairs) > len(best["pairs"]):
            best = {"key": name, "label": label, "pairs": pairs,
                    "only_in_a": len(a) - len(pairs), "only_in_b": len(b) - len(pairs)}
    assert best is not None
    return best


def compare(a: Iterable[EvalResult], b: Iterable[EvalResult], *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
            confidence: float = 0.95) -> dict[str, Any]:
    """Run B against run A on the examples both answered, paired by example id or, across tasks
    such as ifeval and sys-ifeval, by a shared key (`PAIR_KEYS`): differences B - A in pass-rate
    (Newcombe interval) and rule accuracy (paired bootstrap), McNemar's exact test on per-example
    pass/fail, and the examples that flipped."""
    import numpy as np  # here, not at module level: a generation run never needs it
    matched = pair_results(a, b)
    pairs = matched["pairs"]
    pa = np.array([1.0 if x.passed else 0.0 for _, x, _ in pairs])
    pb = np.array([1.0 if y.passed else 0.0 for _, _, y in pairs])
    ca = [_rule_counts((x, [None] * len(x.rules))) for _, x, _ in pairs]
    cb = [_rule_counts((y, [None] * len(y.rules))) for _, _, y in pairs]
    fa, ta = np.array([c[0] for c in ca], float), np.array([c[2] for c in ca], float)
    fb, tb = np.array([c[0] for c in cb], float), np.array([c[2] for c in cb], float)
    both = int(((pa == 1) & (pb == 1)).sum())
    a_only = int(((pa == 1) & (pb == 0)).sum())
    b_only = int(((pa == 0) & (pb == 1)).sum())
    neither = len(pairs) - both - a_only - b_only
    pass_low, pass_high = paired_difference_ci(both, b_only, a_only, neither, confidence)
    acc_low, acc_high = _paired_bootstrap_ci(fa, ta, fb, tb, resamples, seed, confidence)

    def _ratio(num: np.ndarray, den: np.ndarray) -> float | None:
        return float(num.sum() / den.sum()) if den.sum() > 0 else None

    def _flips(a_passed: bool) -> list[dict[str, Any]]:
        return [{"key": k, "a": x.id, "b": y.id} for k, x, y in pairs if x.passed == a_passed and y.passed != a_passed]

    pass_a, pass_b = _ratio(pa, np.ones_like(pa)), _ratio(pb, np.ones_like(pb))
    acc_a, acc_b = _ratio(fa, ta), _ratio(fb, tb)
    return {
        "n_paired": len(pairs),
        "paired_on": matched["key"],
        "paired_on_label": matched["label"],
        "only_in_a": matched["only_in_a"],
        "only_in_b": matched["only_in_b"],
        "tasks": {"a": sorted({x.task for _, x, _ in pairs}), "b": sorted({y.task for _, _, y in pairs})},
        "pass_rate": {"a": pass_a, "b": pass_b,
                      "diff": None if pass_a is None or pass_b is None else pass_b - pass_a,
                      "low": pass_low, "high": pass_high},
        "rule_accuracy": {"a": acc_a, "b": acc_b,
                          "diff": None if acc_a is None or acc_b is None else acc_b - acc_a,
                          "low": acc_low, "high": acc_high},
        "mcnemar": {"a_pass_b_fail": a_only, "a_fail_b_pass": b_only, "p_value": mcnemar_exact(a_only, b_only)},
        "flips": {"a_pass_b_fail": _flips(True), "a_fail_b_pass": _flips(False)},
        "intervals": {"pass_rate": "newcombe hybrid score (paired)", "rule_accuracy": "paired bootstrap over examples",
                      "resamples": resamples, "seed": seed, "confidence": confidence},
    }
