"""Gradient checkpointing (hparams.gradient_checkpointing): the same numbers with it and without, on every
kind of model (transformers' own switch; torchvision / timm block by block, BatchNorm statistics updated once),
less activation memory where it matters, and validate refusing what cannot have it."""
from __future__ import annotations

import pytest
import torch

from raytune_ft.spec import SpecError, parse_job
from raytune_ft.train.grad_checkpoint import enable_gradient_checkpointing
from raytune_ft.train.model import build_trial_model
from tests.conftest import text_spec, vision_spec
from tests.memory import peak_tensor_bytes


def inputs(model_spec: dict) -> dict:
    g = torch.Generator().manual_seed(1)
    if model_spec["source"] == "transformers":
        ids = torch.randint(3, 20, (4, 12), generator=g)
        mask = torch.ones_like(ids)
        mask[0, :3] = 0
        return {"input_ids": ids, "attention_mask": mask}
    return {"pixel_values": torch.randn(4, 3, 32, 32, generator=g)}


def two_steps(model_spec: dict, strategy: dict, checkpointing: bool):
    """Losses of two SGD steps (dropout on), the trained weights and the BatchNorm buffers after them."""
    torch.manual_seed(0)
    model, _, _ = build_trial_model(model_spec, strategy, 0.1, 3)
    if checkpointing:
        enable_gradient_checkpointing(model)
    model.train()
    batch, labels = inputs(model_spec), torch.tensor([0, 1, 2, 1])
    torch.manual_seed(5)
    losses = []
    for _ in range(2):
        loss = torch.nn.functional.cross_entropy(model(**batch), labels)
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                if p.grad is not None:
                    p -= 0.1 * p.grad
                    p.grad = None
        losses.append(loss.item())
    buffers = {k: v.clone() for k, v in model.state_dict().items() if "running_" in k or "num_batches" in k}
    return losses, {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}, buffers


@pytest.mark.parametrize("case", ["llama-full", "llama-lora", "llama-prompt_tuning", "gpt2-full", "resnet18-full",
                                  "resnet18-lora", "timm-vit", "timm-efficientnet"])
def test_the_same_numbers_with_and_without(case, tiny_decoders, resnet_weights):
    model, strategy = case.split("-")
    spec = {"llama": {"source": "transformers", "name": str(tiny_decoders["llama"])},
            "gpt2": {"source": "transformers", "name": str(tiny_decoders["gpt2"])},
            "resnet18": {"source": "torchvision", "name": "resnet18", "weights": str(resnet_weights)},
            "timm": {"source": "timm", "name": f"test_{strategy}"}}[model]
    strategy = {"name": "full"} if model == "timm" else {"name": strategy, **({"r": 2} if strategy == "lora" else {})}
    plain, checkpointed = two_steps(spec, strategy, False), two_steps(spec, strategy, True)
    assert plain[0] == pytest.approx(checkpointed[0], rel=1e-6, abs=1e-7)
    assert plain[1].keys() == checkpointed[1].keys()
    for name in plain[1]:  # LoRA under a frozen embedding: the adapters get their gradients all the same
        torch.testing.assert_close(plain[1][name], checkpointed[1][name], rtol=1e-5, atol=1e-6)
    for name in plain[2]:  # BatchNorm's running statistics: updated once per step, not again when recomputed
        torch.testing.assert_close(plain[2][name], checkpointed[2][name], rtol=0, atol=0)


def test_it_keeps_less_activation_memory_where_it_matters():
    """A 4-layer decoder (hidden 128) on 16 x 256 tokens: the step's peak tensor memory drops by more than half."""
    from transformers import LlamaConfig, LlamaModel

    from raytune_ft.models.classifier import Classifier

    def peak(checkpointing: bool) -> int:
        torch.manual_seed(0)
        backbone = LlamaModel(LlamaConfig(vocab_size=64, hidden_size=128, intermediate_size=512, num_hidden_layers=4,
                                          num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512))
        model = Classifier(backbone, 128, 2, "text", pooling="last").train()
        if checkpointing:
            enable_gradient_checkpointing(model)
        ids = torch.randint(0, 64, (16, 256), generator=torch.Generator().manual_seed(0))

        def step():
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids))
            torch.nn.functional.cross_entropy(logits, torch.zeros(16, dtype=torch.long)).backward()
        return peak_tensor_bytes(step)

    with_it, without = peak(True), peak(False)
    assert with_it < 0.5 * without, (with_it, without)


def test_validate_refuses_what_cannot_have_it(tiny_decoders, text_csvs, resnet_weights):
    spec = text_spec(tiny_decoders["llama"], text_csvs, strategies=[{"name": "lora", "r": 2}, {"name": "prefix_tuning"}])
    spec["search"]["hparams"]["gradient_checkpointing"] = {"choice": [False, True]}
    with pytest.raises(SpecError) as e:
        parse_job(spec)
    assert [p for p, _ in e.value.problems] == ["search.hparams.gradient_checkpointing"]
    assert "prefix_tuning" in e.value.problems[0][1] and "strategies[1].hparams.gradient_checkpointing: false" \
        in e.value.problems[0][1]
    spec["strategies"][1]["hparams"] = {"gradient_checkpointing": False}  # as the message says
    assert parse_job(spec).strategies[1].hparams.gradient_checkpointing is False
    # a model whose blocks are not found: block paths (or nothing)
    vision = vision_spec(resnet_weights, model={"source": "torchvision", "name": "resnet18", "weights": str(resnet_weights),
                                                "image_size": 16, "block_paths": ["layer1", "layer2"]})
    vision["search"]["hparams"]["gradient_checkpointing"] = True
    assert parse_job(vision).search.hparams.gradient_checkpointing is True
