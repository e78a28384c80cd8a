"""GGUF files as transformers model folders, converted once into a user cache.

`hf:smollm2` (and `rnr train --model smollm2`) need the embedded SmolLM2-135M-Instruct as a
transformers model, but it ships only as GGUF. transformers reads GGUF itself (the `gguf` package
dequantises the weights), but slowly: it parses the file three times, about a minute on 2 cores. So the
first use converts the file to a safetensors folder with its tokenizer and chat template, and
every later load reads that folder (under a second after imports; benchmarks/local_engine.md).

    folder = converted_folder(resolve_model_path("smollm2"), "smollm2")

Cache layout: `$RNR_CACHE_DIR` or `~/.cache/rolenrules` (`$XDG_CACHE_HOME/rolenrules`), then
`models/NAME-SHA-vN/` (N: the conversion's version), keyed by the SHA-256 of the GGUF file's content: a changed file is converted
again into a new folder, an unchanged one (a reinstall, a copy) reuses the folder. Older folders
are kept (a trained adapter names its base folder by path). `rnr_source.json` in each folder
records the file it came from (path, size, mtime) so a later load need not hash the file again.
A conversion is written to a temporary folder and renamed into place when complete: a killed
conversion never leaves a half folder under the final name.

One edit is made to the chat template: SmolLM2's writes its own default system prompt ("You are a
helpful AI assistant named SmolLM, ...") when a conversation has none. `local:smollm2` drops that
block (see `_gguf.render_prompt`), so the converted folder's template does not write it either:
`hf:smollm2` and `local:smollm2` render the same prompt, and training sees the conversation it is
given and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rolenrules.errors import ConfigError

logger = logging.getLogger("rolenrules.llm")

MARKER = "rnr_source.json"
#: Bump when the conversion itself changes, so old folders are not reused.
CONVERSION_VERSION = 1
_STALE_TMP_SECONDS = 6 * 3600
_LOCK = threading.Lock()
#: A ChatML template's own default system block, written when the first message is not a system one.
_DEFAULT_SYSTEM_BLOCK = re.compile(
    r"\{%-?\s*if\s+loop\.first\s+and\s+messages\[0\]\[['\"]role['\"]\]\s*!=\s*['\"]system['\"]\s*-?%\}"
    r"\{\{\s*'<\|im_start\|>system(?:\n|\\n)[^']*<\|im_end\|>(?:\n|\\n)'\s*\}\}"
    r"\{%-?\s*endif\s*-?%\}")


def cache_root() -> Path:
    """Where rnr keeps what it builds once per machine: `$RNR_CACHE_DIR`, else the user cache."""
    if os.environ.get("RNR_CACHE_DIR"):
        return Path(os.environ["RNR_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "rolenrules"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def converted_folder(gguf: Path, name: str | None = None, *, root: Path | None = None) -> Path:
    """The transformers folder for `gguf`, converting it first if this file content has none yet."""
    gguf = gguf.resolve()
    name = _safe_name(name or gguf.stem)
    models = (root or cache_root()) / "models"
    stat = gguf.stat()
    with _LOCK:
        known = _find_by_stat(models, gguf, stat)
        if known is not None:
            return known
        digest = file_sha256(gguf)
        folder = models / f"{name}-{digest[:16]}-v{CONVERSION_VERSION}"
        if _marker(folder).get("sha256") == digest and _marker(folder).get("version") == CONVERSION_VERSION:
            _write_marker(folder, gguf, stat, digest)  # same content at another path or mtime
            return folder
        if folder.exists():
            raise ConfigError(f"{folder}: exists but is not a complete rnr conversion of {gguf}; remove it to "
                              "convert again")
        _convert(gguf, folder, digest, stat)
        return folder


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "model"


def _marker(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _find_by_stat(models: Path, gguf: Path, stat: os.stat_result) -> Path | None:
    if not models.is_dir():
        return None
    for marker_file in models.glob(f"*/{MARKER}"):
        marker = _marker(marker_file.parent)
        if marker.get("version") != CONVERSION_VERSION:
            continue
        for source in marker.get("sources", []):
            if (source.get("path") == str(gguf) and source.get("size") == stat.st_size
                    and source.get("mtime_ns") == stat.st_mtime_ns):
                return marker_file.parent
    return None


def _write_marker(folder: Path, gguf: Path, stat: os.stat_result, digest: str,
                  extra: dict[str, Any] | None = None) -> None:
    marker = _marker(folder) or {"version": CONVERSION_VERSION, "sha256": digest, "sources": []}
    marker.update(extra or {})
    source = {"path": str(gguf), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    marker["sources"] = [s for s in marker.get("sources", []) if s.get("path") != str(gguf)] + [source]
    tmp = folder / f".{MARKER}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(marker, indent=2), encoding="utf-8")
    os.replace(tmp, folder / MARKER)


def strip_default_system(template: str) -> str:
    """`template` without the block that writes a default system prompt (unchanged when it has none)."""
    return _DEFAULT_SYSTEM_BLOCK.sub("", template)


def _convert(gguf: Path, folder: Path, digest: str, stat: os.stat_result) -> None:
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as error:
        raise ConfigError("converting a GGUF model for transformers needs torch, transformers and gguf: "
                          f"pip install 'rolenrules[train]' ({error})") from None
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(folder.parent)
    logger.info("converting %s to a transformers model in %s (once; about a minute on 2 cores)", gguf.name, folder)
    started = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    except ImportError as error:
        raise ConfigError(f"{gguf}: reading GGUF needs the gguf package: pip install gguf ({error})") from None
    except Exception as error:  # transformers raises ValueError/KeyError/RuntimeError for unsupported files
        raise ConfigError(f"{gguf}: transformers cannot load this GGUF file: "
                          f"{str(error).splitlines()[0][:300]}") from None
    # The weights are dense now (dequantised at load); what remains marks the model as GGUF-quantised,
    # which save_pretrained refuses and a later load would try to honour.
    model.hf_quantizer = None
    model.config.__dict__.pop("quantization_config", None)
    edits = []
    template = tokenizer.chat_template
    if isinstance(template, str) and strip_default_system(template) != template:
        tokenizer.chat_template = strip_default_system(template)
        edits.append("removed the template's default system prompt (local: does not send it either)")
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        from importlib.metadata import version

        _write_marker(tmp, gguf, stat, digest, {
            "converted_with": {"transformers": version("transformers"), "gguf": version("gguf")},
            "template_edits": edits, "dtype": "float32",
            "seconds": round(time.perf_counter() - started, 1)})
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache folders around it are not
        try:
            os.rename(tmp, folder)  # the marker is inside: a folder under the final name is complete
        except OSError:
            if not (folder / MARKER).exists():  # not another process finishing first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("converted %s in %.0f s", gguf.name, time.perf_counter() - started)


def _remove_stale_tmp(models: Path) -> None:
    # Left by conversions that were killed; a recent one may still be running in another process.
    now = time.time()
    for tmp in models.glob(".*.tmp"):
        try:
            if tmp.is_dir() and now - tmp.stat().st_mtime > _STALE_TMP_SECONDS:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            continue


__all__ = ["MARKER", "cache_root", "converted_folder", "file_sha256", "strip_default_system"]
