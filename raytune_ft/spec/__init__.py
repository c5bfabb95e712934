"""The job spec: one YAML file says what to compare, on which model and data, how to search.

    raytune-ft validate jobs/quickstart.yaml   # lists every problem with its field path; exit 2

job.py holds the sections (pydantic models), rules.py the rules across them, messages.py turns validation
errors into lines a user can act on, load.py reads a file.
"""
from raytune_ft.errors import InputError, SpecError  # noqa: F401
from raytune_ft.spec.job import JobSpec  # noqa: F401
from raytune_ft.spec.load import load_job, parse_job  # noqa: F401
