"""Reports over one or more run folders: a self-contained HTML page and a markdown summary.

The HTML page needs no network to view: CSS, SVG bar charts and the little script that filters
the failed-examples table are inline. Runs sit side by side; when they share examples (by id,
or across ifeval and sys-ifeval by IFEval key), each later run is compared with the first:
paired differences, McNemar's test, and the examples that flipped, shown side by side. Every
figure carries its n.
"""

from __future__ import annotations

import html
import os
import re
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

#: Files in a run folder that hold the judge's prompts and raw replies, linked from the report when present.
TRANSCRIPT_FILES = ("transcripts.jsonl",)
#: The report file `rnr report DIR` writes into the (first) run folder when no --out is given.
REPORT_FILE = "report.html"
#: A rule type whose rules a trivial reply passes at least this often is marked as passing trivially.
TRIVIAL_MARK = 0.5

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

    @property
    def transcripts(self) -> Path | None:
        """The judge transcript file of this run, if it has one."""
        return next((self.path / f for f in TRANSCRIPT_FILES if (self.path / f).is_file()), None)


def load_run(path: str | Path, name: str | None = None, *, task: str | None = None) -> RunView:
    """A run folder; with `task`, only that task's results (e.g. `ifeval` of an ifeval+sys-ifeval run)."""
    path = Path(path)
    summary = load_summary(path)
    standard = read_standard(path / STANDARD_DIR) if (path / STANDARD_DIR).is_dir() else []
    results = read_results(path / RESULTS)
    if task is not None:
        tasks = sorted({r.task for r in results})
        results = [r for r in results if r.task == task]
        if not results:
            raise ConfigError(f"{path} has no results of task {task!r} (it has: {', '.join(tasks) or 'none'})")
    label = name or path.resolve().name
    return RunView(name=label if task is None else f"{label}:{task}", path=path, summary=summary,
                   results=results, standard=standard)


def load_runs(paths: Sequence[str | Path], tasks: Sequence[str | None] = ()) -> list[RunView]:
    if not paths:
        raise ConfigError("give at least one run folder")
    tasks = list(tasks) + [None] * (len(paths) - len(tasks))
    runs = [load_run(p, task=t) for p, t in zip(paths, tasks)]
    names = [r.name for r in runs]
    for i, run in enumerate(runs):
        if names.count(run.name) > 1:  # same folder names under different parents
            run.name = f"{Path(run.path).resolve().parent.name}/{run.name}"
        if [r.name for r in runs].count(run.name) > 1:
            run.name = f"{run.name} ({i + 1})"
    return runs


def compare_runs(a: RunView, b: RunView, *, resamples: int = metrics.DEFAULT_RESAMPLES,
                 seed: int = 0) -> dict[str, Any]:
    """`metrics.compare` of two loaded runs, with their names and a warning when their benchmarks differ."""
    result = metrics.compare(a.results, b.results, resamples=resamples, seed=seed)
    warning = bench_warning(a, b, result)
    return {"a": a.name, "b": b.name, **result, "warnings": [warning] if warning else []}


def bench_warning(a: RunView, b: RunView, compared: dict[str, Any]) -> str | None:
    """Say so when two compared runs did not run the same benchmark (name or contents)."""
    run_a, run_b = a.summary.get("run", {}), b.summary.get("run", {})
    print_a, print_b = run_a.get("bench_fingerprint"), run_b.get("bench_fingerprint")
    bench_a, bench_b = run_a.get("bench"), run_b.get("bench")
    tasks = compared.get("tasks", {})
    same_tasks = tasks.get("a") == tasks.get("b")
    if same_tasks and print_a and print_a == print_b:
        return None
    if bench_a == bench_b and same_tasks:
        if not (print_a and print_b):
            return None
        what = f"the benchmark {bench_a} differs between {a.name} and {b.name} (another --limit, or an edited file)"
    else:
        what = (f"{a.name} and {b.name} ran different benchmarks ({bench_a or '?'}: "
                f"{', '.join(tasks.get('a', [])) or '?'} vs {bench_b or '?'}: {', '.join(tasks.get('b', [])) or '?'})")
    return (f"{what}; compared on the {compared['n_paired']} examples paired by {compared['paired_on_label']} "
            f"({compared['only_in_a']} only in {a.name}, {compared['only_in_b']} only in {b.name})")


def comparisons(runs: Sequence[RunView], *, resamples: int = metrics.DEFAULT_RESAMPLES,
                seed: int = 0) -> list[dict[str, Any]]:
    """Each later run against the first, on the examples both answered."""
    out = []
    base = runs[0] if runs else None
    for other in runs[1:]:
        assert base is not None
        result = compare_runs(base, other, resamples=resamples, seed=seed)
        if result["n_paired"]:
            out.append(result)
    return out


# -- formatting --------------------------------------------------------------------------------


def pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def _count(value: float | None) -> str:
    return "?" if value is None else (f"{int(value)}" if float(value).is_integer() else f"{value:.1f}")


def est_text(est: dict[str, Any] | None, *, interval: bool = True) -> str:
    """`41.0% [35.2, 47.1] (n=100)`: value, interval in percent, and what it counts. A figure with
    nothing scored behind it is `n/a`, never 0%; a figure that does not apply is `–`."""
    if not est:
        return "–"
    n = est.get("n")
    if est.get("value") is None:
        return f"n/a (n={_count(n)}, none scored)" if n else "n/a (n=0)"
    shown = pct(est["value"])
    if interval and est.get("low") is not None:
        shown += f" [{100 * est['low']:.1f}, {100 * est['high']:.1f}]"
    return f"{shown} (n={_count(n)})"


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
    add(f"pass-rate of the trivial reply “{metrics.TRIVIAL_REPLY}”",
        lambda s: trivial_text(s.get("trivial_pass_rate")))
    add("role adherence", lambda s: est_text(s.get("role_adherence")))
    add("unscored rules / examples", lambda s: f"{s.get('n_unscored_rules', 0)} / {s.get('n_unscored_examples', 0)}")
    add("judge calibration κ (n; accuracy, false-pass)", _calibration_cell)
    return rows


def _calibration_cell(summary: dict[str, Any]) -> str:
    cal = summary.get("calibration")
    if not cal:
        return "–"
    return (f"{_num(cal.get('kappa'), 2)} (n={cal.get('n', 0)}; {pct(cal.get('accuracy'))}, "
            f"{pct(cal.get('false_pass_rate'))})")


def group_table(runs: Sequence[RunView], key: str, metric: str) -> tuple[list[str], list[list[str]]]:
    """Rows per group label of summary[key] (e.g. per_category), a cell per run."""
    labels = sorted({label for r in runs for label in r.summary.get(key, {})}, key=_label_order)
    rows = []
    for label in labels:
        cells = []
        for run in runs:
            group = run.summary.get(key, {}).get(label)
            cells.append(est_text(group.get(metric)) if group else "–")
        rows.append([label, *cells])
    return labels, rows


def trivial_text(est: dict[str, Any] | None) -> str:
    """The trivial reply's pass rate over a group's rules, marked when it passes them trivially."""
    if not est or est.get("value") is None:
        return "–" if not est or not est.get("n") else est_text(est, interval=False)
    return est_text(est, interval=False) + (" ⚠" if est["value"] >= TRIVIAL_MARK else "")


def type_table(runs: Sequence[RunView]) -> tuple[list[str], list[list[str]]]:
    """Rule accuracy per rule type, each run's figure beside the trivial reply's on the same rules."""
    labels = sorted({label for r in runs for label in r.summary.get("per_type", {})}, key=_label_order)
    header = ["rule type"]
    for run in runs:
        header += [run.name, f"{run.name}: “{metrics.TRIVIAL_REPLY}” passes"]
    rows = []
    for label in labels:
        row = [label]
        for run in runs:
            group = run.summary.get("per_type", {}).get(label)
            row += [est_text(group.get("accuracy")), trivial_text(group.get("trivial"))] if group else ["–", "–"]
        rows.append(row)
    return header, rows


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
    header, rows = type_table(runs)
    if rows:
        parts += ["", "### Rule accuracy per rule type", "", _md_table(header, rows), "",
                  f"Beside each figure, how often the trivial reply “{metrics.TRIVIAL_REPLY}” passes the same rules; "
                  f"⚠: it passes at least {TRIVIAL_MARK:.0%} of them, so a pass there means little."]
    ifeval = ifeval_rows(runs)
    if ifeval:
        parts += ["", "### IFEval (official scoring)", "", _md_table(IFEVAL_HEADER, ifeval)]
    if compared:
        parts += ["", "### Paired comparison (B − A)", "", comparison_table(compared)]
        warnings = [f"> **warning:** {w}" for c in compared for w in c.get("warnings", [])]
        parts += ["", *warnings] if warnings else []
        flips = flip_table(compared)
        if flips:
            parts += ["", "### Flipped examples", "", flips]
    std = standard_rows(runs, standard)
    if std[1]:
        parts += ["", "### Standard benchmarks", "", _md_table(std[0], std[1])]
    return "\n".join(parts) + "\n"


def ifeval_rows(runs: Sequence[RunView]) -> list[list[str]]:
    rows = []
    for run in runs:
        for task, fig in sorted((run.summary.get("ifeval") or {}).items()):
            prompts, instructions = f" (n={fig.get('prompts', '?')})", f" (n={fig.get('instructions', '?')})"
            rows.append([run.name, task, pct(fig.get("prompt_level_strict")) + prompts,
                         pct(fig.get("prompt_level_loose")) + prompts,
                         pct(fig.get("instruction_level_strict")) + instructions,
                         pct(fig.get("instruction_level_loose")) + instructions])
    return rows


IFEVAL_HEADER = ["run", "task", "prompt-level strict", "prompt-level loose", "instruction-level strict",
                 "instruction-level loose"]
COMPARISON_HEADER = ["A", "B", "paired (n)", "paired on", "pass-rate diff [95% CI]", "rule accuracy diff [95% CI]",
                     "McNemar p"]
FLIP_HEADER = ["A", "B", "paired (n)", "pass → fail", "fail → pass", "first flipped (pass → fail; fail → pass)"]


def comparison_table(compared: Sequence[dict[str, Any]]) -> str:
    """Paired comparisons (`comparison_json` results) as one markdown table."""
    return _md_table(COMPARISON_HEADER, [comparison_row(c) for c in compared])


def flip_table(compared: Sequence[dict[str, Any]]) -> str:
    """The examples that flipped in each comparison, as a markdown table ("" when none flipped)."""
    rows = [flip_row(c) for c in compared if c["mcnemar"]["a_pass_b_fail"] or c["mcnemar"]["a_fail_b_pass"]]
    return _md_table(FLIP_HEADER, rows) if rows else ""


def comparison_row(c: dict[str, Any]) -> list[str]:
    def diff(block: dict[str, Any]) -> str:
        if block.get("diff") is None:
            return "–"
        ci = "" if block.get("low") is None else f" [{100 * block['low']:+.1f}, {100 * block['high']:+.1f}]"
        return signed(block["diff"]) + ci

    return [c["a"], c["b"], str(c["n_paired"]), str(c.get("paired_on_label", "example id")), diff(c["pass_rate"]),
            diff(c["rule_accuracy"]), _num(c["mcnemar"]["p_value"], 3)]


def flip_row(c: dict[str, Any], shown: int = 8) -> list[str]:
    def keys(flips: list[dict[str, Any]]) -> str:
        text = ", ".join(str(f["key"]) for f in flips[:shown])
        return text + (f", … (+{len(flips) - shown})" if len(flips) > shown else "")

    worse, better = c["flips"]["a_pass_b_fail"], c["flips"]["a_fail_b_pass"]
    return [c["a"], c["b"], str(c["n_paired"]), str(len(worse)), str(len(better)),
            f"{keys(worse) or '–'}; {keys(better) or '–'}"]


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
    # Room for the longest label in full (about 6.6 px a character at 11 px): type ids such as
    # detectable_format:number_highlighted_sections must stay readable.
    left = max(120, int(6.6 * max(len(label) for label in labels)) + 16)
    bar, gap, width, right = 14, 10, 420, 150
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
        out.append(f'<text x="{left - 8}" y="{y + per_group / 2 - gap / 2 + 4:.1f}" class="label">'
                   f'{html.escape(label)}</text>')
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
                           f' (n={_count(est.get("n"))})</text>')
            else:
                out.append(f'<text x="{left + 4}" y="{top + bar - 4}" class="value">'
                           f'{html.escape(est_text(est))}</text>')
        y += per_group
    out.append("</svg>")
    return "".join(out)


def example_view(r: EvalResult) -> dict[str, Any]:
    """What the page shows of one example."""
    return {
        "id": r.id, "task": r.task, "status": r.status, "system": r.system or "",
        "conversation": [m for m in r.messages if m.role != "system"], "response": r.response,
        "failed": [x for x in r.rules if x.passed is False],
        "unscored": [x for x in r.rules if x.passed is None],
        "error": r.error,
    }


def _failures(run: RunView, limit: int) -> tuple[list[dict[str, Any]], int]:
    bad = [r for r in run.results if r.status != "pass"]
    return [example_view(r) for r in bad[:limit]], len(bad)


def _flip_blocks(runs: Sequence[RunView], compared: Sequence[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """Per comparison, the examples that flipped, each with both runs' sides."""
    by_name = {run.name: {r.id: r for r in run.results} for run in runs}
    blocks = []
    for c in compared:
        a, b = by_name.get(c["a"], {}), by_name.get(c["b"], {})
        items = []
        for direction, label in (("a_pass_b_fail", "pass → fail"), ("a_fail_b_pass", "fail → pass")):
            for flip in c["flips"][direction][:limit]:
                if flip["a"] in a and flip["b"] in b:
                    items.append({"key": flip["key"], "direction": direction, "label": label,
                                  "a": example_view(a[flip["a"]]), "b": example_view(b[flip["b"]])})
        blocks.append({"a": c["a"], "b": c["b"], "items": items, "worse": len(c["flips"]["a_pass_b_fail"]),
                       "better": len(c["flips"]["a_fail_b_pass"])})
    return blocks


def _judge_rows(runs: Sequence[RunView], base: Path | None) -> list[dict[str, Any]]:
    """Per run with a judge: who judged, its calibration against the exact checks, and its transcripts."""
    rows = []
    for run in runs:
        info = run.summary.get("run", {})
        cal = run.summary.get("calibration")
        if not info.get("judge") and not cal:
            continue
        link = None
        if run.transcripts is not None:
            target = run.transcripts.resolve()
            link = os.path.relpath(target, base.resolve()) if base is not None else target.as_uri()
        per_type = [{"type": t, **a} for t, a in ((cal or {}).get("per_type") or {}).items()]
        rows.append({"run": run.name, "judge": info.get("judge") or "–", "votes": info.get("judge_votes"),
                     "prompt": info.get("judge_prompt"), "cal": cal, "per_type": per_type, "transcripts": link})
    return rows


def _environment() -> jinja2.Environment:
    loader = jinja2.FunctionLoader(lambda name: (resources.files("rolenrules.evaluate") / "templates" / name)
                                   .read_text(encoding="utf-8"))
    env = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["est"] = est_text
    env.filters["pct"] = pct
    env.filters["trivial"] = trivial_text
    return env


def render_html(runs: Sequence[RunView], *, compared: Sequence[dict[str, Any]] = (),
                standard: Sequence[StandardResult] = (), max_failures: int = 200, title: str = "rnr evaluation report",
                location: Path | None = None) -> str:
    """The page. `location`: the folder the page will live in, so links to run files are relative."""
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
    std_header, std_rows = standard_rows(runs, standard)
    type_header, type_rows = type_table(runs)
    return _environment().get_template("report.html.j2").render(
        title=title, version=__version__, runs=runs, colours=[PALETTE[i % len(PALETTE)] for i in range(len(runs))],
        headline=headline_rows(runs), charts=charts, ifeval_header=IFEVAL_HEADER, ifeval=ifeval_rows(runs),
        comparison_header=COMPARISON_HEADER, comparisons=[comparison_row(c) for c in compared],
        warnings=[w for c in compared for w in c.get("warnings", [])], flips=_flip_blocks(runs, compared, max_failures),
        judges=_judge_rows(runs, location), type_header=type_header, type_rows=type_rows,
        trivial_reply=metrics.TRIVIAL_REPLY, trivial_mark=TRIVIAL_MARK,
        standard_header=std_header, standard_rows=std_rows, failures=failures, max_failures=max_failures,
        num=_num,
    )


def default_report_path(run_dirs: Sequence[str | Path]) -> Path:
    """Where `rnr report` writes without --out: `DIR/report.html` for one run; for several, in the
    first (the baseline) and named for the others, so it never replaces that run's own report."""
    first = Path(run_dirs[0])
    if len(run_dirs) == 1:
        return first / REPORT_FILE
    others = "+".join(re.sub(r"[^A-Za-z0-9._-]+", "_", Path(d).resolve().name) for d in run_dirs[1:])
    return first / f"report-vs-{others}.html"


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
        page = render_html(runs, compared=compared, standard=standard, max_failures=max_failures,
                           location=Path(out_html).parent)
        with atomic_path(out_html) as tmp:
            tmp.write_text(page, encoding="utf-8")
    if markdown is not None:
        with atomic_path(markdown) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return text


def comparison_json(a: str | Path, b: str | Path, *, resamples: int = metrics.DEFAULT_RESAMPLES, seed: int = 0,
                    task_a: str | None = None, task_b: str | None = None) -> dict[str, Any]:
    """Run B against run A (optionally one task of each): `compare_runs` as plain data."""
    runs = load_runs([a, b], [task_a, task_b])
    return compare_runs(runs[0], runs[1], resamples=resamples, seed=seed)


__all__ = ["REPORT_FILE", "TRANSCRIPT_FILES", "RunView", "bench_warning", "compare_runs", "comparison_json",
           "comparisons", "default_report_path", "load_run", "load_runs", "render_html", "render_markdown",
           "write_report"]
