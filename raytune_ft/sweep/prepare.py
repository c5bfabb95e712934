"""The sweep's first step, once per run: the job's data prepared (raytune_ft/prepare.py: the splits and,
for EWC, the Fisher), said, recorded with what made the run (provenance.json) and put where the
workers read it (the run's storage URI, if any)."""
from __future__ import annotations

import time
from typing import Callable

from raytune_ft import provenance
from raytune_ft.cluster import storage
from raytune_ft.errors import InputError
from raytune_ft.ewc.config import wanted
from raytune_ft.ewc.fisher import describe
from raytune_ft.layout import RunLayout
from raytune_ft.prepare import prepare_job


def prepare_run(job, layout: RunLayout, *, on_cluster: bool, printer: Callable[[str], None]) -> dict:
    """Prepare the run's data folder; return its meta. on_cluster: Ray is connected to a cluster, whose
    free CPUs decode the samples (data/encode.py). Bad data are an InputError."""
    started = time.monotonic()
    try:
        meta = prepare_job(job, layout.data, on_cluster=on_cluster)
    except (ValueError, OSError) as e:
        raise InputError(str(e)) from e
    printer(f"data prepared once in {time.monotonic() - started:.1f}s: "
            + ", ".join(f"{s} {v['samples']}" for s, v in meta["splits"].items()) + f", {len(meta['classes'])} classes")
    if wanted(job):  # EWC: which samples its Fisher information came from
        printer(describe(meta["fisher"]))
    # what made this run (versions, commit, hashes of data and weights, the spec): a file, and every table's metadata
    provenance.write(layout.root, provenance.collect(job))
    storage.sync_up(layout.data)  # workers on other nodes read it from the run's URI, if any
    return meta
