"""How trials are made: Tune's search algorithms, with every trial seeded, and Optuna per strategy.

    search_alg, num_samples = make_search(job, n_concurrent, subsets)  # -> tune.TuneConfig(search_alg=..., ...)

Everything here is pickled by Tune when it saves the sweep's state (every few seconds, and again for
`raytune-ft resume`): module-level classes only, holding plain data, no closures.

- Every trial gets its own seed, `trial_seed(search.seed, index)`, where index counts the trials the
  search algorithm has made (0, 1, 2, ...). It goes into the trial's config, which Tune saves with the
  trial: a resumed trial keeps its seed, and the same spec gives the same seeds run after run.
- `search.algorithm: optuna` runs one Optuna study per strategy, each given exactly `num_samples`
  trials, handed out in turn, so that the budget is per strategy as for random and grid search.

This module imports Ray; import it inside functions.
"""
from __future__ import annotations

import hashlib
import pickle
from typing import Optional

from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.basic_variant import BasicVariantGenerator
from ray.tune.search.search_generator import SearchGenerator

from raytune_ft.searchable import Sampler


def derive_seed(base: int, *keys) -> int:
    """A seed in [0, 2**31) from `base` and keys: the same inputs give the same seed in any process."""
    digest = hashlib.sha256(repr((int(base), *keys)).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def trial_seed(base: int, index: int) -> int:
    """The seed of the sweep's `index`-th trial (0-based, in the order the search algorithm made them)."""
    return derive_seed(base, "trial", index)


class _SeedsTrials:
    """Mixed into a Tune search algorithm: each trial it makes gets `config["seed"]`."""

    base_seed: int = 0
    trials_made: int = 0

    def next_trial(self):
        trial = super().next_trial()
        if trial is not None:
            # in place: Tune's copy of the unresolved config is the same dict, and it is saved with the trial
            trial.config["seed"] = trial_seed(self.base_seed, self.trials_made)
            self.trials_made += 1
        return trial


class SeededVariantGenerator(_SeedsTrials, BasicVariantGenerator):
    """Tune's random / grid generator; its state (saved whole by Tune) includes the trial counter."""

    def __init__(self, base_seed: int, **kwargs):
        super().__init__(**kwargs)
        self.base_seed, self.trials_made = base_seed, 0


class SeededSearchGenerator(_SeedsTrials, SearchGenerator):
    """Tune's wrapper around a Searcher (here: Optuna per strategy), saving the trial counter too."""

    def __init__(self, searcher: Searcher, base_seed: int):
        super().__init__(searcher)
        self.base_seed, self.trials_made = base_seed, 0

    def get_state(self) -> dict:
        return {**super().get_state(), "seeds": (self.base_seed, self.trials_made)}

    def set_state(self, state: dict) -> None:
        state = dict(state)
        self.base_seed, self.trials_made = state.pop("seeds", (self.base_seed, self.trials_made))
        super().set_state(state)


class StrategySpace:
    """One strategy's space for Optuna's define-by-run API: its knobs and hyperparameters, samplers drawn.

    A plain object (not a closure) so that Tune can pickle the study holding it.
    """

    def __init__(self, space: dict, train_subset: Optional[dict] = None):
        self.space = space  # {"name": ..., knob: value or Sampler, "hparams": {...}} (space.strategy_spaces)
        self.train_subset = train_subset  # this study's train size (data.train_sizes), None for all of train

    def __call__(self, trial) -> dict:
        drawn = {"strategy": self._draw(trial, self.space, f"{self.space['name']}.")}
        return {**drawn, "train_subset": self.train_subset} if self.train_subset else drawn

    def _draw(self, trial, d: dict, prefix: str) -> dict:
        return {k: self._draw(trial, v, f"{prefix}{k}.") if isinstance(v, dict) else
                (v.suggest(trial, f"{prefix}{k}") if isinstance(v, Sampler) else v) for k, v in d.items()}


class PerStrategyOptuna(Searcher):
    """One OptunaSearch (TPE) per strategy (and train size), each given exactly `num_samples` trials.

    The next trial goes to the study with the fewest trials so far (ties: the spec's order), so the
    strategies take turns and each study learns only from its own strategy's trials. Its whole state
    (the studies, the counts, which trial is whose) is pickled by `save` for a resumed sweep.
    """

    def __init__(self, spaces: list[dict], num_samples: int, metric: str, mode: str, seed: int = 0,
                 subsets: Optional[list[dict]] = None):
        from ray.tune.search.optuna import OptunaSearch

        super().__init__(metric=metric, mode=mode)
        groups = {(f"{s['name']}@{sub['size']}" if sub else s["name"]): (s, sub)
                  for sub in (subsets or [None]) for s in spaces}
        self.names = list(groups)
        self.num_samples = num_samples
        self.studies = {name: OptunaSearch(space=StrategySpace(s, sub), metric=metric, mode=mode,
                                           seed=derive_seed(seed, "optuna", name))
                        for name, (s, sub) in groups.items()}
        self.given = {name: 0 for name in self.names}
        self.owner: dict[str, str] = {}  # trial id -> strategy name, until the trial completes

    def suggest(self, trial_id: str) -> Optional[dict]:
        open_ = [n for n in self.names if self.given[n] < self.num_samples]
        if not open_:
            return Searcher.FINISHED
        name = min(open_, key=lambda n: self.given[n])
        config = self.studies[name].suggest(trial_id)
        if config in (None, Searcher.FINISHED):
            return config
        self.given[name] += 1
        self.owner[trial_id] = name
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.owner:
            self.studies[self.owner[trial_id]].on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, error: bool = False) -> None:
        name = self.owner.pop(trial_id, None)
        if name is not None:
            self.studies[name].on_trial_complete(trial_id, result=result, error=error)

    def get_state(self) -> dict:
        return dict(self.__dict__)

    def set_state(self, state: dict) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)  # plain pickle, as Tune's own OptunaSearch.save does

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))


def make_search(job, n_concurrent: int, subsets: Optional[list[dict]] = None):
    """The search algorithm for the job, and the `num_samples` to give Tune.

    random / grid: Tune's generator over the Tuner's param_space (driver.tune_param_space), num_samples
    times over.
    optuna: one study per strategy, num_samples each; Tune's num_samples is the total.
    """
    from raytune_ft.sweep.space import strategy_spaces

    search = job.search
    if search.algorithm == "optuna":
        searcher = PerStrategyOptuna(strategy_spaces(job), search.num_samples, search.metric, search.mode,
                                     seed=search.seed, subsets=subsets)
        alg = SeededSearchGenerator(ConcurrencyLimiter(searcher, max_concurrent=n_concurrent), base_seed=search.seed)
        return alg, len(searcher.names) * search.num_samples
    alg = SeededVariantGenerator(search.seed, random_state=search.seed, max_concurrent=n_concurrent)
    return alg, search.num_samples
