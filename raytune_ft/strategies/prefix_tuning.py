from typing import Literal

from pydantic import Field

from raytune_ft.searchable import Searchable
from raytune_ft.strategies.base import StrategyConfig, register_strategy
from raytune_ft.strategies.peft_base import PromptLearningStrategy


class PrefixTuningConfig(StrategyConfig):
    """Prefix tuning (text only): learned key / value prefixes in every attention layer."""

    name: Literal["prefix_tuning"] = "prefix_tuning"
    num_virtual_tokens: Searchable(int, ge=1, le=512) = Field(20, description="prefix length per layer")


@register_strategy
class PrefixTuning(PromptLearningStrategy):
    name = "prefix_tuning"
    unsupported = {"gradient_checkpointing": "its learned prefixes reach every layer as the layer's key / value cache, "
                                             "which transformers drops from a checkpointed layer"}
    Config = PrefixTuningConfig
    peft_class = "PrefixTuningConfig"
