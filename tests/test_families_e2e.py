"""End to end on a real local Ray cluster: a sweep on a tiny decoder LM and one on a tiny ViT, comparing the
new methods with full fine-tuning and feature extraction (small: one epoch or two, one trial a config)."""
from __future__ import annotations

import pytest

from raytune_ft.results.tables import read_table
from raytune_ft.spec import parse_job
from tests.conftest import sentiment_rows

pytestmark = pytest.mark.ray


@pytest.fixture
def ray_session():
    import ray

    yield
    ray.shutdown()


def test_decoder_sweep_compares_lora_dora_vera_and_prompt_tuning(tiny_decoders, tmp_path, ray_session):
    from raytune_ft.sweep.run import run_sweep

    files = {}
    for split, n, seed in (("train", 48, 0), ("validation", 24, 1)):
        files[split] = tmp_path / f"{split}.csv"
        files[split].write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in sentiment_rows(n, seed)))
    spec = {"name": "decoder", "model": {"source": "transformers", "name": str(tiny_decoders["llama-left"]),
                                         "max_length": 16},
            "data": {"source": "text_table", **{k: str(v) for k, v in files.items()}},
            "strategies": [{"name": "full"}, {"name": "lora", "r": 2, "use_dora": {"choice": [False, True]}},
                           {"name": "vera", "r": 8}, {"name": "prompt_tuning", "num_virtual_tokens": 4}],
            "training": {"epochs": 2},
            "search": {"algorithm": "grid", "num_samples": 1, "scheduler": {"name": "none"},
                       "hparams": {"lr": 3e-3, "batch_size": 16}}}
    rows = run_sweep(parse_job(spec), tmp_path / "run", printer=lambda line: None, num_cpus=2)
    assert [r["error"] for r in rows if r["status"] == "error"] == []
    trials = read_table(tmp_path / "run" / "trials.parquet")
    assert sorted((t["strategy"], t.get("lora.use_dora")) for t in trials) == [
        ("full", None), ("lora", False), ("lora", True), ("prompt_tuning", None), ("vera", None)]
    trainable = {(t["strategy"], t.get("lora.use_dora")): t["trainable_params"] for t in trials}
    head = 32 * 2 + 2
    assert trainable[("lora", False)] == head + 2 * (2 * (32 + 32) + 2 * (32 + 16))  # q_proj, v_proj x 2 layers
    assert trainable[("lora", True)] == trainable[("lora", False)] + 2 * (32 + 16)  # + DoRA's magnitudes
    assert trainable[("vera", None)] == head + 2 * ((8 + 32) + (8 + 16))
    assert trainable[("prompt_tuning", None)] == head + 4 * 32
    assert all(t["status"] == "completed" and t["epochs_run"] == 2 for t in trials)


def test_vit_sweep_compares_full_feature_extraction_dora_and_oft(tiny_vits, tmp_path, ray_session):
    from raytune_ft.sweep.run import run_sweep

    spec = {"name": "vit", "model": {"source": "transformers", "name": str(tiny_vits["vit"])},
            "data": {"source": "digits", "max_train_samples": 96},
            "strategies": [{"name": "full"}, {"name": "feature_extraction"}, {"name": "dora", "r": 2},
                           {"name": "oft", "block_size": 8}, {"name": "partial", "trainable_blocks": 1}],
            "training": {"epochs": 1},
            "search": {"num_samples": 1, "scheduler": {"name": "none"}, "hparams": {"lr": 3e-3, "batch_size": 32}}}
    rows = run_sweep(parse_job(spec), tmp_path / "run", printer=lambda line: None, num_cpus=2)
    assert [r["error"] for r in rows if r["status"] == "error"] == []
    table = {r["strategy"]: r for r in read_table(tmp_path / "run" / "strategies.parquet")}
    assert set(table) == {"full", "feature_extraction", "dora", "oft", "partial"}
    fractions = {name: r["trainable_fraction"] for name, r in table.items()}
    assert fractions["full"] == 1.0
    assert fractions["feature_extraction"] < fractions["oft"] < fractions["partial"] < 1.0
    assert all(0 <= r["best_score"] <= 1 for r in table.values())
