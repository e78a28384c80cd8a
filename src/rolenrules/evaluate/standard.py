"""Standard benchmarks beside RNR's: wrappers that call lm-evaluation-harness and AlpacaEval
against the same model spec, and readers of their result files for the report.

Nothing here re-implements those tools. `lm_eval_command` maps an rnr model spec to the
harness's `--model`/`--model_args`; `write_alpaca_outputs` generates AlpacaEval's
`model_outputs.json` with rnr's own client (so every backend works, `local:` included), and
`alpaca_eval_command` is the tool's own `evaluate` call. `read_standard` reads
`results_*.json` (lm-eval) and `leaderboard.csv` (AlpacaEval).
"""

from __future__ import annotations

import asyncio
import csv
import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rolenrules.errors import ConfigError, DataError
from rolenrules.io import atomic_path
from rolenrules.llm import BACKENDS, LLM, InvalidReplyError, Sampling, parse_spec
from rolenrules.records import Message

#: Where the wrappers write inside a run folder; `rnr report` reads every result file below it.
STANDARD_DIR = "standard"


@dataclass
class StandardResult:
    """The figures of one standard-benchmark result file, for one model."""

    tool: str
    model: str
    metrics: dict[str, float] = field(default_factory=dict)
    stderr: dict[str, float] = field(default_factory=dict)
    source: str = ""


# -- lm-evaluation-harness -------------------------------------------------------------------


def lm_eval_command(spec: str, tasks: Sequence[str], output_path: str | Path, *, base_url: str | None = None,
                    endpoint: str = "chat", tokenizer: str | None = None, limit: int | None = None,
                    concurrency: int = 8, chat_template: bool = True, extra: Sequence[str] = ()) -> list[str]:
    """The `lm_eval` command line that evaluates the model named by an rnr spec.

    Kinds whose backend registry entry names an lm-eval model (`hf`, `vllm`) are loaded in-process
    by the harness; `openai:` specs go through the harness's OpenAI-compatible clients: `endpoint="chat"`
    (local-chat-completions, generative tasks only) or `"completions"` (local-completions, which
    loglikelihood tasks such as MMLU need, with a Hugging Face `tokenizer`). `chat_template`
    formats prompts with the model's chat template (keep it the same across compared models).
    """
    if not tasks:
        raise ConfigError("give at least one lm-eval task (e.g. --tasks mmlu)")
    kind, name = parse_spec(spec)
    if kind == "openai":
        if not base_url:
            raise ConfigError("lm-eval against an openai: spec needs --base-url (the server's /v1 URL)")
        root = base_url.rstrip("/")
        if endpoint == "chat":
            model, args = "local-chat-completions", [f"model={name}", f"base_url={root}/chat/completions",
                                                     f"num_concurrent={concurrency}"]
        elif endpoint == "completions":
            model, args = "local-completions", [f"model={name}", f"base_url={root}/completions",
                                                f"num_concurrent={concurrency}", "tokenized_requests=False"]
            args += ["tokenizer_backend=huggingface", f"tokenizer={tokenizer or name}"]
        else:
            raise ConfigError(f"unknown endpoint {endpoint!r} (chat or completions)")
    elif (harness_model := BACKENDS[kind].lm_eval) is not None:
        model, args = harness_model, [f"pretrained={name}"]
    else:
        raise ConfigError(f"lm-eval cannot load {spec} in-process: serve it behind an OpenAI-compatible server "
                          "(e.g. llama.cpp's llama-server) and pass openai:NAME --base-url URL")
    command = ["lm_eval", "--model", model, "--model_args", ",".join(args), "--tasks", ",".join(tasks),
               "--output_path", str(output_path)]
    if chat_template or model == "local-chat-completions":  # a chat endpoint always applies one
        command.append("--apply_chat_template")
    if limit is not None:
        command += ["--limit", str(limit)]
    return command + list(extra)


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if not found:
        raise ConfigError(f"`{name}` is not installed: pip install {package} (rnr calls the tool; it does not "
                          "re-implement it). Use --dry-run to print the command.")
    return found


def run_tool(command: list[str], package: str) -> None:
    """Run a standard-benchmark tool, streaming its output; a failure is an error with its exit code."""
    executable = _tool(command[0], package)
    completed = subprocess.run([executable, *command[1:]], check=False)
    if completed.returncode != 0:
        raise ConfigError(f"{command[0]} exited with status {completed.returncode}")


# -- AlpacaEval ------------------------------------------------------------------------------


def read_alpaca_instructions(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """AlpacaEval's evaluation set: a JSON array (or JSONL) of objects with `instruction`."""
    path = Path(path)
    if not path.exists():
        raise DataError("no such file", path=str(path))
    text = path.read_text(encoding="utf-8")
    try:
        rows = json.loads(text) if text.lstrip().startswith("[") else [json.loads(x) for x in text.splitlines() if x.strip()]
    except json.JSONDecodeError as error:
        raise DataError(f"invalid JSON ({error.msg})", path=str(path), line=error.lineno) from None
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("instruction"), str):
            raise DataError("expected an object with an `instruction` string", path=str(path), row=i, field="instruction")
    return rows[:limit] if limit is not None else rows


def write_alpaca_outputs(llm: LLM, instructions: Sequence[dict[str, Any]], out: str | Path, *, generator: str,
                         sampling: Sampling | None = None, system: str | None = None) -> Path:
    """Answer AlpacaEval's instructions with `llm` and write `model_outputs.json` in the tool's
    format (`instruction`, `output`, `generator`, `dataset`). Closes `llm`."""

    async def answer(row: dict[str, Any]) -> dict[str, Any]:
        messages = ([Message(role="system", content=system)] if system else []) + [
            Message(role="user", content=row["instruction"])]
        try:
            text = (await llm.chat(messages, sampling=sampling)).text
        except InvalidReplyError:
            text = ""
        return {"instruction": row["instruction"], "output": text, "generator": generator,
                "dataset": row.get("dataset", "alpaca_eval")}

    async def go() -> list[dict[str, Any]]:
        try:
            return list(await asyncio.gather(*(answer(r) for r in instructions)))
        finally:
            await llm.aclose()

    outputs = asyncio.run(go())
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(outputs, indent=1, ensure_ascii=False), encoding="utf-8")
    return out


def alpaca_eval_command(model_outputs: str | Path, output_path: str | Path, *,
                        annotators_config: str | None = None, extra: Sequence[str] = ()) -> list[str]:
    command = ["alpaca_eval", "evaluate", "--model_outputs", str(model_outputs), "--output_path", str(output_path)]
    if annotators_config:
        command += ["--annotators_config", annotators_config]
    return command + list(extra)


# -- reading result files --------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def read_lm_eval(path: str | Path) -> StandardResult:
    """An lm-eval `results_*.json`: every numeric metric per task (`task acc`), with stderr."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"cannot read lm-eval results ({error})", path=str(path)) from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise DataError("not an lm-eval results file (no `results` object)", path=str(path), field="results")
    config = data.get("config") or {}
    model = str(data.get("model_name") or config.get("model_args") or config.get("model") or path.parent.name)
    result = StandardResult(tool="lm-eval", model=model, source=str(path))
    for task, values in sorted(data["results"].items()):
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            metric, _, filter_name = key.partition(",")
            number = _number(value)
            if number is None or metric.endswith("_stderr"):
                continue
            label = f"{task} {metric}" + (f" ({filter_name})" if filter_name and filter_name != "none" else "")
            result.metrics[label] = number
            err = _number(values.get(f"{metric}_stderr,{filter_name}" if filter_name else f"{metric}_stderr"))
            if err is not None:
                result.stderr[label] = err
    return result


def read_alpaca_leaderboard(path: str | Path, generators: set[str] | None = None) -> list[StandardResult]:
    """AlpacaEval's `leaderboard.csv`: win rates per model (only `generators` when given)."""
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "win_rate" not in rows[0]:
        raise DataError("not an AlpacaEval leaderboard (no win_rate column)", path=str(path))
    name_key = next((k for k in rows[0] if k in ("", "name", "model_name", "Unnamed: 0")), next(iter(rows[0])))
    out = []
    for row in rows:
        name = row.get(name_key) or "model"
        if generators and name not in generators:
            continue
        result = StandardResult(tool="alpaca-eval", model=name, source=str(path))
        for metric, err in (("length_controlled_winrate", "lc_standard_error"), ("win_rate", "standard_error")):
            try:
                result.metrics[f"alpaca_eval {metric}"] = float(row[metric])
                if row.get(err):
                    result.stderr[f"alpaca_eval {metric}"] = float(row[err])
            except (KeyError, TypeError, ValueError):
                continue
        out.append(result)
    return out


def read_standard(path: str | Path) -> list[StandardResult]:
    """Every standard-benchmark result in a file or below a folder (lm-eval JSON, AlpacaEval CSV)."""
    path = Path(path)
    if path.is_dir():
        out: list[StandardResult] = []
        for file in sorted(path.rglob("results*.json")) + sorted(path.rglob("leaderboard.csv")):
            out += read_standard(file)
        return out
    if not path.exists():
        raise DataError("no such file", path=str(path))
    if path.suffix == ".csv":
        generators = None
        outputs = path.parent / "model_outputs.json"
        if not outputs.exists():
            outputs = path.parent.parent / "model_outputs.json"
        if outputs.exists():
            try:
                generators = {r.get("generator") for r in json.loads(outputs.read_text(encoding="utf-8"))}
            except (json.JSONDecodeError, AttributeError):
                generators = None
        return read_alpaca_leaderboard(path, generators)
    return [read_lm_eval(path)]
