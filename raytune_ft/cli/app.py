"""The `raytune-ft` command's app; `--help` lists its commands in the order of use.

Exit codes, the same for every command: 0 when it did what it was asked; 2 for bad input of any kind (a job
spec, its data, a cluster, a run folder, an unknown name or option), with a message on stderr that names the
field or file and what to do, and no traceback; 1 when a run ended with every trial failed (`run`, `resume`).
"""
from __future__ import annotations

from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from raytune_ft.errors import UserError

EXIT_BAD_INPUT = 2

# the order of use: write a spec, check it, run it (and go on with it), read it, compare runs; then the
# data prepared once for many jobs, and the commands for a cluster
ORDER = ("init", "validate", "run", "resume", "report", "results", "compare", "prepare",
         "submit", "status", "logs", "stop", "fetch")


class Commands(TyperGroup):
    """The app's group: commands in ORDER (any other after them, as registered); a UserError is exit 2."""

    def list_commands(self, ctx):
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), names.index(n)))

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as e:
            typer.echo(str(e), err=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None


app = typer.Typer(cls=Commands, add_completion=False, no_args_is_help=True, rich_markup_mode=None)


def version() -> str:
    """raytune_ft's installed version ('unknown' when it runs from a source folder that was never installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("raytune_ft")
    except PackageNotFoundError:
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"raytune-ft {version()}")
        raise typer.Exit()


@app.callback()
def main(
    show_version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_print_version, is_eager=True, help="print raytune_ft's version and exit")] = None,
):
    """Compare fine-tuning strategies (full, frozen backbone, LoRA, ...) with Ray Tune and Ray Train.

    Start with `raytune-ft init` (a starter job spec), then `raytune-ft validate job.yaml`, `raytune-ft run
    job.yaml`, and `raytune-ft results RUN` to print its leaderboard again.
    """
