"""The `raytune-ft` command: `app` gathers the commands of local.py (validate, run, resume), plan.py (plan),
tables.py (report, results, compare, init) and remote.py (submit, status, logs, stop, fetch)."""
from raytune_ft.cli import local, plan, remote, tables  # noqa: F401  (registers the commands)
from raytune_ft.cli.app import EXIT_BAD_INPUT, app  # noqa: F401
from raytune_ft.cli.tables import find_run, print_leaderboard  # noqa: F401
