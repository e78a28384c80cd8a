"""Reports over one or more run folders: a self-contained HTML page and a markdown summary.

The HTML page needs no network to view: CSS, SVG bar charts and the little script that filters
the failed-examples table are inline. Runs sit side by side; when they share examples, each
later run is compared with the first (paired differences and McNemar's test).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from rolenrules import __version__
from rolenrules.errors import ConfigError
from rolenrules.evaluate import metrics
from rolenrules.evaluate.results import EvalResult, read_results
from rolenrules.evaluate.runner import RESULTS, load_summary
from rolenrules.evaluate.standard import STANDARD_DIR, StandardResult, read_standard
from rolenrules.io import atomic_path

PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777")


@dataclass
class RunView:
    """One run folder, loaded for reporting."""

    name: str
    path: Path
    summary: dict[str, Any]
    results: list[EvalResult]
    standard: list[StandardResult] = field(default_factory=list)

    @property
    def model(self) -> str:
        return str(self.summary.get("run", {}).get("model") or "?")


def load_run(path: str | Path, name: str | None = None) -> RunView:
    path = Path(path)
    summary = load_summary(path)
    standard = read_standard(path / STANDARD_DIR) if (path / STANDARD_DIR).is_dir() else []
    return RunView(name=name or path.resolve().name, path=path, summary=summary,
                   results=read_results(path / RESULTS), standard=standard)


def load_runs(paths: Sequence[str | Path]) -> list[RunView]:
    if not paths:
        raise ConfigError("give at least one run folder")
    runs = [load_run(p) for p in paths]
    names = [r.name for r in runs]
    for i, run in enumerate(runs):
        if names.count(run.name) > 1:  # same folder names under different parents
            run.name = f"{Path(run.path).resolve().parent.name}/{run.name}"
        if [r.name for r in runs].count(run.name) > 1:
            run.name = f"{run.name} ({i + 1})"
    return runs


def comparisons(runs: Sequence[RunView], *, resamples: int = metrics.DEFAULT_RESAMPLES,
                seed: int = 0) -> list[dict[str, Any]]:
    """Each later run against the first, on the examples both answered."""
    out = []
    base = runs[0] if runs else None
    for other in runs[1:]:
        assert base is not None
        result = metrics.compare(base.results, other.results, resamples=resamples, seed=seed)
        if result["n_paired"]:
            out.append({"a": base.name, "b": other.name, **result})
    return out


# -- formatting --------------------------------------------------------------------------------


def pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def est_text(est: dict[str, Any] | None) -> str:
    """`41.0% [35.2, 47.1]` (value and interval, in percent)."""
    if not est or est.get("value") is None:
        return "–"
    if est.get("low") is None:
        return pct(est["value"])
    return f"{pct(est['value'])} [{100 * est['low']:.1f}, {100 * est['high']:.1f}]"


def signed(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:+.1f} pts"


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def headline_rows(runs: Sequence[RunView]) -> list[tuple[str, list[str]]]:
    rows: list[tuple[str, list[str]]] = []

    def add(label: str, cell: Any) -> None:
        rows.append((label, [cell(r.summary) for r in runs]))

    add("model", lambda s: str(s.get("run", {}).get("model") or "–"))
    add("judge", lambda s: str(s.get("run", {}).get("judge") or "–"))
    add("benchmark", lambda s: str(s.get("run", {}).get("bench") or "–"))
    add("examples", lambda s: f"{s.get('n_examples', 0)}" + ("" if s.get("complete", True) else " (incomplete)"))
    add("pass-rate (all rules followed)", lambda s: est_text(s.get("pass_rate")))
    add("rule accuracy", lambda s: est_text(s.get("rule_accuracy")))
    add("rule accuracy, scored rules only", lambda s: est_text(s.get("rule_accuracy_scored")))
    add("role adherence", lambda s: est_text(s.get("role_adherence")))
    add("unscored rules / examples", lambda s: f"{s.get('n_unscored_rules', 0)} / {s.get('n_unscored_examples', 0)}")
    add("judge calibration κ (accuracy, false-pass)", _calibration_cell)
    return rows


def _calibration_cell(summary: dict[str, Any]) -> str:
    cal = summary.get("calibration")
    if not cal:
        return "–"
    return f"{_num(cal.get('kappa'), 2)} ({pct(cal.get('accuracy'))}, {pct(cal.get('false_pass_rate'))})"


def group_table(runs: Sequence[RunView], key: str, metric: str) -> tuple[list[str], list[list[str]]]:
    """Rows per group label of summary[key] (e.g. per_category), a cell per run."""
    labels = sorted({label for r in runs for label in r.summary.get(key, {})}, key=_label_order)
    rows = []
    for label in labels:
        cells = []
        for run in runs:
            group = run.summary.get(key, {}).get(label)
            n = _group_n(group, metric) if group else None
            cells.append(f"{est_text(group.get(metric))} (n={n})" if group else "–")
        rows.append([label, *cells])
    return labels, rows


def _group_n(group: dict[str, Any], metric: str) -> Any:
    """Examples behind a pass-rate, rules behind an accuracy."""
    return group.get("n_examples" if metric == "pass_rate" else "n_rules", "?")


def _label_order(label: str) -> tuple[int, Any]:
    return (0, int(label)) if str(label).isdigit() else (1, str(label))


# -- markdown ------------------------------------------------------------------------------------


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def esc(cell: str) -> str:
        return str(cell).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(runs: Sequence[RunView], *, compared: Sequence[dict[str, Any]] = (),
                    standard: Sequence[StandardResult] = ()) -> str:
    names = [r.name for r in runs]
    parts = ["## rnr evaluation", "", _md_table(["", *names], [[label, *cells] for label, cells in headline_rows(runs)])]
    for title, key, metric in (("Rule accuracy per category", "per_category", "accuracy"),
                               ("Pass-rate per number of rules", "per_rule_count", "pass_rate"),
                               ("Pass-rate per turn", "per_turn", "pass_rate"),
                               ("Pass-rate per task", "per_task", "pass_rate"),
                               ("Pass-rate per subset", "per_subset", "pass_rate")):
        labels, rows = group_table(runs, key, metric)
        if labels:
            parts += ["", f"### {title}", "", _md_table(["", *names], rows)]
    ifeval = ifeval_rows(runs)
    if ifeval:
        parts += ["", "### IFEval (official scoring)", "", _md_table(["run", "task", "prompt strict", "prompt loose",
                                                                      "instruction strict", "instruction loose"], ifeval)]
    if compared:
        parts += ["", "### Paired comparison (B − A)", "", comparison_table(compared)]
    std = standard_rows(runs, standard)
    if std[1]:
        parts += ["", "### Standard benchmarks", "", _md_table(std[0], std[1])]
    return "\n".join(parts) + "\n"


def ifeval_rows(runs: Sequence[RunView]) -> list[list[str]]:
    rows = []
    for run in runs:
        for task, fig in sorted((run.summary.get("ifeval") or {}).items()):
            rows.append([run.name, task, pct(fig.get("prompt_level_strict")), pct(fig.get("prompt_level_loose")),
                         pct(fig.get("instruction_level_strict")), pct(fig.get("instruction_level_loose"))])
    return rows


def comparison_table(compared: Sequence[dict[str, Any]]) -> str:
    """Paired comparisons (`comparison_json` results) as one markdown table."""
    return _md_table(["A", "B", "paired", "pass-rate diff [95% CI]", "rule accuracy diff [95% CI]", "McNemar p"],
                     [comparison_row(c) for c in compared])


def comparison_row(c: dict[str, Any]) -> list[str]:
    def diff(block: dict[str, Any]) -> str:
        if block.get("diff") is None:
            return "–"
        ci = "" if block.get("low") is None else f" [{100 * block['low']:+.1f}, {100 * block['high']:+.1f}]"
        return signed(block["diff"]) + ci

    return [c["a"], c["b"], str(c["n_paired"]), diff(c["pass_rate"]), diff(c["rule_accuracy"]),
            _num(c["mcnemar"]["p_value"], 3)]


def standard_rows(runs: Sequence[RunView], extra: Sequence[StandardResult]) -> tuple[list[str], list[list[str]]]:
    """A metric x model table of lm-eval / AlpacaEval figures (from run folders and --extra files)."""
    results = [(r.name, s) for r in runs for s in r.standard] + [(s.model, s) for s in extra]
    columns: list[str] = []
    for label, _ in results:
        if label not in columns:
            columns.append(label)
    cells: dict[tuple[str, str], str] = {}
    metrics_order: list[str] = []
    for label, res in results:
        for metric, value in res.metrics.items():
            if metric not in metrics_order:
                metrics_order.append(metric)
            err = res.stderr.get(metric)
            shown = f"{value:.4g}" + (f" ± {err:.2g}" if err is not None else "")
            cells[(metric, label)] = shown
    rows = [[m, *[cells.get((m, c), "–") for c in columns]] for m in metrics_order]
    return ["metric", *columns], rows


# -- HTML ----------------------------------------------------------------------------------------


def bar_chart(title: str, runs: Sequence[RunView], key: str, metric: str, *, max_groups: int = 40) -> str:
    """An inline SVG: one row of bars per group, one bar per run, with the interval as a whisker."""
    labels = sorted({label for r in runs for label in r.summary.get(key, {})}, key=_label_order)[:max_groups]
    if not labels:
        return ""
    bar, gap, left, width, right = 14, 10, 190, 420, 140
    per_group = bar * len(runs) + gap
    height = 24 + per_group * len(labels) + 20
    out = [f'<svg class="chart" role="img" aria-label="{html.escape(title)}" width="{left + width + right}" '
           f'height="{height}" viewBox="0 0 {left + width + right} {height}" xmlns="http://www.w3.org/2000/svg">']
    for tick in range(0, 101, 25):
        x = left + width * tick / 100
        out.append(f'<line x1="{x:.1f}" y1="18" x2="{x:.1f}" y2="{height - 18}" class="grid"/>'
                   f'<text x="{x:.1f}" y="12" class="tick">{tick}%</text>')
    y = 24
    for label in labels:
        short = label if len(label) <= 28 else label[:27] + "…"
        out.append(f'<text x="{left - 8}" y="{y + per_group / 2 - gap / 2 + 4:.1f}" class="label">'
                   f'<title>{html.escape(label)}</title>{html.escape(short)}</text>')
        for i, run in enumerate(runs):
            group = run.summary.get(key, {}).get(label) or {}
            est = group.get(metric) or {}
            colour = PALETTE[i % len(PALETTE)]
            top = y + i * bar
            if est.get("value") is not None:
                w = width * est["value"]
                tip = html.escape(f"{run.name}: {est_text(est)}")
                out.append(f'<rect x="{left}" y="{top + 1}" width="{w:.1f}" height="{bar - 3}" fill="{colour}">'
                           f'<title>{tip}</title></rect>')
                if est.get("low") is not None:
                    lo, hi = left + width * est["low"], left + width * est["high"]
                    mid = top + (bar - 3) / 2 + 1
                    out.append(f'<line x1="{lo:.1f}" y1="{mid:.1f}" x2="{hi:.1f}" y2="{mid:.1f}" class="ci"/>'
                               f'<line x1="{lo:.1f}" y1="{mid - 4:.1f}" x2="{lo:.1f}" y2="{mid + 4:.1f}" class="ci"/>'
                               f'<line x1="{hi:.1f}" y1="{mid - 4:.1f}" x2="{hi:.1f}" y2="{mid + 4:.1f}" class="ci"/>')
                out.append(f'<text x="{left + width + 6}" y="{top + bar - 4}" class="value">{pct(est["value"])}'
                           f' (n={_group_n(group, metric)})</text>')
            else:
                out.append(f'<text x="{left + 4}" y="{top + bar - 4}" class="value">–</text>')
        y += per_group
    out.append("</svg>")
    return "".join(out)


def _failures(run: RunView, limit: int) -> tuple[list[dict[str, Any]], int]:
    bad = [r for r in run.results if r.status != "pass"]
    rows = []
    for r in bad[:limit]:
        rows.append({
            "id": r.id, "task": r.task, "status": r.status, "system": r.system or "",
            "conversation": [m for m in r.messages if m.role != "system"], "response": r.response,
            "failed": [x for x in r.rules if x.passed is False],
            "unscored": [x for x in r.rules if x.passed is None],
            "error": r.error,
        })
    return rows, len(bad)


def _environment() -> jinja2.Environment:
    loader = jinja2.FunctionLoader(lambda name: (resources.files("rolenrules.evaluate") / "templates" / name)
                                   .read_text(encoding="utf-8"))
    env = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["est"] = est_text
    env.filters["pct"] = pct
    return env


def render_html(runs: Sequence[RunView], *, compared: Sequence[dict[str, Any]] = (),
                standard: Sequence[StandardResult] = (), max_failures: int = 200, title: str = "rnr evaluation report") -> str:
    charts = []
    for chart_title, key, metric in (("Rule accuracy per category", "per_category", "accuracy"),
                                     ("Rule accuracy per rule type", "per_type", "accuracy"),
                                     ("Pass-rate per number of rules", "per_rule_count", "pass_rate"),
                                     ("Pass-rate per turn", "per_turn", "pass_rate"),
                                     ("Pass-rate per task", "per_task", "pass_rate"),
                                     ("Pass-rate per subset", "per_subset", "pass_rate")):
        svg = bar_chart(chart_title, runs, key, metric)
        if svg:
            charts.append({"title": chart_title, "svg": Markup(svg)})
    failures = []
    for i, run in enumerate(runs):
        rows, total = _failures(run, max_failures)
        failures.append({"run": run.name, "index": i, "rows": rows, "total": total})
    calibration = []
    for run in runs:
        cal = run.summary.get("calibration")
        if cal:
            calibration.append({"run": run.name, **cal})
    std_header, std_rows = standard_rows(runs, standard)
    return _environment().get_template("report.html.j2").render(
        title=title, version=__version__, runs=runs, colours=[PALETTE[i % len(PALETTE)] for i in range(len(runs))],
        headline=headline_rows(runs), charts=charts, ifeval=ifeval_rows(runs),
        comparisons=[comparison_row(c) for c in compared], calibration=calibration,
        standard_header=std_header, standard_rows=std_rows, failures=failures, max_failures=max_failures,
        num=_num,
    )


def write_report(run_dirs: Sequence[str | Path], out_html: str | Path | None = None, *,
                 markdown: str | Path | None = None, extras: Sequence[str | Path] = (), max_failures: int = 200,
                 resamples: int = metrics.DEFAULT_RESAMPLES, seed: int = 0) -> str:
    """Write the HTML report (and a markdown file) for run folders; returns the markdown text.

    `extras` are lm-eval `results_*.json` / AlpacaEval `leaderboard.csv` files (or folders) to show
    beside the RNR figures; files under each run's `standard/` folder are picked up by themselves.
    """
    runs = load_runs(run_dirs)
    standard = [s for path in extras for s in read_standard(path)]
    compared = comparisons(runs, resamples=resamples, seed=seed)
    text = render_markdown(runs, compared=compared, standard=standard)
    if out_html is not None:
        page = render_html(runs, compared=compared, standard=standard, max_failures=max_failures)
        with atomic_path(out_html) as tmp:
            tmp.write_text(page, encoding="utf-8")
    if markdown is not None:
        with atomic_path(markdown) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return text


def comparison_json(a: str | Path, b: str | Path, *, resamples: int = metrics.DEFAULT_RESAMPLES,
                    seed: int = 0) -> dict[str, Any]:
    runs = load_runs([a, b])
    return {"a": runs[0].name, "b": runs[1].name,
            **metrics.compare(runs[0].results, runs[1].results, resamples=resamples, seed=seed)}


__all__ = ["RunView", "comparison_json", "comparisons", "load_run", "load_runs", "render_html", "render_markdown",
           "write_report"]
