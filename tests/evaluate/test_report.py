"""Reports: markdown and HTML from run folders, and the page rendering in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from _eval_builders import run_cli, result, scored, write_run

from rolenrules.evaluate.report import write_report


def _runs(tmp_path: Path) -> tuple[Path, Path]:
    base = [result(f"e{i}", [scored(i % 2 == 0, category="format"), scored(i % 3 != 0, category="style", kind="judged",
                                                                         text="Stay polite <b>always</b>")],
                   role=i % 4 != 0, response=f"reply {i} <script>alert('x')</script>") for i in range(12)]
    tuned = [result(f"e{i}", [scored(True, category="format"), scored(i % 5 != 0, category="style", kind="judged",
                                                                      text="Stay polite <b>always</b>")],
                    role=True) for i in range(12)]
    tuned[0] = result("e0", [scored(True), scored(None, kind="judged", text="Stay polite <b>always</b>")])
    return write_run(tmp_path / "base", base), write_run(tmp_path / "tuned", tuned, model="hf:./tuned")


def test_markdown_side_by_side_with_paired_comparison(tmp_path: Path) -> None:
    base, tuned = _runs(tmp_path)
    text = write_report([base, tuned], markdown=tmp_path / "r.md")
    assert (tmp_path / "r.md").read_text() == text
    header = next(line for line in text.splitlines() if line.startswith("|  |"))
    assert header == "|  | base | tuned |"
    summary = json.loads((base / "summary.json").read_text())
    assert f"{100 * summary['pass_rate']['value']:.1f}%" in text
    assert "### Rule accuracy per category" in text
    assert re.search(r"\| base \| tuned \| 12 \| \+\d+\.\d pts \[", text)
    assert "| unscored rules / examples | 0 / 0 | 1 / 1 |" in text


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
    assert data["n_paired"] == 12 and data["a"] == "base"
    assert run_cli("report", str(tmp_path / "nope")) == 2
    assert "not an evaluation run folder" in capsys.readouterr().err


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
    for element in ("headline-table", "comparison-table", "run-filter", "text-filter"):
        assert f'id="{element}"' in dom
    # the filter script ran: only the first run's failures are shown, and it counted them
    shown = re.search(r'<span id="shown-count" class="muted">(\d+) shown</span>', dom)
    assert shown and int(shown.group(1)) == sum(1 for line in (base / "results.jsonl").read_text().splitlines()
                                                 if '"status":"pass"' not in line)
