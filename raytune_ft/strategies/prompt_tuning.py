from typing import Literal

from pydantic import Field

from raytune_ft.searchable import Searchable
from raytune_ft.strategies.base import StrategyConfig, register_strategy
from raytune_ft.strategies.peft_base import PromptLearningStrategy


class PromptTuningConfig(StrategyConfig):
    """Soft prompt tuning (text only): learned virtual token embeddings prepended to every input."""

    name: Literal["prompt_tuning"] = "prompt_tuning"
    num_virtual_tokens: Searchable(int, ge=1, le=512) = Field(20, description="length of the learned prompt")


@register_strategy
class PromptTuning(PromptLearningStrategy):
    name = "prompt_tuning"
    Config = PromptTuningConfig
    peft_class = "PromptTuningConfig"
