"""Terminal output: stdout for results, stderr for progress, notes and errors."""

from rich.console import Console

# soft_wrap: long paths and messages stay on one line (greppable logs, copy-pastable paths).
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
