"""The strategy catalogue on tiny models of both families: what trains, each group's learning rate,
and (gradual_unfreeze) what moves at each epoch."""
from __future__ import annotations

import pytest
import torch

from raytune_ft.data import prepare_data
from raytune_ft.models import build_model
from raytune_ft.train.optim import build_optimizer, set_scales, trainable_now
from raytune_ft.hparams import HParams
from raytune_ft.spec import parse_job
from raytune_ft.spec.job import TrainingSpec
from raytune_ft.strategies import STRATEGIES, get_strategy
from raytune_ft.train.loop import train_trial
from raytune_ft.train.optim import class_weights
from raytune_ft.train.model import load_trial_model
from raytune_ft.train.config import trial_config
from tests.conftest import text_spec, vision_spec

HP = {"lr": 1e-2, "weight_decay": 0.0, "batch_size": 16, "warmup_ratio": 0.0, "label_smoothing": 0.0,
      "head_lr_mult": 1.0, "head_dropout": 0.0, "l2sp": 0.0}
KNOBS = {
    "full": {}, "feature_extraction": {}, "discriminative_lr": {"layer_decay": 0.5},
    "partial": {"trainable_blocks": 2, "layer_decay": 1.0}, "gradual_unfreeze": {"every_epochs": 1, "layer_decay": 1.0},
    "lora": {"r": 2, "alpha": 4.0, "dropout": 0.0, "target_modules": None},
    "loha": {"r": 2, "alpha": 4.0, "dropout": 0.0, "target_modules": None},
    "ia3": {"target_modules": None, "feedforward_modules": None},
    "adalora": {"init_r": 4, "target_r": 2, "alpha": 8.0, "target_modules": None},
    "prompt_tuning": {"num_virtual_tokens": 4}, "prefix_tuning": {"num_virtual_tokens": 4},
    "peft": {"method": "lokr", "config": {"r": 2, "alpha": 4}},
    "bitfit": {}, "norm_tuning": {}, "lp_ft": {"probe_epochs": 1, "ft_lr_mult": 0.1},
    "dora": {"r": 2, "alpha": 4.0}, "lokr": {"r": 2, "alpha": 4.0}, "vera": {"r": 8}, "oft": {"block_size": 8},
    "boft": {"block_size": 4}, "hra": {"r": 2}, "fourierft": {"n_frequency": 16}, "ln_tuning": {},
}
# refused for the tiny ResNet at validate (no Linear layer; BOFT: its 7x7 stem's 147 inputs; OFT: 16 px maps
# smaller than its kernels), or too slow on a CPU (HRA: its Conv2d form builds a (in x k x k)^2 matrix per layer
# and step, 4608^2 in layer4: 490 s for this test): tests/test_peft_methods.py covers them on a ViT and a decoder
NOT_FOR_A_CNN = ("prompt_tuning", "prefix_tuning", "adalora", "vera", "fourierft", "boft", "oft", "hra")


@pytest.fixture(scope="module")
def jobs(tiny_bert, resnet_weights, tmp_path_factory):
    """Both families, data prepared once."""
    from tests.conftest import sentiment_rows

    root = tmp_path_factory.mktemp("catalogue")
    csvs = {}
    for split, n, seed in (("train", 48, 0), ("validation", 32, 1)):
        csvs[split] = root / f"{split}.csv"
        csvs[split].write_text("text,label\n" + "".join(f"{t},{l}\n" for t, l in sentiment_rows(n, seed)))
    out = {}
    for family, spec in (("vision", vision_spec(resnet_weights, training={"epochs": 3})),
                         ("text", text_spec(tiny_bert, csvs, training={"epochs": 3}))):
        job = parse_job(spec)
        prepare_data(job, root / family / "data")
        out[family] = (job, root / family)
    return out


def model_of(jobs, family, strategy, **knobs):
    job, _ = jobs[family]
    model = build_model(job.model, 2)
    model.block_paths = None
    s = get_strategy(strategy)
    k = s.config(**{**KNOBS[strategy], **knobs})  # the strategy's own typed config
    return s.apply(model, k), s, k


def trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_every_strategy_is_registered():
    # so every one is trained below; but those that train on a CUDA GPU only (qlora: tests/test_scale_spec.py
    # checks its config and refusals on CPU, benchmarks/gpu.py --qlora trains it on a GPU)
    assert set(KNOBS) == {n for n in STRATEGIES.names() if not STRATEGIES.get(n).needs_cuda}


@pytest.mark.parametrize("family", ["vision", "text"])
@pytest.mark.parametrize("strategy", sorted(KNOBS))
def test_every_strategy_trains_reports_and_reloads(jobs, family, strategy, tmp_path):
    if family == "vision" and strategy in NOT_FOR_A_CNN:
        pytest.skip("not for a CNN (refused at validate time / no Linear layer: see the two tests below)")
    job, root = jobs[family]
    config = trial_config(job, root / "data", tmp_path / "t", {"name": strategy, **KNOBS[strategy]}, HP)
    config = config.with_training(epochs=2)
    history = train_trial(config, report=lambda m: None)
    assert len(history) == 2 and all(0 <= m["val_accuracy"] <= 1 for m in history)
    assert 0 < history[-1]["trainable_params"] <= history[-1]["total_params"]
    model, _ = load_trial_model(tmp_path / "t")
    assert type(model).__name__ == "Classifier"


def test_prompt_methods_are_refused_for_vision_at_validate_time(resnet_weights):
    from raytune_ft.spec import SpecError

    with pytest.raises(SpecError, match=r"strategies\[0\]: 'prompt_tuning' applies to text models only"):
        parse_job(vision_spec(resnet_weights, strategies=[{"name": "prompt_tuning"}, {"name": "full"}]))


def test_adalora_on_a_cnn_says_what_to_do(jobs):
    with pytest.raises(ValueError, match="no Linear / Conv1D layer adalora can adapt: set strategies"):
        model_of(jobs, "vision", "adalora")


def test_any_peft_method_by_name(jobs, resnet_weights):
    from raytune_ft.spec import SpecError

    model, _, _ = model_of(jobs, "text", "peft", method="vera", config={"r": 4})
    assert {n.split(".")[-2] for n in trainable(model) if "vera" in n} and "head.weight" in trainable(model)
    with pytest.raises(SpecError, match=r"strategies\[0\].method: peft has no method 'nope'; it has: .*lokr"):
        parse_job(vision_spec(resnet_weights, strategies=[{"name": "peft", "method": "nope"}]))
    with pytest.raises(SpecError, match="refuses config"):
        parse_job(vision_spec(resnet_weights, strategies=[{"name": "peft", "method": "lora", "config": {"rr": 1}}]))


def test_partial_trains_the_top_blocks_and_head(jobs):
    model, s, k = model_of(jobs, "vision", "partial", trainable_blocks=2)
    names = trainable(model)
    assert names == {n for n, _ in model.named_parameters() if n.startswith(("backbone.layer4.", "head."))}
    model, s, k = model_of(jobs, "text", "partial", trainable_blocks=1)
    assert {n.split(".")[0] + "." + ".".join(n.split(".")[1:4]) for n in trainable(model) if n.startswith("backbone")} \
        == {"backbone.encoder.layer.1"}
    frozen = s.eval_modules(model, k, 1)
    assert model.backbone.embeddings in frozen and model.backbone.encoder.layer[0] in frozen


def test_partial_with_more_blocks_than_the_model_trains_all(jobs):
    model, _, _ = model_of(jobs, "text", "partial", trainable_blocks=99)
    assert trainable(model) == {n for n, _ in model.named_parameters()}


def test_discriminative_lr_decays_from_the_head_down(jobs):
    model, s, k = model_of(jobs, "vision", "discriminative_lr", layer_decay=0.5)
    opt = build_optimizer(model, s, k, HParams(**HP), TrainingSpec())
    scales = set_scales(opt, s, k, epoch=1, head_lr_mult=3.0)
    # resnet18: stem + 8 blocks + head
    assert scales["head"] == 3.0 and scales["block7"] == 0.5 and scales["block6"] == 0.25
    assert scales["block0"] == pytest.approx(0.5 ** 8) and scales["stem"] == pytest.approx(0.5 ** 9)
    conv = dict(model.named_parameters())["backbone.layer4.1.conv1.weight"]
    assert [g["group"] for g in opt.param_groups if any(p is conv for p in g["params"])] == ["block7"]


def test_head_multiplier_applies_to_every_strategy(jobs):
    for strategy in ("full", "lora", "feature_extraction"):
        model, s, k = model_of(jobs, "text", strategy)
        opt = build_optimizer(model, s, k, HParams(**HP), TrainingSpec())
        scales = set_scales(opt, s, k, epoch=1, head_lr_mult=10.0)
        assert scales["head"] == 10.0 and all(v == 1.0 for g, v in scales.items() if g != "head"), strategy


def test_gradual_unfreeze_schedule(jobs):
    model, s, k = model_of(jobs, "text", "gradual_unfreeze", every_epochs=2)
    opt = build_optimizer(model, s, k, HParams(**HP), TrainingSpec())
    live = {}
    for epoch in range(1, 9):
        scales = set_scales(opt, s, k, epoch, 1.0)
        live[epoch] = {g for g, v in scales.items() if v > 0}
    # tiny BERT: stem (embeddings) + 2 layers; a new group every 2 epochs, from the top down
    assert live[1] == live[2] == {"head"}
    assert live[3] == live[4] == {"head", "block1"}
    assert live[5] == {"head", "block1", "block0"}
    assert live[7] == live[8] == {"head", "block1", "block0", "stem"}
    set_scales(opt, s, k, 1, 1.0)
    assert trainable_now(opt) == model.head.weight.numel() + model.head.bias.numel()
    # every parameter is in the optimizer from the start: unfreezing needs no new optimizer
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_gradual_unfreeze_moves_only_what_is_unfrozen(jobs, tmp_path, monkeypatch):
    """Train 3 epochs; after each, compare every group's weights with the start."""
    job, root = jobs["vision"]
    strategy_cls = type(get_strategy("gradual_unfreeze"))
    seen = {}
    monkeypatch.setattr(strategy_cls, "after_step", lambda self, model, step: seen.setdefault("model", model))
    snapshots = []
    config = trial_config(job, root / "data", tmp_path / "t", {"name": "gradual_unfreeze", **KNOBS["gradual_unfreeze"]}, HP)
    start = {n: p.detach().clone() for n, p in build_model(job.model, 10).state_dict().items()}
    train_trial(config, report=lambda m: snapshots.append(
        {n: p.detach().clone() for n, p in seen["model"].state_dict().items()}))

    def moved(state, prefix):
        return any(not torch.equal(v, start[k]) for k, v in state.items()
                   if k.startswith(prefix) and k in start and "num_batches_tracked" not in k)

    e1, e2, e3 = snapshots
    assert moved(e1, "head.") and not moved(e1, "backbone.")                  # epoch 1: the head only
    assert moved(e2, "backbone.layer4.1.") and not moved(e2, "backbone.layer4.0.")  # + the top block
    assert moved(e3, "backbone.layer4.0.") and not moved(e3, "backbone.layer3.1.")  # + the next one
    assert not moved(e3, "backbone.conv1.") and not moved(e3, "backbone.bn1.")      # the stem, weights and stats


def test_l2sp_holds_backbone_weights_near_the_start(jobs, tmp_path):
    job, root = jobs["vision"]
    start = build_model(job.model, 10).backbone.state_dict()

    def drift(l2sp, name):
        config = trial_config(job, root / "data", tmp_path / name, {"name": "full"}, {**HP, "lr": 3e-2, "l2sp": l2sp})
        config = config.with_training(epochs=1, optimizer="sgd")
        train_trial(config, report=lambda m: None)
        model, _ = load_trial_model(tmp_path / name)
        return sum(float(((p - start[n]) ** 2).sum()) for n, p in model.backbone.state_dict().items()
                   if n.endswith("weight") and "bn" not in n)

    assert drift(50.0, "held") < 0.5 * drift(0.0, "free")


def test_class_weights_and_options_reach_the_loop(jobs, tmp_path):
    assert class_weights([10, 30, 0]).tolist() == pytest.approx([2.0, 2 / 3, 0.0])
    job, root = jobs["vision"]
    # lr 1e-3: at 1e-2 this randomly initialised ResNet's BatchNorm statistics blow up (val_loss ~1e5
    # after epoch 1, accuracy at chance) and the test would check nothing about learning
    config = trial_config(job, root / "data", tmp_path / "t", {"name": "full"}, {**HP, "lr": 1e-3})
    config = config.with_training(epochs=3, schedule="step", class_weighted_loss=True, patience=1,
                              augment={"random_resized_crop": True, "hflip": True, "color_jitter": 0.2})
    history = train_trial(config, report=lambda m: None)
    scores = [m["val_accuracy"] for m in history]
    # it learns: 10 digit classes, chance is 0.1
    assert max(scores) > 0.2 and history[-1]["train_loss"] < history[0]["train_loss"], scores
    # patience 1 ends a trial after one epoch whose score is not strictly better than the best before it
    for i in range(1, len(scores) - 1):
        assert scores[i] > max(scores[:i]), f"stopped late: epoch {i + 1} did not improve on {scores[:i + 1]}"
    if len(history) < 3:
        assert scores[-1] <= max(scores[:-1]), f"stopped although the last epoch improved: {scores}"


# --------------------------------------------------------------------------- training correctness


def test_adalora_adds_its_orthogonal_regulariser_to_the_loss(jobs, tmp_path, monkeypatch):
    """peft adds orth_reg_weight x R only to a model output's `.loss`; our loss is computed outside the
    model, so the strategy adds it: the same formula as peft's AdaLoraModel.forward, in every step."""
    model, s, knobs = model_of(jobs, "text", "adalora", orth_reg_weight=0.3)
    term = s.penalty(model)
    expected = []
    for n, p in model.named_parameters():
        if "lora_A" in n or "lora_B" in n:
            cov = p @ p.T if "lora_A" in n else p.T @ p
            expected.append(torch.norm(cov - torch.eye(*cov.shape), p="fro"))
    assert expected and term.item() == pytest.approx(0.3 * torch.stack(expected).mean().item(), rel=1e-5)
    term.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "lora_A" in n)
    assert s.penalty(model_of(jobs, "text", "adalora", orth_reg_weight=0.0)[0]) is None

    from raytune_ft.strategies.adalora import AdaLora

    calls = []
    original = AdaLora.penalty
    monkeypatch.setattr(AdaLora, "penalty", lambda self, m: calls.append(1) or original(self, m))
    job, root = jobs["text"]
    config = trial_config(job, root / "data", tmp_path / "t", {"name": "adalora", **KNOBS["adalora"]}, HP)
    config = config.with_training(epochs=1)
    train_trial(config, report=lambda m: None)
    assert len(calls) == 48 // HP["batch_size"]  # once per training step


class _Killed(BaseException):
    """Stands for the process dying right after an epoch was saved and reported."""


def test_an_adalora_trial_resumes_after_its_rank_budget_was_reallocated(jobs, tmp_path):
    """A 5-epoch AdaLoRA trial stopped after epoch 4 (budget final) goes on from its saved state: the
    rank pattern and the allocator's statistics are part of it."""
    job, root = jobs["text"]
    config = trial_config(job, root / "data", tmp_path / "t", {"name": "adalora", **KNOBS["adalora"]}, HP)
    config = config.with_training(epochs=5)

    def die_after_4(m):
        if m["epoch"] == 4:
            raise _Killed

    with pytest.raises(_Killed):
        train_trial(config, report=die_after_4)
    saved = torch.load(tmp_path / "t" / "last" / "resume.pt", weights_only=True)["strategy"]
    assert saved["rank_pattern"], "the final rank budget was not saved"
    history = train_trial(config, report=lambda m: None)
    assert [m["epoch"] for m in history] == [1, 2, 3, 4, 5] and history[-1]["resumes"] == 1


WEIGHT_DECAY_CASES = [  # (family, strategy, trainable names that must get no weight decay)
    ("text", "ia3", ("ia3_l",)),
    ("text", "prompt_tuning", ("prompt_encoder",)),
    ("text", "prefix_tuning", ("prompt_encoder",)),
    ("text", "adalora", ("lora_E",)),
    ("text", "full", ("LayerNorm", ".bias")),
    ("vision", "full", ("bn", "downsample.1", ".bias")),
]


@pytest.mark.parametrize("family,strategy,exempt", WEIGHT_DECAY_CASES)
def test_weight_decay_applies_by_what_a_parameter_is(jobs, family, strategy, exempt):
    """Scaling vectors (IA3, shape (d, 1), start at 1), soft prompts and prefixes, AdaLoRA's singular
    values, norms and biases get no weight decay; layer weights, LoRA's A / B and the head's weight do."""
    model, s, knobs = model_of(jobs, family, strategy)
    optimizer = build_optimizer(model, s, knobs, HParams(**{**HP, "weight_decay": 0.1}), TrainingSpec())
    names = {id(p): n for n, p in model.named_parameters()}
    decay = {names[id(p)] for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    plain = {names[id(p)] for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    for part in exempt:
        hits = {n for n in decay | plain if part in n}
        assert hits, f"no trainable parameter named like {part!r}"
        assert not hits & decay, f"decayed: {sorted(hits & decay)[:3]}"
    assert "head.weight" in decay and "head.bias" in plain
    if strategy == "adalora":
        assert any("lora_A" in n for n in decay) and any("lora_B" in n for n in decay)


def test_the_lr_column_is_the_heads_rate(jobs, tmp_path):
    """gradual_unfreeze trains only its head in epoch 1: the recorded lr is that head's rate, not 0
    (the stem's group, frozen until last)."""
    job, root = jobs["vision"]
    config = trial_config(job, root / "data", tmp_path / "t", {"name": "gradual_unfreeze", **KNOBS["gradual_unfreeze"]}, HP)
    config = config.with_training(epochs=2, schedule="constant")
    history = train_trial(config, report=lambda m: None)
    assert history[0]["lr"] == pytest.approx(HP["lr"]) and history[0]["lr_scales"]["stem"] == 0.0


def test_a_reloaded_model_scores_what_it_scored_in_validation_under_mixed_precision(jobs, tmp_path):
    """Validation runs under autocast (bf16 here, on CPU); the test split and the reload must too."""
    from raytune_ft.results.evaluation import evaluate_trial

    job, root = jobs["text"]  # bf16 matrix products (bf16 convolutions are slow on a CPU)
    config = trial_config(job, root / "data", tmp_path / "t", {"name": "full"}, HP)
    config = config.with_training(epochs=2, mixed_precision="bf16")
    history = train_trial(config, report=lambda m: None)
    best = history[history[-1]["best_epoch"] - 1]
    again = evaluate_trial(tmp_path / "t", root / "data", split="validation")
    assert again["accuracy"] == best["val_accuracy"]
    assert again["loss"] == pytest.approx(best["val_loss"], rel=1e-6, abs=1e-9)
