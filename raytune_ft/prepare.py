"""A job's preparation before any trial, in one call: its data decoded / tokenized once (data/prepare.py)
and, when some trial can have ewc > 0, EWC's diagonal Fisher estimated from them and written beside
(ewc/). `raytune-ft prepare` and the sweep's first step (sweep/prepare.py) call it.

    meta = prepare_job(job, Path("runs/r1/data"))   # the splits, meta.json (and fisher.safetensors)
"""
from __future__ import annotations

from pathlib import Path

from raytune_ft.data.prepare import prepare_data
from raytune_ft.ewc.config import wanted
from raytune_ft.ewc.fisher import write_fisher


def prepare_job(job, out_dir: Path, on_cluster: bool = False) -> dict:
    """Write the job's prepared data into out_dir (see data/prepare.py: on_cluster) and, when the job wants
    it, EWC's Fisher; return the meta (with its "fisher" entry then)."""
    out_dir = Path(out_dir)
    meta = prepare_data(job, out_dir, on_cluster)
    return write_fisher(job, out_dir, meta) if wanted(job) else meta
