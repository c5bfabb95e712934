"""One trial inside its Ray Train workers (or called directly, without Ray).

    from raytune_ft.train import load_trial_model, train_trial, trial_config
"""
from raytune_ft.train.config import TrialConfig, trial_config  # noqa: F401
from raytune_ft.train.loop import train_trial  # noqa: F401
from raytune_ft.train.model import load_trial_model  # noqa: F401
