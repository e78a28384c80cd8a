"""One process at a time per run folder: an advisory lock (`flock`) on `FOLDER/.lock`.

Two `rnr generate` (or `rnr eval`) runs on the same folder would both do the whole job, paying
twice and writing every record twice. The second one stops at once, naming the process that holds
the folder. The operating system drops the lock when its holder exits, even after `kill -9`, so
a stale lock never blocks a resume.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from rolenrules.errors import BusyError

LOCK_FILE = ".lock"


def _describe(pid: str) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        command = ""
    return f"pid {pid}" + (f": {command[:200]}" if command else "")


class FolderLock:
    """Held for the life of a `with` block; `BusyError` when another process holds it."""

    def __init__(self, folder: str | Path, *, what: str = "folder") -> None:
        self.folder = Path(folder)
        self.what = what
        self._fd: int | None = None

    def __enter__(self) -> FolderLock:
        try:
            import fcntl
        except ImportError:  # no flock (Windows): run unlocked, as before
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise BusyError(f"{self.folder}: this {self.what} is in use by another rnr process ({_describe(holder)}); "
                            "wait for it to finish, or use another output") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None
