"""Model sources. A new one is a file here plus its import line below."""
from raytune_ft.models.base import SOURCES, ModelConfig  # noqa: F401
from raytune_ft.models import text, vision  # noqa: F401  (registers them)


def build_model(config, num_classes: int):
    """A fresh `Classifier` for a model config (heavy imports happen here, not at import time)."""
    return SOURCES.get(config.source)().build(config, num_classes)
