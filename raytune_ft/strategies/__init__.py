"""The strategy catalogue. A new strategy is one file here plus its import line below."""
from raytune_ft.strategies.base import STRATEGIES, Strategy, StrategyConfig, set_trainable  # noqa: F401
from raytune_ft.strategies import (  # noqa: F401  (each registers itself)
    adalora,
    bitfit,
    boft,
    discriminative_lr,
    dora,
    feature_extraction,
    fourierft,
    full,
    gradual_unfreeze,
    hra,
    ia3,
    ln_tuning,
    loha,
    lokr,
    lora,
    lp_ft,
    norm_tuning,
    oft,
    partial,
    peft_any,
    prefix_tuning,
    prompt_tuning,
    qlora,
    vera,
)


def get_strategy(name: str) -> Strategy:
    return STRATEGIES.get(name)()
