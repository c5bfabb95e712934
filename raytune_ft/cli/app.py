"""The `raytune-ft` command's app. Bad input of any kind (a `UserError`: spec, data, cluster, run
folder) is caught here, once, for every command: its message on stderr, exit 2, no traceback."""
from __future__ import annotations

import typer
from typer.core import TyperGroup

from raytune_ft.errors import UserError

EXIT_BAD_INPUT = 2


class _UserErrorsExit2(TyperGroup):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as e:
            typer.echo(str(e), err=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None


app = typer.Typer(cls=_UserErrorsExit2, add_completion=False, no_args_is_help=True,
                  help="Compare fine-tuning strategies on Ray.")
