"""How many epochs the scheduler will run, and how long the stages take with the trials the cluster holds at
once: the schedulers' own rules (Ray Tune's ASHA, asynchronous HyperBand, the median stopping rule; none)
simulated on many draws of trial scores, and the expectation taken.

    trials = [SimTrial(group=("lora", None), start_s=12.0, epoch_s=30.0), ...]   # in the order Tune makes them
    out = expected(trials, rules=lambda: make_rules(job), epochs=4, concurrency=2)
    out.epochs[i], out.makespan_s                                                 # means over the draws

The rules are Ray's, re-stated in plain Python (tests/test_plan_schedule.py runs Ray's own schedulers on the
same events and checks that every decision is the same):

- ASHA (`_Bracket` in ray/tune/schedulers/async_hyperband.py): rungs at grace_period x rf^k below max_t; a
  trial reaching a rung is stopped if its score is below the (1 - 1/rf) percentile of the scores recorded
  there before it (none recorded: it goes on), and its score is recorded; at max_t every trial stops.
- asynchronous HyperBand: three such brackets, the k-th with its first rung at grace_period x rf^k; a trial
  joins one at random, with probability softmax(number of rungs).
- the median rule: from grace_period on, a trial whose best score is below the median of the other trials'
  running means (over the epochs from grace_period to now) is stopped, once at least 3 others have reached
  this epoch. Ray pauses a trial instead when there are too few and others wait; here it goes on.
- per_strategy: one scheduler per group (strategy and train size), as sweep/schedulers.py makes them.

Scores: a trial's score at epoch t is its own level (normal, sd 1) + a learning curve all trials share (-1/t)
+ noise (sd NOISE): the order of trials is mostly kept from epoch to epoch, as in real sweeps. The counts are
expectations over that model, not the worst case (every trial to max_t).
"""
from __future__ import annotations

import bisect
import heapq
import math
import random
from dataclasses import dataclass, field
from typing import Callable, Hashable, Optional

NOISE = 0.3  # the score's noise from epoch to epoch, against a spread of 1 between trials
MIN_SAMPLES = 3  # the median rule's min_samples_required (sweep/schedulers.py)


@dataclass
class SimTrial:
    group: Hashable  # the scheduler it answers to: (strategy or "all", train size)
    start_s: float  # seconds before its first epoch starts (Ray's start, the worker's start to its first step)
    epoch_s: float  # seconds per epoch: training, validation, checkpoint
    end_s: float = 0.0  # seconds after its last epoch


def percentile(ordered: list[float], q: float) -> float:
    """numpy's percentile (linear interpolation) of an ascending list, q in [0, 100]."""
    h = (len(ordered) - 1) * q / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (h - lo) * (ordered[hi] - ordered[lo])


class Bracket:
    """One ASHA bracket, as Ray's `_Bracket`: rungs highest first, each {trial: score} and its sorted scores."""

    def __init__(self, min_t: float, max_t: float, rf: float, s: int):
        import numpy as np  # Ray computes the rung count with numpy's logarithms: the same float, the same count

        count = int(np.log(max_t / min_t) / np.log(rf) - s + 1)
        self.rf = rf
        self.rungs = [(min_t * rf ** (k + s), {}, []) for k in reversed(range(count))]

    def on_result(self, tid, t: float, score: float) -> bool:
        for milestone, recorded, ordered in self.rungs:
            if t < milestone or tid in recorded:
                continue
            stop = bool(ordered) and score < percentile(ordered, (1 - 1 / self.rf) * 100)
            recorded[tid] = score
            bisect.insort(ordered, score)
            return stop
        return False


class Asha:
    """ASHA (brackets=1) or asynchronous HyperBand (brackets=3) over one group's trials."""

    def __init__(self, max_t: int, grace: int, rf: float, brackets: int, rng: random.Random):
        self.max_t, self.rng = max_t, rng
        self.brackets = [Bracket(grace, max_t, rf, s) for s in range(brackets)]
        sizes = [len(b.rungs) for b in self.brackets]
        self.weights = [math.exp(n - max(sizes)) for n in sizes]
        self.of: dict = {}

    def on_add(self, tid) -> None:
        self.of[tid] = self.brackets[0] if len(self.brackets) == 1 else \
            self.rng.choices(self.brackets, weights=self.weights)[0]

    def on_result(self, tid, t: int, score: float) -> bool:
        return t >= self.max_t or self.of[tid].on_result(tid, t, score)

    def on_complete(self, tid, t: int, score: float) -> None:
        self.of[tid].on_result(tid, t, score)


class Median:
    """Ray's MedianStoppingRule (hard stop; a pause for too few samples is a continue here)."""

    def __init__(self, grace: int):
        self.grace = grace
        self.results: dict = {}

    def on_add(self, tid) -> None:
        pass

    def on_result(self, tid, t: int, score: float) -> bool:
        import statistics

        self.results.setdefault(tid, []).append((t, score))
        if t < self.grace:
            return False
        means = []
        for other, results in self.results.items():
            if other != tid and results[-1][0] >= t:
                scoped = [s for tt, s in results if self.grace <= tt <= t]
                if scoped:
                    means.append(sum(scoped) / len(scoped))
        if len(means) < MIN_SAMPLES:
            return False
        return statistics.median(means) > max(s for _, s in self.results[tid])

    def on_complete(self, tid, t: int, score: float) -> None:
        self.results.setdefault(tid, []).append((t, score))


class Fifo:
    """No scheduler: every trial runs every epoch."""

    def on_add(self, tid) -> None:
        pass

    def on_result(self, tid, t: int, score: float) -> bool:
        return False

    def on_complete(self, tid, t: int, score: float) -> None:
        pass


def make_rules(name: str, *, epochs: int, grace_period: int, reduction_factor: float) -> Callable:
    """rules(group, rng): a new rule for each scheduler group, as sweep/schedulers.py configures Ray's."""
    grace = min(grace_period, epochs)

    def rules(group, rng: random.Random):
        if name == "asha":
            return Asha(epochs, grace, reduction_factor, 1, rng)
        if name == "hyperband":
            return Asha(epochs, grace, reduction_factor, 3, rng)
        if name == "median":
            return Median(grace)
        return Fifo()
    return rules


@dataclass
class Simulated:
    epochs: list[float]  # per trial: the epochs it runs (mean over the draws)
    makespan_s: float  # the stage's seconds from its first trial's start to its last one's end (mean)
    stopped: list[float] = field(default_factory=list)  # per trial: the share of draws in which it was stopped early


def simulate(trials: list[SimTrial], rules: Callable, epochs: int, concurrency: int, rng: random.Random,
             scores: Optional[list[list[float]]] = None) -> tuple[list[int], float]:
    """One draw: (epochs each trial ran, the makespan). Trials start in order, `concurrency` at a time; each
    epoch's end is a result for its group's rule; a stopped or finished trial frees its place. `scores[i][t-1]`:
    trial i's score at epoch t (default: drawn from the model in the module docstring)."""
    if scores is None:
        scores = [[level - 1.0 / t + rng.gauss(0.0, NOISE) for t in range(1, epochs + 1)]
                  for level in (rng.gauss(0.0, 1.0) for _ in trials)]
    groups: dict = {}
    ran = [0] * len(trials)
    events: list = []  # (time, order, trial, epoch)
    waiting = iter(range(len(trials)))
    order = 0

    def start(i: int, now: float) -> None:
        nonlocal order
        rule = groups.get(trials[i].group)
        if rule is None:
            rule = groups[trials[i].group] = rules(trials[i].group, rng)
        rule.on_add(i)
        heapq.heappush(events, (now + trials[i].start_s + trials[i].epoch_s, order, i, 1))
        order += 1

    for i in range(min(concurrency, len(trials))):
        start(next(waiting), 0.0)
    end = 0.0
    while events:
        now, _, i, t = heapq.heappop(events)
        rule, score = groups[trials[i].group], scores[i][t - 1]
        ran[i] = t
        if rule.on_result(i, t, score) or t >= epochs:
            rule.on_complete(i, t, score)
            done = now + trials[i].end_s
            end = max(end, done)
            nxt = next(waiting, None)
            if nxt is not None:
                start(nxt, done)
        else:
            heapq.heappush(events, (now + trials[i].epoch_s, order, i, t + 1))
            order += 1
    return ran, end


def expected(trials: list[SimTrial], rules: Callable, epochs: int, concurrency: int, *, draws: Optional[int] = None,
             seed: int = 0) -> Simulated:
    """The mean over `draws` simulated sweeps (default: as many as ~200,000 events allow, 8 to 200)."""
    if not trials:
        return Simulated([], 0.0, [])
    if draws is None:
        draws = max(8, min(200, 200_000 // max(1, len(trials) * epochs)))
    rng = random.Random(seed)
    total, stopped, makespan = [0.0] * len(trials), [0.0] * len(trials), 0.0
    for _ in range(draws):
        ran, end = simulate(trials, rules, epochs, concurrency, rng)
        makespan += end
        for i, t in enumerate(ran):
            total[i] += t
            stopped[i] += t < epochs
    return Simulated([t / draws for t in total], makespan / draws, [s / draws for s in stopped])
