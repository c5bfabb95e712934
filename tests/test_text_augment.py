"""EDA on token ids (raytune_ft/data/text_augment.py): each operation exactly, the special tokens and the
padding, the seeded per-epoch stream, the spec's rules, and a text trial with it on."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from raytune_ft.data import load_split, prepare_data
from raytune_ft.data.text_augment import (TextAugment, changes, random_deletion, random_insertion,
                                          random_swap)
from raytune_ft.spec import SpecError, parse_job
from raytune_ft.train.config import trial_config
from raytune_ft.train.loop import train_trial
from tests.conftest import text_spec, vision_spec

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIAL = (PAD, CLS, SEP, MASK)
WORDS = list(range(10, 30))  # 20 distinct tokens: where each one went is visible
HP = {"lr": 3e-3, "weight_decay": 0.0, "batch_size": 16, "warmup_ratio": 0.0, "label_smoothing": 0.0}


def problems(data) -> dict[str, str]:
    with pytest.raises(SpecError) as e:
        parse_job(data)
    return dict(e.value.problems)


def rng(seed=0):
    return np.random.default_rng(seed)


def is_subsequence(short, long) -> bool:
    it = iter(long)
    return all(t in it for t in short)


def row(words, length, left=False):
    real = [CLS, *words, SEP]
    pad = length - len(real)
    ids = [PAD] * pad + real if left else real + [PAD] * pad
    mask = [0] * pad + [1] * len(real) if left else [1] * len(real) + [0] * pad
    return torch.tensor(ids), torch.tensor(mask)


def augment(alpha=0.3, ops=("delete", "swap", "insert"), seed=0, padding_side="right"):
    return TextAugment(alpha, ops, SPECIAL, PAD, seed, padding_side)


# ------------------------------------------------------------------ the operations on a token list

def test_deletion_keeps_the_order_and_drops_about_alpha():
    dropped = []
    for seed in range(200):
        out = random_deletion(WORDS, 0.25, rng(seed))
        assert out and is_subsequence(out, WORDS) and len(set(out)) == len(out)
        dropped.append(len(WORDS) - len(out))
    assert np.mean(dropped) == pytest.approx(0.25 * len(WORDS), rel=0.15)
    assert random_deletion(WORDS, 0.0, rng()) == WORDS
    assert random_deletion([7], 0.5, rng()) == [7]  # a one-token text is left as it is (EDA)
    alone = random_deletion(WORDS, 0.9999, rng(3))  # everything would go: one token stays
    assert len(alone) == 1 and alone[0] in WORDS


def test_swap_keeps_the_tokens_and_moves_at_most_two_per_change():
    for seed in range(50):
        out = random_swap(WORDS, 0.2, rng(seed))
        assert Counter(out) == Counter(WORDS) and out != WORDS
        moved = sum(a != b for a, b in zip(out, WORDS))
        assert 2 <= moved <= 2 * changes(0.2, len(WORDS)) == 8
    assert random_swap(WORDS, 0.0, rng()) == WORDS
    assert random_swap([7], 0.5, rng()) == [7]
    assert Counter(random_swap([5, 5, 6], 0.5, rng())) == Counter([5, 5, 6])


def test_insertion_adds_copies_of_the_texts_own_tokens():
    for seed in range(50):
        out = random_insertion(WORDS, 0.2, rng(seed))
        assert len(out) == len(WORDS) + changes(0.2, len(WORDS)) == 24
        assert set(out) <= set(WORDS)
        assert is_subsequence(WORDS, out)  # the original tokens, in order, with copies in between
        extra = Counter(out) - Counter(WORDS)
        assert sum(extra.values()) == 4
    assert random_insertion(WORDS, 0.2, rng(), room=21) == random_insertion(WORDS, 0.2, rng())[:21]
    assert random_insertion(WORDS, 0.0, rng()) == WORDS
    assert changes(0.01, 5) == 1 and changes(0.5, 9) == 4  # EDA's n = max(1, int(alpha * length))


# ------------------------------------------------------------------ a stored row

@pytest.mark.parametrize("left", [False, True])
@pytest.mark.parametrize("operation", ["delete", "swap", "insert"])
def test_a_row_keeps_its_special_tokens_and_a_mask_that_fits(operation, left):
    words = WORDS[:8]
    ids, mask = row(words, 16, left=left)
    aug = augment(0.3, padding_side="left" if left else "right")
    for seed in range(20):
        out_ids, out_mask = aug.row(ids, mask, operation, rng(seed))
        assert out_ids.shape == ids.shape and out_ids.dtype == ids.dtype and out_mask.dtype == mask.dtype
        real = out_ids[out_mask.bool()].tolist()
        padding = out_ids[~out_mask.bool()].tolist()
        assert real[0] == CLS and real[-1] == SEP and padding == [PAD] * len(padding)
        n = int(out_mask.sum())  # the mask is one block, on the side the tokenizer padded
        assert out_mask.tolist() == ([0] * (16 - n) + [1] * n if left else [1] * n + [0] * (16 - n))
        middle = real[1:-1]
        assert CLS not in middle and SEP not in middle
        if operation == "delete":
            assert is_subsequence(middle, words) and len(middle) >= 1
        elif operation == "swap":
            assert Counter(middle) == Counter(words)
        else:
            assert set(middle) <= set(words) and len(middle) == len(words) + changes(0.3, len(words))


def test_insertion_into_a_full_row_stays_at_max_length():
    ids, mask = row(WORDS[:14], 16)  # [CLS] 14 tokens [SEP]: no padding
    out_ids, out_mask = augment(0.3).row(ids, mask, "insert", rng())
    assert out_mask.tolist() == [1] * 16
    assert out_ids[0] == CLS and out_ids[-1] == SEP and set(out_ids[1:-1].tolist()) <= set(WORDS[:14])
    out_ids, out_mask = augment(0.3).row(*row(WORDS[:14], 16), "delete", rng(1))
    n = int(out_mask.sum())  # a full row that lost tokens gets padding (the tokenizer's pad id)
    assert n < 16 and out_ids[n - 1] == SEP and out_ids[n:].tolist() == [PAD] * (16 - n)


def test_unk_is_a_word_and_rows_it_cannot_read_are_left_alone():
    ids, mask = row([UNK, 11, 12], 8)
    out, _ = augment(0.3).row(ids, mask, "swap", rng())
    assert Counter(out[1:4].tolist()) == Counter([UNK, 11, 12])
    pair = torch.tensor([CLS, 11, SEP, 12, SEP, PAD]), torch.tensor([1, 1, 1, 1, 1, 0])
    empty = torch.tensor([CLS, SEP, PAD, PAD]), torch.tensor([1, 1, 0, 0])
    for ids, mask in (pair, empty):
        out_ids, out_mask = augment(0.3).row(ids, mask, "delete", rng())
        assert torch.equal(out_ids, ids) and torch.equal(out_mask, mask)


# ------------------------------------------------------------------ the stream

def test_same_seed_same_draw_another_epoch_or_sample_another():
    ids, mask = row(WORDS[:10], 16)
    item = {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor(1)}

    def draws(aug, epoch, indices=range(30)):
        aug.epoch = epoch
        return [aug(item, i)["input_ids"].tolist() for i in indices]

    a, b = augment(0.2, seed=7), augment(0.2, seed=7)
    assert draws(a, 1) == draws(b, 1) and draws(a, 3) == draws(b, 3)  # a resumed trial: the same stream
    assert draws(a, 1) != draws(a, 2)
    assert draws(augment(0.2, seed=8), 1) != draws(a, 1)
    assert len({tuple(x) for x in draws(a, 1)}) > 20  # samples differ from one another
    # swap and insert always change a text, deletion at 0.2 of 10 tokens leaves it whole with p = 0.8^10
    assert sum(x != ids.tolist() for x in draws(a, 1)) >= 25
    assert draws(augment(0.2, ops=["swap"]), 1, range(5)) != draws(augment(0.2, ops=["insert"]), 1, range(5))
    for x in draws(augment(0.2, ops=["swap"]), 1):
        assert Counter(x) == Counter(ids.tolist())
    off = augment(0.0)
    assert off(item, 0) is item


# ------------------------------------------------------------------ the spec

def test_the_spec_refuses_it_for_vision_and_checks_its_values(resnet_weights, tiny_bert, text_csvs):
    vision = vision_spec(resnet_weights, strategies=[{"name": "full", "hparams": {"augment_text": 0.1}},
                                                     {"name": "lora", "hparams": {"augment_text": 0.0}}])
    vision["search"]["hparams"]["augment_text"] = {"uniform": [0.0, 0.2]}
    found = problems(vision)
    assert "EDA augments the tokens of texts" in found["search.hparams.augment_text"]
    assert "EDA augments the tokens of texts" in found["strategies[0].hparams.augment_text"]
    assert "strategies[1].hparams.augment_text" not in found
    vision["search"]["hparams"]["augment_text"] = {"choice": [0.0]}
    del vision["strategies"][0]["hparams"]
    parse_job(vision)  # 0 is no augmentation: allowed everywhere
    text = text_spec(tiny_bert, text_csvs, training={"augment_text_ops": ["swap", "swap"]})
    text["search"]["hparams"]["augment_text"] = 0.7
    found = problems(text)
    assert "list each operation once" in found["training.augment_text_ops"]
    assert "0.5" in found["search.hparams.augment_text"]
    text["training"]["augment_text_ops"] = ["shuffle"]
    assert "'delete', 'swap' or 'insert'" in problems(text)["training.augment_text_ops[0]"]
    job = parse_job(text_spec(tiny_bert, text_csvs, search={"hparams": {"augment_text": {"uniform": [0.05, 0.3]}}}))
    assert job.training.augment_text_ops == ["delete", "swap", "insert"]


# ------------------------------------------------------------------ in a trial

@pytest.fixture
def text_job(tiny_bert, text_csvs, tmp_path):
    job = parse_job(text_spec(tiny_bert, text_csvs, training={"epochs": 2}))
    prepare_data(job, tmp_path / "data")
    return job


def test_the_trial_augments_train_batches_only(text_job, tmp_path):
    from raytune_ft.train.recipe import TrialRecipe

    config = trial_config(text_job, tmp_path / "data", tmp_path / "t", {"name": "full"},
                          {**HP, "augment_text": 0.3})
    recipe = TrialRecipe(config)
    recipe.setup()
    aug = recipe.text_augment
    assert aug.special == {PAD, CLS, SEP, MASK} and aug.pad_id == PAD  # from the tokenizer; [UNK] is a word
    stored = {split: {k: v[:] for k, v in load_split(tmp_path / "data", split).items()}
              for split in ("train", "validation")}
    seen = list(recipe.val_loader)  # batches come trimmed after the last column any row uses (train/evaluate.py)
    width = seen[0]["input_ids"].shape[1]
    assert all(b["input_ids"].shape[1] == width for b in seen)
    assert torch.equal(torch.cat([b["input_ids"] for b in seen]), stored["validation"]["input_ids"][:, :width])
    assert torch.equal(torch.cat([b["attention_mask"] for b in seen]), stored["validation"]["attention_mask"][:, :width])
    assert not stored["validation"]["attention_mask"][:, width:].any()  # what was cut is padding
    dataset = recipe.train_loader.dataset
    first = [dataset[i]["input_ids"] for i in range(len(dataset))]
    assert sum(not torch.equal(x, stored["train"]["input_ids"][i]) for i, x in enumerate(first)) > len(first) // 2
    aug.epoch = 2
    assert any(not torch.equal(dataset[i]["input_ids"], first[i]) for i in range(len(dataset)))
    none = TrialRecipe(trial_config(text_job, tmp_path / "data", tmp_path / "u", {"name": "full"}, HP))
    none.setup()
    assert none.text_augment is None
    assert torch.equal(none.train_loader.dataset[3]["input_ids"], stored["train"]["input_ids"][3])


def test_a_text_trial_trains_with_it_on(text_job, tmp_path, monkeypatch):
    calls = []
    real = TextAugment.__call__

    def spy(self, item, index):
        calls.append((self.epoch, index))
        return real(self, item, index)

    monkeypatch.setattr(TextAugment, "__call__", spy)
    config = trial_config(text_job, tmp_path / "data", tmp_path / "t", {"name": "full"},
                          {**HP, "augment_text": 0.2})
    history = train_trial(config)
    assert [m["epoch"] for m in history] == [1, 2]
    assert all(np.isfinite(m["train_loss"]) and 0 <= m["val_accuracy"] <= 1 for m in history)
    train = len(load_split(tmp_path / "data", "train")["labels"])
    for epoch in (1, 2):  # every training sample, once an epoch; validation never
        assert sorted(i for e, i in calls if e == epoch) == list(range(train))
    assert len(calls) == 2 * train


def test_a_vision_trial_refuses_it(resnet_weights, tmp_path):
    job = parse_job(vision_spec(resnet_weights))
    prepare_data(job, tmp_path / "data")
    config = trial_config(job, tmp_path / "data", tmp_path / "t", {"name": "full"}, {**HP, "augment_text": 0.1})
    with pytest.raises(ValueError, match="text jobs only"):
        train_trial(config)
