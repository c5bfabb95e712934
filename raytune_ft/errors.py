"""One family of errors for what the user can fix: the CLI catches `UserError` once and exits 2
with its message (no traceback). Everything else is a bug or a failing trial."""
from __future__ import annotations


class UserError(Exception):
    """Bad input: a spec field, a data file or row, a cluster address. The message says how to fix it."""


class InputError(UserError, ValueError):
    """Bad input found while reading the data or the model (a file, a row, a column)."""


class SpecError(UserError):
    """Every problem of a job spec, each as (field path, message)."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} problem(s)"] + [f"  {loc}: {msg}" for loc, msg in problems]
        super().__init__("\n".join(lines))


class ClusterError(UserError):
    """A cluster that cannot be reached or refuses a request, an unknown run id."""
