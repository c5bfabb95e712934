"""Any method peft ships, by its peft name, with its config as peft spells it.

    - name: peft
      method: lokr            # PeftType name, any case: lokr, oft, boft, vera, fourierft, ...
      config: {r: 8, alpha: 16}

Knobs inside `config` are passed to peft as they are (not searched; give each variant its own
entry, or use a named strategy such as lora for searchable knobs). Target modules default as for
LoRA: peft's list for the transformers model type, else every 1x1 / plain conv and Linear layer.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from raytune_ft.strategies.base import StrategyConfig, register_strategy
from raytune_ft.strategies.peft_base import PeftStrategy


def _config_class(method: str):
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING
    from peft.utils import PeftType

    try:
        return PEFT_TYPE_TO_CONFIG_MAPPING[PeftType[method.upper()]]
    except KeyError:
        known = ", ".join(sorted(t.name.lower() for t in PEFT_TYPE_TO_CONFIG_MAPPING))
        raise ValueError(f"peft has no method {method!r}; it has: {known}") from None


class PeftAnyConfig(StrategyConfig):
    name: Literal["peft"] = "peft"
    method: str = Field(description="the peft method's name, e.g. lokr, oft, vera")
    config: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of its peft config")

    @field_validator("method")
    @classmethod
    def _known(cls, method):
        _config_class(method)
        return method.lower()

    @model_validator(mode="after")
    def _config_builds(self):
        cls = _config_class(self.method)
        try:
            cls(**self.config)
        except (TypeError, ValueError) as e:
            raise ValueError(f"peft's {cls.__name__} refuses config {self.config}: {e}") from None
        return self


@register_strategy
class PeftAny(PeftStrategy):
    name = "peft"
    Config = PeftAnyConfig

    def spec_problems(self, cfg, job):
        return ()  # which layers the method wraps is peft's to say (the pre-flight forward pass runs it)

    def peft_config(self, model, cfg, total_steps):
        import inspect

        from peft.config import PromptLearningConfig
        from peft.utils import PeftType

        cls = _config_class(cfg.method)
        kwargs = dict(cfg.config or {})
        if issubclass(cls, PromptLearningConfig):
            kwargs.setdefault("task_type", "FEATURE_EXTRACTION")
        elif "target_modules" in inspect.signature(cls).parameters and not kwargs.get("target_modules"):
            self.mapping = f"TRANSFORMERS_MODELS_TO_{PeftType[cfg.method.upper()].name}_TARGET_MODULES_MAPPING"
            import peft.utils

            if not hasattr(peft.utils, self.mapping):
                self.mapping = "TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING"
            kwargs["target_modules"] = self.targets(model, None)
        return cls(**kwargs)
