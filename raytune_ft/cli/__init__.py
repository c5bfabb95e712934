"""The `raytune-ft` command: `app` gathers the commands of starter.py (init), local.py (validate, run, resume,
prepare), tables.py (report, results), compare.py (compare) and remote.py (submit, status, logs, stop, fetch);
app.py lists them in the order of use."""
from raytune_ft.cli import compare, local, remote, starter, tables  # noqa: F401  (registers the commands)
from raytune_ft.cli.app import EXIT_BAD_INPUT, app  # noqa: F401
from raytune_ft.cli.tables import find_run, print_leaderboard  # noqa: F401
