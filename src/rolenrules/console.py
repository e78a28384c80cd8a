"""Terminal output: stdout for results, stderr for progress, notes and errors."""

from rich.console import Console

# soft_wrap: long paths and messages stay on one line (greppable logs, copy-pastable paths).
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def setup_logging(level: int = 20) -> None:
    """rnr's own log lines (logger `rolenrules`, INFO by default) on stderr through the rich console,
    so they print above live progress bars; other libraries' loggers keep their defaults."""
    import logging

    from rich.logging import RichHandler

    logger = logging.getLogger("rolenrules")
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        handler = RichHandler(console=err_console, show_time=False, show_path=False, show_level=False,
                              markup=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
