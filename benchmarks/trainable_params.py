"""The trainable-parameter table of every strategy on the tiny decoder (a 2-layer Llama, hidden 32) and the
tiny ViT (2 layers, hidden 32, 32 x 32 images) the tests use, with a 3-class head; nothing is downloaded.

    python benchmarks/trainable_params.py            # a Markdown table on stdout

Knobs: each strategy's defaults, except ranks small enough for hidden size 32 (see KNOBS). "-" marks a
strategy that does not apply (prompt / prefix tuning on an image model); "refused" one that this model
cannot take (BitFit on a Llama, which has no bias).
"""
from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

KNOBS = {
    "lora": {"r": 2}, "dora": {"r": 2}, "loha": {"r": 2}, "lokr": {"r": 2}, "vera": {"r": 8}, "oft": {"block_size": 8},
    "boft": {"block_size": 4}, "hra": {"r": 2}, "fourierft": {"n_frequency": 16}, "adalora": {"init_r": 4, "target_r": 2},
    "prompt_tuning": {"num_virtual_tokens": 4}, "prefix_tuning": {"num_virtual_tokens": 4},
    "partial": {"trainable_blocks": 1}, "peft": {"method": "c3a", "config": {"block_size": 8}},
}


def table() -> list[tuple[str, dict[str, str]]]:
    from raytune_ft.models import build_model
    from raytune_ft.models.text import TransformersConfig
    from raytune_ft.strategies import STRATEGIES, get_strategy
    from tests.tiny_models import save_decoder, save_vit

    root = Path(tempfile.mkdtemp())
    configs = {"decoder (Llama)": TransformersConfig(name=str(save_decoder(root / "llama", "llama"))),
               "ViT": TransformersConfig(name=str(save_vit(root / "vit", "vit")))}
    rows = []
    for name in sorted(STRATEGIES.names()):
        strategy, cells = get_strategy(name), {}
        for label, config in configs.items():
            if config.family() not in strategy.families:
                cells[label] = "-"
                continue
            try:
                model = strategy.apply(build_model(config, 3), strategy.config(**KNOBS.get(name, {})))
            except ValueError as e:  # the pre-flight (or validate) refuses it for this model
                cells[label] = f"refused: {str(e).split(':')[0]}"
                continue
            total = sum(p.numel() for p in model.parameters())
            train = sum(p.numel() for p in model.parameters() if p.requires_grad)
            cells[label] = f"{train:,} / {total:,} ({100 * train / total:.1f} %)"
        rows.append((name + (f" ({KNOBS[name]})" if name in KNOBS else ""), cells))
    return rows


def main() -> None:
    warnings.filterwarnings("ignore")
    rows = table()
    labels = list(rows[0][1])
    print("| strategy | " + " | ".join(f"{label}: trainable / total" for label in labels) + " |")
    print("|---|" + "---|" * len(labels))
    for name, cells in rows:
        print(f"| {name} | " + " | ".join(cells[label] for label in labels) + " |")


if __name__ == "__main__":
    main()
