"""One trial's training, run inside every Ray Train worker, or directly (tests, debugging):

    history = train_trial(trial_config(job, data_dir, trial_dir, strategy, hparams))  # no Ray

The recipe (recipe.py) does the training; this adds what a retry needs: an error that would come
back the same (failures.py) is marked in the trial folder, and a restarted worker group raises it
again at once instead of training an epoch to meet it.
"""
from __future__ import annotations

import builtins
import json
from pathlib import Path
from typing import Callable, Optional

from raytune_ft.train.config import TrialConfig
from raytune_ft.train.failures import FAILED_FILE, would_repeat
from raytune_ft.train.recipe import TrialRecipe


def train_trial(config: TrialConfig, report: Optional[Callable[[dict], None]] = None) -> list[dict]:
    """Train one trial; return (and report) one metrics dict per epoch. Under Ray Train (report None)
    each epoch is reported to Ray with its checkpoint; otherwise to `report`."""
    failed = Path(config.trial_dir) / FAILED_FILE
    if failed.exists() and (before := json.loads(failed.read_text()))["key"] == config.key():
        kind = getattr(builtins, before["type"], RuntimeError)
        raise kind(f"{before['message']} (raised again at once: this error is not retried)")
    try:
        return TrialRecipe(config, report).run()
    except Exception as e:
        if not would_repeat(e):
            raise
        failed.parent.mkdir(parents=True, exist_ok=True)
        failed.write_text(json.dumps({"key": config.key(), "type": type(e).__name__, "message": str(e)}))
        raise
