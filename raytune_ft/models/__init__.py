"""Model sources. A new one is a file here plus its import line below."""
from raytune_ft.models.base import SOURCES, ModelConfig  # noqa: F401
from raytune_ft.models import text, vision  # noqa: F401  (registers them)


def build_model(config, num_classes: int):
    """A fresh `Classifier` for a model config (heavy imports happen here, not at import time), with the
    head `config.head` asks for (models/heads.py)."""
    from raytune_ft.models.heads import DEFAULT_SCALE, make_head

    model = SOURCES.get(config.source)().build(config, num_classes)
    if config.head != "linear":
        model.head = make_head(config.head, model.head.in_features, num_classes,
                               config.head_scale or DEFAULT_SCALE)
    return model
