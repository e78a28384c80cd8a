"""`rnr data convert`: any supported dataset to messages records (JSONL, Parquet or datasets folder)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from rolenrules.cli._console import err_console, quiet_datasets
from rolenrules.io import FORMATS, ReadStats, ensure_writable_output, read_examples, write_examples
from rolenrules.io.writers import OUTPUTS

data_app = typer.Typer(help="Dataset conversion and inspection.", no_args_is_help=True)

@data_app.command("convert")
def convert(
    src: Annotated[str, typer.Argument(metavar="IN", help="Input: .json/.jsonl/.parquet, a datasets folder, or hf://owner/name[:split].")],
    dst: Annotated[str, typer.Argument(metavar="OUT", help=f"Output: {OUTPUTS}.")],
    format: Annotated[Optional[str], typer.Option("--format", "-f", help=f"Input format ({', '.join(FORMATS)}); detected when omitted.")] = None,
    skip_invalid: Annotated[bool, typer.Option("--skip-invalid", help="Skip bad rows and count them instead of failing.")] = False,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Convert at most this many records.")] = None,
) -> None:
    """Convert an instruction dataset into `messages` records."""
    ensure_writable_output(dst, inputs=[src])  # before reading: never over the input or a folder rnr did not write
    quiet_datasets()
    stats = ReadStats()
    examples = read_examples(src, format=format, skip_invalid=skip_invalid, stats=stats)
    if limit is not None:
        import itertools

        examples = itertools.islice(examples, limit)
    count = write_examples(examples, dst)
    note = f", skipped {stats.skipped} invalid" if stats.skipped else ""
    err_console.print(f"wrote {count} records ({stats.format} format) to {dst}{note}", highlight=False)
    for reason in stats.reasons[:5]:
        err_console.print(f"  skipped: {reason}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
