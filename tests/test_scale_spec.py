"""What `validate`, the pre-flight and the strategy code say about models bigger than one device: FSDP's
settings and what it refuses (with the reason and what to do), QLoRA without a CUDA GPU (exit 2, the strategy
named), QLoRA's BitsAndBytesConfig and peft preparation, built on CPU without bitsandbytes."""
from __future__ import annotations

import pytest
import torch

from raytune_ft.errors import InputError
from raytune_ft.spec import SpecError, parse_job
from tests.conftest import text_spec, vision_spec
from tests.test_bad_input import invoke


def problems(spec) -> dict[str, str]:
    with pytest.raises(SpecError) as e:
        parse_job(spec)
    return dict(e.value.problems)


def fsdp_spec(model, csvs, **resources):
    return text_spec(model, csvs, strategies=[{"name": "full"}],
                     resources={"workers_per_trial": 2, "distributed": "fsdp", **resources})


def test_fsdp_settings_parse_and_default_to_ddp(tiny_decoders, text_csvs):
    job = parse_job(fsdp_spec(tiny_decoders["llama"], text_csvs, fsdp={"sharding": "shard_grad_op"}))
    assert (job.resources.distributed, job.resources.fsdp.sharding, job.resources.fsdp.cpu_offload) == \
        ("fsdp", "shard_grad_op", False)
    assert parse_job(job.resolved()).resources == job.resources  # job.yaml (resume) reads back
    plain = parse_job(text_spec(tiny_decoders["llama"], text_csvs))
    assert plain.resources.distributed == "ddp" and parse_job(plain.resolved()).resources == plain.resources


def test_fsdp_is_refused_where_it_cannot_shard(tiny_decoders, text_csvs, resnet_weights):
    found = problems(fsdp_spec(tiny_decoders["llama"], text_csvs, workers_per_trial=1, fsdp={"cpu_offload": True}))
    assert "workers_per_trial is 1" in found["resources.distributed"]
    assert "no GPU" in found["resources.fsdp.cpu_offload"]
    found = problems(text_spec(tiny_decoders["llama"], text_csvs, resources={"fsdp": {"sharding": "shard_grad_op"}}))
    assert "distributed is ddp" in found["resources.fsdp"]
    # BatchNorm statistics would differ between workers: a CNN stays on DDP
    vision = vision_spec(resnet_weights, resources={"workers_per_trial": 2, "distributed": "fsdp"})
    assert "BatchNorm" in problems(vision)["resources.distributed"]


def test_fsdp_refuses_strategies_and_penalties_that_need_whole_weights(tiny_decoders, text_csvs):
    spec = fsdp_spec(tiny_decoders["llama"], text_csvs)
    spec["strategies"] = [{"name": "lora", "r": 2}, {"name": "adalora"}, {"name": "full", "hparams": {"l2sp": 0.1}}]
    found = problems(spec)
    assert set(found) == {"strategies[1]", "strategies[2].hparams.l2sp"}
    assert "use lora" in found["strategies[1]"] and "distributed: ddp" in found["strategies[2].hparams.l2sp"]


def test_qlora_without_a_gpu_exits_2_naming_the_strategy(tiny_decoders, text_csvs, tmp_path):
    spec = text_spec(tiny_decoders["llama"], text_csvs, strategies=[{"name": "lora", "r": 2}, {"name": "qlora"}])
    result = invoke(tmp_path, spec, "validate")
    assert result.exit_code == 2
    assert "strategies[1]" in result.output and "CUDA GPU" in result.output and "use lora" in result.output
    spec["resources"] = {"gpus_per_worker": 1}
    assert parse_job(spec).strategies[1].name == "qlora"  # with GPUs it validates (the GPU run is for a GPU)
    spec["resources"] = {"gpus_per_worker": 1, "workers_per_trial": 2, "distributed": "fsdp"}
    assert "4-bit" in problems(spec)["strategies[1]"]


def test_qlora_is_refused_for_other_sources_and_inits(resnet_weights, tiny_decoders, text_csvs):
    vision = vision_spec(resnet_weights, strategies=[{"name": "qlora"}], resources={"gpus_per_worker": 1})
    assert "transformers" in problems(vision)["strategies[0].name"]
    spec = text_spec(tiny_decoders["llama"], text_csvs, strategies=[{"name": "qlora", "init": "pissa"}],
                     resources={"gpus_per_worker": 1})
    assert "4 bits" in problems(spec)["strategies[0].init"]


def test_the_cluster_preflight_refuses_qlora_on_a_cluster_without_gpus(tiny_decoders, text_csvs):
    from raytune_ft.sweep.ray_setup import concurrency

    job = parse_job(text_spec(tiny_decoders["llama"], text_csvs, strategies=[{"name": "qlora"}],
                              resources={"gpus_per_worker": 1}))
    with pytest.raises(InputError, match=r"strategies\[0\] \(qlora\) needs a CUDA GPU"):
        concurrency(job, {"CPU": 8, "GPU": 0}, local=False)
    assert concurrency(job, {"CPU": 8, "GPU": 2}, local=False) == 2
    autoscaling = parse_job(text_spec(tiny_decoders["llama"], text_csvs, strategies=[{"name": "qlora"}],
                                      resources={"gpus_per_worker": 1, "max_concurrent_trials": 2}))
    assert concurrency(autoscaling, {"CPU": 8, "GPU": 0}, local=False) == 2  # GPU nodes come up later


def test_qlora_builds_its_4bit_config_and_loads_with_it(tiny_decoders, monkeypatch):
    """On CPU: the BitsAndBytesConfig, that the transformers source loads with it (onto this process's GPU),
    and peft's k-bit preparation with bf16 adapters and an fp32 head (on an unquantised model here)."""
    import transformers

    from raytune_ft.strategies import get_strategy
    from raytune_ft.train.model import build_trial_model

    qlora = get_strategy("qlora")
    config = qlora.quantization(qlora.config())
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16
    seen = {}
    real = transformers.AutoModel.from_pretrained

    def from_pretrained(path, **options):
        seen.update(options)
        return real(path, **{k: v for k, v in options.items() if k not in ("quantization_config", "device_map")})

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", from_pretrained)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    model, _, _ = build_trial_model({"source": "transformers", "name": str(tiny_decoders["llama"])},
                                    {"name": "qlora", "r": 2}, 0.0, 2)
    assert seen["quantization_config"].load_in_4bit and seen["device_map"] == {"": 0}
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n or n.startswith("head.") for n in trainable)
    assert {p.dtype for n, p in trainable.items() if ".lora_" in n} == {torch.bfloat16}
    assert model.head.weight.dtype == torch.float32


def test_the_preflight_says_qlora_needs_bitsandbytes(tiny_decoders, text_csvs, tmp_path, monkeypatch):
    import importlib.util

    from raytune_ft.data import prepare_data
    from raytune_ft.sweep.preflight import preflight

    job = parse_job(text_spec(tiny_decoders["llama"], text_csvs, strategies=[{"name": "qlora"}],
                              resources={"gpus_per_worker": 1}))
    prepare_data(job, tmp_path / "data")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else find_spec(name, *a))
    with pytest.raises(InputError, match=r"strategies\[0\] \(qlora\).*pip install 'raytune_ft\[qlora\]'"):
        preflight(job, tmp_path / "data")
