"""The strategy catalogue. A new strategy is one file here plus its import line below."""
from raytune_ft.strategies.base import STRATEGIES, Strategy, StrategyConfig, set_trainable  # noqa: F401
from raytune_ft.strategies import feature_extraction, full, lora  # noqa: F401  (registers them)


def get_strategy(name: str) -> Strategy:
    return STRATEGIES.get(name)()
