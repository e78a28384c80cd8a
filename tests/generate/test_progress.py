"""Progress of a generation run: counted by outcome (kept / rejected / failed on a server error /
unscored), reported through a callback — log lines at least every ~10 s when there is no terminal — and
never drawn by the library itself (the rich bars live in `rolenrules.cli`)."""

from __future__ import annotations

import ast
import logging
import time
from pathlib import Path
from typing import Any

import rolenrules
from rolenrules.generate import GenerateConfig, default_clients, generate
from rolenrules.generate.progress import LogProgress, StageCounts, StageTracker
from rolenrules.records import Usage
from rolenrules.testing.scripted import last_user, teacher_reply

SEEDS = Path(__file__).resolve().parents[1] / "data" / "self_instruct_seed_tasks.jsonl"


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_log_progress_writes_a_heartbeat_even_when_nothing_finishes() -> None:
    handler = _Lines()
    logger = logging.getLogger("rolenrules.generate")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        tracker = StageTracker(LogProgress(every=0.2), lambda: Usage(requests=3, prompt_tokens=10))
        tracker.start("conversations", 4)
        tracker.advance("kept")
        tracker.advance("rejected", unscored=True)
        tracker.advance("failed")
        for _ in range(10):  # 0.5 s with no unit finishing
            time.sleep(0.05)
            tracker.tick()
        tracker.end()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert handler.lines[0] == "conversations: 4 to do (0 already done)"
    assert handler.lines[-1].startswith("conversations: done: 3/4 · kept 1 · rejected 1 · failed (server) 1 · unscored 1")
    heartbeats = handler.lines[1:-1]
    assert 1 <= len(heartbeats) <= 3 and all("3/4" in line for line in heartbeats)  # at most one per 0.2 s


def test_a_run_reports_each_stage_with_separate_outcomes_and_heartbeats(fake_server, tmp_path: Path) -> None:  # noqa: ANN001
    script = teacher_reply(answer=lambda body: "No comma here at all" if "2" in last_user(body)[:40] else "Oh, a comma")
    server = fake_server(reply=script, latency=0.4)
    events: list[tuple[str, StageCounts]] = []
    config = GenerateConfig(input=str(SEEDS), out=str(tmp_path / "out.jsonl"), teacher="openai:any",
                            base_url=server.base_url, num_prompts=2, k=2, rules="1", verifiable_rules="1",
                            rule_types=["punctuation:no_comma"], judged_rules="off", max_attempts=1, concurrency=1)
    generate(config, default_clients, progress=lambda event, counts: events.append((event, counts)))
    stages = [c.stage for e, c in events if e == "start"]
    assert stages == ["system prompts", "conversations"]  # judged rules off: no calibration needed
    end = next(c for e, c in events if e == "end" and c.stage == "conversations")
    assert (end.done, end.total, end.kept + end.rejected + end.failed) == (4, 4, 4)
    assert end.usage.requests == server.requests
    ticks = [c for e, c in events if e == "tick" and c.stage == "conversations"]
    assert ticks  # a heartbeat while replies were slow, not only when a unit finished


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_generation_library_draws_nothing_on_the_console() -> None:
    package = Path(rolenrules.__file__).parent / "generate"
    offenders: dict[str, Any] = {}
    for path in package.glob("*.py"):
        bad = {n for n in _imports(path) if n == "rich" or n.startswith("rich.") or n == "rolenrules.console"}
        if bad:
            offenders[path.name] = bad
    assert offenders == {}
