"""Model sources. A new one is a file here plus its import line below."""
from raytune_ft.models.base import SOURCES, ModelConfig, skeleton  # noqa: F401
from raytune_ft.models import text, timm_models, vision  # noqa: F401  (registers them)


def build_model(config, num_classes: int, *, drop_path_rate=None, quantization=None):
    """A fresh `Classifier` for a model config (heavy imports happen here, not at import time), with the
    head `config.head` asks for (models/heads.py). drop_path_rate: hparams.drop_path_rate (None: the model's own).
    quantization: how a transformers model is loaded (a strategy's, QLoRA's 4 bits; None: as stored)."""
    from raytune_ft.models.heads import DEFAULT_SCALE, make_head

    options = {"quantization": quantization} if quantization is not None else {}  # the transformers source's
    model = SOURCES.get(config.source)().build(config, num_classes, drop_path_rate=drop_path_rate, **options)
    if config.head != "linear":
        model.head = make_head(config.head, model.head.in_features, num_classes,
                               config.head_scale or DEFAULT_SCALE)
    return model
