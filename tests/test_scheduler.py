"""The per-strategy scheduler, and how a resumed sweep gives it back the trials that had ended."""
from __future__ import annotations

from types import SimpleNamespace

from raytune_ft.sweep.schedulers import make_scheduler
from raytune_ft.spec import parse_job
from tests.conftest import vision_spec


def trial(tid, name):
    return SimpleNamespace(trial_id=tid, config={"strategy": {"name": name}}, status="PENDING")


def epochs(*accs):
    return [{"epoch": i + 1, "val_accuracy": a} for i, a in enumerate(accs)]


def test_replayed_rungs_cut_a_new_trial_and_a_replayed_trial_is_not_news(resnet_weights):
    spec = vision_spec(resnet_weights, training={"epochs": 4})
    spec["search"] = {"scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 2}}
    job = parse_job(spec)
    replay = {"a": epochs(0.9, 0.92, 0.93, 0.95), "b": epochs(0.8, 0.85)}
    sched = make_scheduler(job, replay=dict(replay))
    for tid in replay:
        sched.on_trial_add(None, trial(tid, "full"))
    # Tune may run a trial that had ended again (it had not saved that): its events change nothing
    again = trial("b", "full")
    assert sched.on_trial_result(None, again, {"epoch": 2, "val_accuracy": 0.85}) == sched.CONTINUE
    sched.on_trial_complete(None, again, {"epoch": 2, "val_accuracy": 0.85})
    # a new trial far below the replayed first rung is cut there; rungs are per strategy
    new = trial("c", "full")
    sched.on_trial_add(None, new)
    assert sched.on_trial_result(None, new, {"epoch": 1, "val_accuracy": 0.1}) == sched.STOP
    other = trial("d", "lora")
    sched.on_trial_add(None, other)
    assert sched.on_trial_result(None, other, {"epoch": 1, "val_accuracy": 0.1}) == sched.CONTINUE
