"""The plan's arithmetic: the epochs the scheduler runs (plan/schedule.py) against Ray Tune's own schedulers
(sweep/schedulers.py's, driven event by event on the same scores), on known score orders, and the stages' wall
time; search.budget's rule for num_samples. No Ray cluster: the schedulers are plain objects."""
from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from raytune_ft.errors import InputError
from raytune_ft.plan.budget import samples_for_budget
from raytune_ft.plan.schedule import SimTrial, expected, make_rules, percentile, simulate
from raytune_ft.spec import parse_job
from raytune_ft.spec.search import BudgetSpec
from raytune_ft.sweep.schedulers import make_scheduler
from tests.conftest import vision_spec

STRATEGIES = ("full", "lora")


class FakeTrial:
    """What Ray's schedulers read of a trial: its id and config (hashable, as Tune's Trial is)."""

    def __init__(self, trial_id: str, strategy: str):
        self.trial_id, self.config, self.status = trial_id, {"strategy": {"name": strategy}}, "RUNNING"


class RaysRule:
    """Ray's scheduler for the job (one Grouped scheduler over every strategy) as a rule of the simulation."""

    def __init__(self, scheduler, strategy: str, trials: dict):
        self.scheduler, self.strategy, self.trials = scheduler, strategy, trials
        self.controller = SimpleNamespace(get_live_trials=lambda: [])  # the median rule asks: none wait

    def on_add(self, i):
        self.trials[i] = FakeTrial(f"t{i}", self.strategy)
        self.scheduler.on_trial_add(self.controller, self.trials[i])

    def on_result(self, i, t, score):
        return self.scheduler.on_trial_result(self.controller, self.trials[i], {"epoch": t, "val_accuracy": score}) \
            == self.scheduler.STOP

    def on_complete(self, i, t, score):
        self.scheduler.on_trial_complete(self.controller, self.trials[i], {"epoch": t, "val_accuracy": score})


def job_with(resnet_weights, scheduler: dict, epochs: int):
    spec = vision_spec(resnet_weights, training={"epochs": epochs})
    spec["search"] = {"scheduler": scheduler}
    return parse_job(spec)


def rays(job):
    scheduler, trials = make_scheduler(job), {}
    return lambda group, rng: RaysRule(scheduler, group[0], trials)


def ours(job):
    s = job.search.scheduler
    return make_rules(s.name, epochs=job.training.epochs, grace_period=s.grace_period,
                      reduction_factor=s.reduction_factor)


def sweep(n: int, per_strategy: bool = True, epoch_s=(1.0, 1.7)):
    return [SimTrial(group=(name if per_strategy else "all", None), start_s=0.3 * (i % 3), epoch_s=epoch_s[k])
            for i in range(n) for k, name in enumerate(STRATEGIES)]


@pytest.mark.parametrize("scheduler,epochs,concurrency", [
    ({"name": "asha", "grace_period": 1, "reduction_factor": 2}, 4, 2),
    ({"name": "asha", "grace_period": 1, "reduction_factor": 3}, 9, 3),
    ({"name": "asha", "grace_period": 2, "reduction_factor": 2.5}, 10, 1),
    ({"name": "asha", "grace_period": 1, "reduction_factor": 2, "per_strategy": False}, 5, 4),
    ({"name": "median", "grace_period": 1}, 5, 2),
    ({"name": "none"}, 3, 2),
])
def test_every_decision_is_the_one_rays_scheduler_makes(resnet_weights, scheduler, epochs, concurrency):
    job = job_with(resnet_weights, scheduler, epochs)
    rng = random.Random(0)
    trials = sweep(12, per_strategy=job.search.scheduler.per_strategy)
    stopped_some = False
    for _ in range(25):
        scores = [[rng.gauss(0, 1) - 1 / t + rng.gauss(0, 0.3) for t in range(1, epochs + 1)] for _ in trials]
        mine = simulate(trials, ours(job), epochs, concurrency, random.Random(1), scores=scores)
        theirs = simulate(trials, rays(job), epochs, concurrency, random.Random(1), scores=scores)
        assert mine == theirs
        stopped_some |= min(mine[0]) < epochs
    assert stopped_some == (scheduler["name"] != "none")


def test_hyperband_expected_epochs_match_rays_on_average(resnet_weights):
    import numpy as np

    job = job_with(resnet_weights, {"name": "hyperband", "grace_period": 1, "reduction_factor": 2}, 8)
    np.random.seed(0)  # Ray's bracket for a trial is drawn with numpy's global generator
    mine = expected(sweep(10), ours(job), 8, 2, draws=300, seed=1)
    # a new scheduler for each group of each draw (per strategy: the Grouped one would hold one group alone)
    theirs = expected(sweep(10), lambda group, rng: RaysRule(make_scheduler(job), group[0], {}), 8, 2, draws=300,
                      seed=1)
    assert sum(mine.epochs) == pytest.approx(sum(theirs.epochs), rel=0.05)
    assert sum(mine.epochs) < 0.8 * 20 * 8  # brackets stop trials early


def test_asha_on_known_score_orders(resnet_weights):
    job = job_with(resnet_weights, {"name": "asha", "grace_period": 1, "reduction_factor": 2}, 4)
    trials = [SimTrial(group=("full", None), start_s=0.0, epoch_s=1.0) for _ in range(6)]
    # one at a time, each trial better than every one before: none is below a rung's cutoff
    rising = [[i + t / 10 for t in range(1, 5)] for i in range(6)]
    assert simulate(trials, ours(job), 4, 1, random.Random(0), scores=rising)[0] == [4] * 6
    # each worse than every one before: the first runs every epoch, the others stop at the first rung (epoch 1)
    falling = [[-i + t / 10 for t in range(1, 5)] for i in range(6)]
    ran, makespan = simulate(trials, ours(job), 4, 1, random.Random(0), scores=falling)
    assert ran == [4, 1, 1, 1, 1, 1] and makespan == pytest.approx(9.0)


def test_expected_counts_and_wall_time():
    fifo = make_rules("none", epochs=3, grace_period=1, reduction_factor=2)
    trials = [SimTrial(group=("a", None), start_s=1.0, epoch_s=2.0, end_s=0.5) for _ in range(4)]
    out = expected(trials, fifo, 3, 2)
    assert out.epochs == [3] * 4 and out.makespan_s == pytest.approx(2 * (1.0 + 6.0 + 0.5))
    asha = make_rules("asha", epochs=4, grace_period=1, reduction_factor=2)
    out = expected([SimTrial(group=("a", None), start_s=0.0, epoch_s=1.0) for _ in range(16)], asha, 4, 2,
                   draws=200)
    # rung 1: about half go on (more early on: a trial is compared with those before it), rung 2: half again
    assert 16 + 6 < sum(out.epochs) < 16 + 12 + 8
    assert percentile([1.0, 2.0, 4.0], 50) == 2.0 and percentile([1.0, 2.0], 50) == 1.5


class FakeForecast:
    def __init__(self, n):
        self.n = n

    def hours(self, kind):
        return 0.05 + 0.1 * self.n


def test_the_budget_sets_the_largest_num_samples_that_fits():
    n, fc = samples_for_budget(BudgetSpec(cpu_hours=1.0), FakeForecast)
    assert n == 9 and fc.n == 9  # 0.95 fits, 1.05 does not
    assert samples_for_budget(BudgetSpec(wall_hours=0.16), FakeForecast)[0] == 1
    assert samples_for_budget(BudgetSpec(gpu_hours=1e9), FakeForecast)[0] == 10_000  # search.num_samples' most
    with pytest.raises(InputError, match=r"search.budget.gpu_hours: 0.1 GPU-hours, but one sample per strategy is "
                                         r"forecast at 0.15"):
        samples_for_budget(BudgetSpec(gpu_hours=0.1), FakeForecast)
