from typing import Literal

from pydantic import Field

from raytune_ft.space import Searchable
from raytune_ft.strategies.base import StrategyConfig, register_strategy
from raytune_ft.strategies.peft_base import PeftStrategy


class PromptTuningConfig(StrategyConfig):
    """Soft prompt tuning (text only): learned virtual token embeddings prepended to every input."""

    name: Literal["prompt_tuning"] = "prompt_tuning"
    num_virtual_tokens: Searchable(int, ge=1, le=512) = Field(20, description="length of the learned prompt")


@register_strategy
class PromptTuning(PeftStrategy):
    name = "prompt_tuning"
    Config = PromptTuningConfig
    families = ("text",)

    def peft_config(self, model, knobs):
        import peft

        return peft.PromptTuningConfig(task_type="FEATURE_EXTRACTION",
                                       num_virtual_tokens=int(knobs["num_virtual_tokens"]))
