"""Reports: markdown and HTML from run folders, the report/compare commands, and the page in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from _eval_builders import result, run_cli, scored, write_run

from rolenrules.evaluate.metrics import TRIVIAL_REPLY
from rolenrules.evaluate.report import write_report

LONG_TYPE = "detectable_content:number_placeholders"


def _runs(tmp_path: Path) -> tuple[Path, Path]:
    base = [result(f"e{i}", [scored(i % 2 == 0, category="format"), scored(i % 3 != 0, category="style", kind="judged",
                                                                         text="Stay polite <b>always</b>")],
                   role=i % 4 != 0, response=f"reply {i} <script>alert('x')</script>") for i in range(12)]
    tuned = [result(f"e{i}", [scored(True, category="format"), scored(i % 5 != 0, category="style", kind="judged",
                                                                      text="Stay polite <b>always</b>")],
                    role=True, response=f"tuned reply {i}") for i in range(12)]
    tuned[0] = result("e0", [scored(True), scored(None, kind="judged", text="Stay polite <b>always</b>")])
    return write_run(tmp_path / "base", base), write_run(tmp_path / "tuned", tuned, model="hf:./tuned")


def _ifeval_runs(tmp_path: Path) -> tuple[Path, Path]:
    """An ifeval and a sys-ifeval run over the same IFEval keys, with real rule types and parameters."""
    def run(task: str, passing: set[int]) -> list:
        rules = lambda k: [scored(k in passing, type="punctuation:no_comma", category="style"),  # noqa: E731
                           scored(k in passing, type=LONG_TYPE, category="content", params={"num_placeholders": 2})]
        ifeval = lambda k: {"key": k, "prompt": f"prompt {k}", "instruction_id_list": [r.type for r in rules(k)],  # noqa: E731
                            "kwargs": [r.params for r in rules(k)]}
        return [result(f"{task}-{k}", rules(k), task=task, response=f"{task} answer {k}",
                       metadata={"ifeval": ifeval(k)}) for k in range(1000, 1010)]

    user = write_run(tmp_path / "ifeval", run("ifeval", {1000, 1001, 1002, 1003, 1004}), bench="ifeval",
                     fingerprint="aaaa")
    system = write_run(tmp_path / "sys-ifeval", run("sys-ifeval", {1000, 1001, 1009}), bench="sys-ifeval",
                       fingerprint="bbbb")
    return user, system


def _tables(text: str) -> list[list[str]]:
    """Markdown table rows (cells) of a report."""
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("|---")]


def test_markdown_side_by_side_with_paired_comparison(tmp_path: Path) -> None:
    base, tuned = _runs(tmp_path)
    text = write_report([base, tuned], markdown=tmp_path / "r.md")
    assert (tmp_path / "r.md").read_text() == text
    header = next(line for line in text.splitlines() if line.startswith("|  |"))
    assert header == "|  | base | tuned |"
    summary = json.loads((base / "summary.json").read_text())
    assert f"{100 * summary['pass_rate']['value']:.1f}%" in text
    assert "### Rule accuracy per category" in text
    assert re.search(r"\| base \| tuned \| 12 \| example id \| \+\d+\.\d pts \[", text)
    assert "| unscored rules / examples | 0 / 0 | 1 / 1 |" in text
    assert "warning" not in text                     # the same benchmark: nothing to warn about


@pytest.mark.parametrize("runs", [_runs, _ifeval_runs])
def test_every_percentage_states_its_n(tmp_path: Path, runs) -> None:  # type: ignore[no-untyped-def]
    base, tuned = runs(tmp_path)
    text = write_report([base, tuned])
    cells = [cell for row in _tables(text) for cell in row if re.search(r"\d\.\d%", cell)]
    assert len(cells) >= 16
    for cell in cells:
        assert re.search(r"\(n=\d+\)", cell), cell
    summary = json.loads((tuned / "summary.json").read_text())
    rule_acc = summary["rule_accuracy_scored"]
    assert f"(n={int(rule_acc['n'])})" in next(row for row in _tables(text) if row[0].startswith("rule accuracy, scored"))[2]


def test_nothing_scored_shows_na(tmp_path: Path) -> None:
    judged_only = [result(f"e{i}", [scored(None, kind="judged")]) for i in range(3)]
    text = write_report([write_run(tmp_path / "nojudge", judged_only)])
    row = next(r for r in _tables(text) if r[0].startswith("pass-rate (all"))
    assert row[1] == "n/a (n=3, none scored)"
    assert "0.0%" not in text


def test_trivially_passed_rule_types_are_marked(tmp_path: Path) -> None:
    user, _ = _ifeval_runs(tmp_path)
    text = write_report([user])
    rows = {r[0]: r for r in _tables(text)}
    # "no commas" passes on a one-word reply every time; two placeholders never do
    assert rows["punctuation:no_comma"][2] == "100.0% (n=10) ⚠"
    assert rows[LONG_TYPE][2] == "0.0% (n=10)"
    assert rows[f"pass-rate of the trivial reply “{TRIVIAL_REPLY}”"][1] == "0.0% (n=10)"
    write_report([user], tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert re.search(r'<td class="num trivial">100\.0% \(n=10\) ⚠</td>', page)


def test_ifeval_and_sys_ifeval_pair_by_key_with_flips_and_a_warning(tmp_path: Path) -> None:
    user, system = _ifeval_runs(tmp_path)
    text = write_report([user, system], tmp_path / "r.html")
    comparison = next(r for r in _tables(text) if r[:2] == ["ifeval", "sys-ifeval"] and len(r) == 7)
    assert comparison[2:4] == ["10", "IFEval key (metadata.ifeval.key)"]
    assert comparison[4].startswith("-20.0 pts [")
    flips = next(r for r in _tables(text) if r[:2] == ["ifeval", "sys-ifeval"] and len(r) == 6)
    assert flips[3:] == ["3", "1", "1002, 1003, 1004; 1009"]
    assert "> **warning:** ifeval and sys-ifeval ran different benchmarks" in text
    page = (tmp_path / "r.html").read_text()
    assert 'class="warning"' in page and "ran different benchmarks" in page
    # each flipped example shows both runs' replies side by side
    flipped = re.findall(r'<details class="example flip" data-direction="(\w+)">(.*?)</details>', page, re.S)
    assert [d for d, _ in flipped] == ["a_pass_b_fail"] * 3 + ["a_fail_b_pass"]
    assert all("ifeval answer" in body and "sys-ifeval answer" in body for _, body in flipped)


def test_rule_type_labels_are_never_cut(tmp_path: Path) -> None:
    user, system = _ifeval_runs(tmp_path)
    write_report([user, system], tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    labels = re.findall(r'<text x="[\d.]+" y="[\d.]+" class="label">([^<]*)</text>', page)
    assert LONG_TYPE in labels
    assert not any(label.endswith("…") for label in labels)


def test_judge_section_with_kappa_n_and_transcripts_link(tmp_path: Path) -> None:
    calibrated = [result(f"e{i}", [scored(i % 2 == 0)], calibration=[scored(i % 3 != 0, source="judge")])
                  for i in range(6)]
    with_transcripts = write_run(tmp_path / "runs" / "judged", calibrated)
    (with_transcripts / "transcripts.jsonl").write_text('{"prompt": "…", "reply": "…"}\n')
    plain = write_run(tmp_path / "runs" / "plain", calibrated)
    out = tmp_path / "reports" / "r.html"
    text = write_report([with_transcripts, plain], out)
    row = next(r for r in _tables(text) if r[0].startswith("judge calibration"))
    assert re.fullmatch(r"-?\d\.\d\d \(n=6; .*\)", row[1])
    page = out.read_text()
    links = re.findall(r'<a class="transcripts" href="([^"]+)">', page)
    assert links == ["../runs/judged/transcripts.jsonl"]          # relative to the page; none for the plain run
    assert (out.parent / links[0]).resolve() == (with_transcripts / "transcripts.jsonl").resolve()


def test_html_is_self_contained_and_escapes_content(tmp_path: Path) -> None:
    base, tuned = _runs(tmp_path)
    write_report([base, tuned], tmp_path / "r.html", max_failures=3)
    page = (tmp_path / "r.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)       # nothing fetched from a network
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page   # responses are escaped
    assert "Stay polite &lt;b&gt;always&lt;/b&gt;" in page
    assert page.count('<svg class="chart"') >= 3
    assert page.count('class="example"') <= 3 + 3
    assert "showing the first 3" in page


def test_cli_report_and_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, tuned = _runs(tmp_path)
    assert run_cli("report", str(base), str(tuned), "--out", str(tmp_path / "r.html"), "--bootstrap", "100") == 0
    assert (tmp_path / "r.html").exists()
    assert "pass-rate (all rules followed)" in capsys.readouterr().out
    assert run_cli("compare", str(base), str(tuned), "--json", "--bootstrap", "100") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["n_paired"] == 12 and data["a"] == "base" and data["paired_on"] == "id"
    assert run_cli("report", str(tmp_path / "nope")) == 2
    assert "not an evaluation run folder" in capsys.readouterr().err


@pytest.mark.parametrize(("runs", "expected"), [
    (["base"], "base/report.html"),
    (["base", "tuned"], "base/report-vs-tuned.html"),       # never replaces the baseline's own report
])
def test_cli_report_without_out_writes_into_the_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           runs: list[str], expected: str) -> None:
    _runs(tmp_path)
    assert run_cli("report", *[str(tmp_path / r) for r in runs], "--bootstrap", "50") == 0
    assert (tmp_path / expected).is_file()
    assert f"wrote {tmp_path / expected}" in capsys.readouterr().err


def test_cli_compare_ifeval_with_sys_ifeval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    user, system = _ifeval_runs(tmp_path)
    assert run_cli("compare", str(user), str(system), "--bootstrap", "100") == 0
    captured = capsys.readouterr()
    assert "paired 10 examples on IFEval key (metadata.ifeval.key); 0 only in A, 0 only in B" in captured.out
    assert "| ifeval | sys-ifeval | 10 | 3 | 1 | 1002, 1003, 1004; 1009 |" in captured.out
    assert "warning:" in captured.err and "different benchmarks" in captured.err


def test_cli_compare_two_tasks_of_one_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    user, system = _ifeval_runs(tmp_path)
    both = [json.loads(line) for d in (user, system) for line in (d / "results.jsonl").read_text().splitlines()]
    from rolenrules.evaluate.results import EvalResult

    combined = write_run(tmp_path / "both", [EvalResult.model_validate(r) for r in both], bench="ifeval+sys-ifeval",
                         fingerprint="cccc")
    # the whole run against itself pairs by id: every IFEval key is there twice
    assert run_cli("compare", str(combined), str(combined), "--json", "--bootstrap", "50") == 0
    assert json.loads(capsys.readouterr().out)["paired_on"] == "id"
    assert run_cli("compare", str(combined), str(combined), "--task-a", "ifeval", "--task-b", "sys-ifeval",
                   "--json", "--bootstrap", "50") == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert (data["a"], data["b"], data["n_paired"], data["paired_on"]) == ("both:ifeval", "both:sys-ifeval", 10,
                                                                           "ifeval-key")
    assert "ran different benchmarks" in captured.err        # one file, but two tasks
    assert run_cli("compare", str(combined), str(combined), "--task-a", "realguardrails") == 2
    assert "has no results of task 'realguardrails' (it has: ifeval, sys-ifeval)" in capsys.readouterr().err


def test_cli_compare_with_nothing_shared_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, _ = _runs(tmp_path)
    other = write_run(tmp_path / "other", [result("x1", [scored(True)])])
    assert run_cli("compare", str(base), str(other)) == 2
    assert "share no examples" in capsys.readouterr().err


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None, reason="chromium is not on PATH (apt-get install -y chromium)")
def test_page_renders_in_headless_chromium_without_errors(tmp_path: Path) -> None:
    base, tuned = _runs(tmp_path)
    page = tmp_path / "r.html"
    write_report([base, tuned], page)
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'ud'}",
               "--virtual-time-budget=2000", "--dump-dom", page.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    dom = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    # the inline script ran to its end (it marks the body) and reported no error
    assert re.search(r'<body[^>]*data-ready="1"', dom), dom[:500]
    assert re.search(r'<div id="js-errors" role="alert"></div>', dom)
    for element in ("headline-table", "comparison-table", "type-table", "run-filter", "text-filter"):
        assert f'id="{element}"' in dom
    assert dom.count('class="example flip"') == 7     # 1 pass -> fail, 6 fail -> pass
    # the filter script ran: only the first run's failures are shown, and it counted them
    shown = re.search(r'<span id="shown-count" class="muted">(\d+) shown</span>', dom)
    assert shown and int(shown.group(1)) == sum(1 for line in (base / "results.jsonl").read_text().splitlines()
                                                 if '"status":"pass"' not in line)


@pytest.mark.parametrize(("bench_a", "print_a", "bench_b", "print_b", "expected"), [
    ("bench.jsonl", "f1", "../bench.jsonl", "f1", None),                 # same contents, path spelled differently
    ("bench.jsonl", "f1", "bench.jsonl", "f2", "differs between"),       # another --limit, or an edited file
    ("bench.jsonl", "f1", "other.jsonl", "f3", "ran different benchmarks"),
    ("bench.jsonl", None, "bench.jsonl", None, None),                     # older runs without fingerprints
])
def test_bench_warning(tmp_path: Path, bench_a: str, print_a: str | None, bench_b: str, print_b: str | None,
                       expected: str | None) -> None:
    from rolenrules.evaluate.report import comparisons, load_runs

    rows = [result(f"e{i}", [scored(i % 2 == 0)]) for i in range(4)]
    a = write_run(tmp_path / "a", rows, bench=bench_a, fingerprint=print_a)
    b = write_run(tmp_path / "b", rows, bench=bench_b, fingerprint=print_b)
    warnings = comparisons(load_runs([a, b]), resamples=50)[0]["warnings"]
    if expected is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and expected in warnings[0] and "paired by example id" in warnings[0]
