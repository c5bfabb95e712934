"""Early stopping: ASHA / HyperBand / the median rule, one scheduler per strategy by default.

Tune does not save a scheduler's state, so a resumed sweep replays the finished trials' results
into it (`replay`).
"""
from __future__ import annotations

from typing import Optional


def make_scheduler(job, replay: Optional[dict] = None):
    """The early-stopping scheduler: one per strategy (default) or one shared by all trials.

    `replay` ({trial_id: per-epoch metrics}) holds the trials a resumed sweep had finished: Tune
    does not save a scheduler's state, so their results are fed to it again as Tune re-adds them.
    """
    from ray.tune.schedulers import ASHAScheduler, AsyncHyperBandScheduler, FIFOScheduler, MedianStoppingRule

    sched, epochs = job.search.scheduler, job.training.epochs
    common = dict(time_attr="epoch", metric=job.search.metric, mode=job.search.mode)
    grace = min(sched.grace_period, epochs)
    if sched.name == "none":
        return FIFOScheduler()
    if sched.name == "asha":
        make = lambda: ASHAScheduler(max_t=epochs, grace_period=grace,  # noqa: E731
                                     reduction_factor=sched.reduction_factor, **common)
    elif sched.name == "hyperband":  # asynchronous HyperBand: several ASHA brackets, no pausing
        make = lambda: AsyncHyperBandScheduler(max_t=epochs, grace_period=grace, brackets=3,  # noqa: E731
                                               reduction_factor=sched.reduction_factor, **common)
    else:
        make = lambda: MedianStoppingRule(grace_period=grace, min_samples_required=3, **common)  # noqa: E731
    return grouped_scheduler(make, per_strategy=sched.per_strategy, replay=replay or {})


def grouped_scheduler(make, per_strategy: bool, replay: dict):
    """Trials grouped by strategy (or all in one group), each group with its own scheduler from `make`.

    Per strategy, a trial is only ever compared with its own kind. Strategies learn at different
    speeds (a LoRA update starts at zero; a frozen backbone's head converges in an epoch), so one
    shared ASHA would cut every slow starter at the first rung and the leaderboard would show
    their first-epoch scores.
    """
    from ray.tune.schedulers import FIFOScheduler

    class Grouped(FIFOScheduler):
        def __init__(self):
            super().__init__()
            self.children = {}
            self.replayed = set()  # trials that ended before a resume: their results were replayed

        def set_search_properties(self, metric, mode, **spec):
            return True  # each child was built with the sweep's metric and mode

        def child(self, trial):
            # one group per strategy and train size: a trial on 50 samples is not compared with one on 5,000
            subset = trial.config.get("train_subset")
            name = (trial.config["strategy"]["name"] if per_strategy else "all", subset and subset["size"])
            if name not in self.children:
                self.children[name] = make()
            return self.children[name]

        def on_trial_add(self, controller, trial):
            self.child(trial).on_trial_add(controller, trial)
            history = replay.pop(trial.trial_id, None)
            if history:  # a trial that ended before the sweep was resumed: its rungs count again
                for result in history:
                    self.child(trial).on_trial_result(controller, trial, result)
                self.child(trial).on_trial_complete(controller, trial, history[-1])
                self.replayed.add(trial.trial_id)  # whatever Tune does with it now is not news

        def on_trial_result(self, controller, trial, result):
            if trial.trial_id in self.replayed:
                return self.CONTINUE
            return self.child(trial).on_trial_result(controller, trial, result)

        def on_trial_complete(self, controller, trial, result):
            if trial.trial_id not in self.replayed:
                self.child(trial).on_trial_complete(controller, trial, result)

        def on_trial_error(self, controller, trial):
            if trial.trial_id not in self.replayed:
                self.child(trial).on_trial_error(controller, trial)

        def on_trial_remove(self, controller, trial):
            if trial.trial_id not in self.replayed:
                self.child(trial).on_trial_remove(controller, trial)

        def debug_string(self):
            return "; ".join(f"{k}: {v.debug_string()}" for k, v in self.children.items())

    return Grouped()
