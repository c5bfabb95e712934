"""The job a `submit` starts on the head: `raytune-ft run` there, its run folder mirrored to the run's
storage URI while it runs and at the end.

    python -m raytune_ft.cluster.entry --run-dir DIR [--spec FILE] [--storage-uri URI]
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from raytune_ft.cluster import storage as st
from raytune_ft.cluster.client import SPEC_ENV


def _entry(argv: list[str]) -> int:
    """On the head: run the sweep as `raytune-ft run`, the spec from the job's environment when it was
    not shipped as a file, and the run folder mirrored to --storage-uri while it runs and at the end."""
    import argparse
    import tempfile

    from raytune_ft.cli import app

    p = argparse.ArgumentParser(prog="python -m raytune_ft.cluster.entry")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--spec")
    p.add_argument("--storage-uri")
    args = p.parse_args(argv)
    spec = args.spec
    if spec is None:
        spec = str(Path(tempfile.mkdtemp(prefix="raytune-ft-spec-")) / "job.yaml")
        Path(spec).write_text(os.environ[SPEC_ENV], encoding="utf-8")
    run = ["run", spec, "--address", "auto", "--run-dir", args.run_dir]
    if not args.storage_uri:
        return app(run, standalone_mode=False) or 0
    with st.Mirror(args.run_dir, args.storage_uri):
        return app(run, standalone_mode=False) or 0


if __name__ == "__main__":
    sys.exit(_entry(sys.argv[1:]))
