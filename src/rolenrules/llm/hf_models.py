"""Where a transformers model comes from, resolved without waiting on an unreachable hub.

`rnr train --model`, `hf:` specs and `rnr template check` all take the same names:

* a local folder (a saved model, a trained adapter or model from `rnr train`);
* an embedded model name, with or without `hf:`/`local:` (`smollm2`, `hf:smollm2`, `local:smollm2`):
  its GGUF converted once into a transformers folder in the user cache (`gguf_to_hf`);
* a `.gguf` file (`local:./model.gguf`), converted the same way;
* a Hugging Face hub id (`Qwen/Qwen2.5-0.5B-Instruct`): from the local hub cache when it is there
  (no network call at all), else downloaded — but only after a short probe says the hub answers.
  Offline, transformers would retry for about a minute ("Retrying in Ns" ten times) before failing;
  here an uncached id fails in a few seconds with one line saying what to do, and at once when
  `HF_HUB_OFFLINE` is set.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from rolenrules.errors import ConfigError

PROBE_TIMEOUT_S = 3.0
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_GGUF_MAGIC = b"GGUF"
_probe_results: dict[str, str | None] = {}


@dataclass(frozen=True)
class PretrainedSource:
    """What to pass to `from_pretrained`: `ref` (a folder path or hub id) and `local_files_only`."""

    ref: str
    local_files_only: bool
    label: str  # what the user wrote, for messages

    @property
    def is_local(self) -> bool:
        return Path(self.ref).is_dir()


def strip_kind(spec: str) -> str:
    """`hf:X` and `local:X` name the model X here."""
    for kind in ("hf:", "local:"):
        if spec.startswith(kind):
            return spec[len(kind):]
    return spec


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def pretrained_source(spec: str, *, needs: str = "config.json") -> PretrainedSource:
    """Resolve a model name (see the module docstring) to a `from_pretrained` argument. `needs` is the
    file a cached hub id must have (`tokenizer_config.json` when only the tokenizer is loaded).
    Raises ConfigError, within a few seconds, when the model cannot be had."""
    from rolenrules.llm.gguf_to_hf import converted_folder
    from rolenrules.llm.local_backend import EMBEDDED_MODELS, resolve_model_path

    name = strip_kind(spec)
    if not name:
        raise ConfigError(f"{spec!r}: no model named")
    path = Path(name).expanduser()
    if path.is_dir():
        return PretrainedSource(str(path.resolve()), True, spec)
    if path.is_file():
        if _is_gguf(path):
            return PretrainedSource(str(converted_folder(path)), True, spec)
        raise ConfigError(f"{spec}: {path} is a file; give a model folder, a .gguf file or a Hugging Face id")
    if name in EMBEDDED_MODELS:
        return PretrainedSource(str(converted_folder(resolve_model_path(name), name)), True, spec)
    if spec.startswith("local:"):
        resolve_model_path(name)  # raises its own message: what local: accepts
    if not _REPO_ID.match(name) or name.startswith((".", "~")):
        raise ConfigError(f"{spec}: no such folder: {path}")
    return _hub_source(name, spec, needs)


def _is_gguf(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == _GGUF_MAGIC


def _hub_source(repo_id: str, label: str, needs: str) -> PretrainedSource:
    from huggingface_hub import constants, try_to_load_from_cache

    try:
        cached = isinstance(try_to_load_from_cache(repo_id, needs), str)
    except Exception:  # an id huggingface_hub rejects is not in the cache either; the load says why
        cached = False
    if cached:
        return PretrainedSource(repo_id, True, label)  # cached: no network call, online or not
    hint = (f"download it where the hub is reachable (hf download {repo_id}), give a local folder, or use "
            "smollm2 (the embedded model, offline)")
    if hub_offline():
        raise ConfigError(f"{label}: not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE "
                          f"is set; {hint}")
    problem = _probe_hub(constants.ENDPOINT)
    if problem is not None:
        raise ConfigError(f"{label}: not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and the hub "
                          f"({constants.ENDPOINT}) cannot be reached ({problem}); {hint}")
    return PretrainedSource(repo_id, False, label)


def _probe_hub(endpoint: str) -> str | None:
    """None when the hub answers an HTTP request within PROBE_TIMEOUT_S, else why not (once per process).
    Any HTTP status counts as an answer: the download itself reports auth or missing repos."""
    if endpoint not in _probe_results:
        from huggingface_hub.utils import get_session

        try:
            get_session().head(endpoint, timeout=PROBE_TIMEOUT_S, follow_redirects=False)
            _probe_results[endpoint] = None
        except Exception as error:  # DNS, refused, timeout, proxy, TLS: all mean "not reachable now"
            _probe_results[endpoint] = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}" \
                if str(error) else type(error).__name__
    return _probe_results[endpoint]


__all__ = ["PROBE_TIMEOUT_S", "PretrainedSource", "hub_offline", "pretrained_source", "strip_kind"]
