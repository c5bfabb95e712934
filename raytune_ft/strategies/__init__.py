"""The strategy catalogue. A new strategy is one file here plus its import line below."""
from raytune_ft.strategies.base import STRATEGIES, Strategy, StrategyConfig, set_trainable  # noqa: F401
from raytune_ft.strategies import (  # noqa: F401  (each registers itself)
    adalora,
    bitfit,
    discriminative_lr,
    feature_extraction,
    full,
    gradual_unfreeze,
    ia3,
    loha,
    lora,
    lp_ft,
    norm_tuning,
    partial,
    peft_any,
    prefix_tuning,
    prompt_tuning,
)


def get_strategy(name: str) -> Strategy:
    return STRATEGIES.get(name)()
