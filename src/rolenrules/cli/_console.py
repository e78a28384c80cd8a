"""The CLI's consoles (defined in `rolenrules.console`, which library code may use too)."""

from rolenrules.console import console, err_console

__all__ = ["console", "err_console"]
