"""EDA's offline operations (Wei & Zou 2019, "Easy Data Augmentation") on the token ids of a text job's
training samples, drawn again for every sample at every epoch:

    delete   each token is dropped with probability alpha (one is kept if all would go)
    swap     n = max(1, int(alpha x tokens)) times, two tokens trade places
    insert   n times, a copy of one of the text's own tokens goes in at a random place (EDA inserts a
             synonym; without a dictionary, nothing downloaded, the word itself)

`hparams.augment_text` is alpha (0: off); `training.augment_text_ops` the operations, one of which is
drawn per sample and epoch, as each of EDA's augmented sentences comes from one operation.

What is changed: the tokens of the real part (attention mask 1) that are not the tokenizer's special
tokens ([CLS] / [SEP], <s> / </s>, ...; [UNK] stands for a word and counts as one). Padding is moved so
that the mask still covers exactly the real tokens (a deleted token shortens the real part), on the side
the tokenizer padded. The units are tokens, not words: a word the tokenizer split into pieces
("play ##ing") can lose or move one piece. Stored rows carry no word ids, and a second tokenization per
sample and epoch would cost more than the step. A row whose special tokens are not only at its ends
(a text pair) is left as it is.

The draw is seeded by (trial seed, epoch, sample index): the same trial sees the same stream when it is
resumed, and another epoch another one. Validation and test never go through it.
"""
from __future__ import annotations

from typing import Optional, Sequence

OPERATIONS = ("delete", "swap", "insert")


def changes(alpha: float, n: int) -> int:
    """How many swaps / insertions alpha asks of a text of n tokens (EDA: at least one)."""
    return max(1, int(alpha * n))


def random_deletion(tokens: list, alpha: float, rng) -> list:
    """Each token dropped with probability alpha, the others in their order; never all of them."""
    if len(tokens) <= 1 or alpha <= 0:
        return list(tokens)
    keep = rng.random(len(tokens)) >= alpha
    if not keep.any():
        return [tokens[int(rng.integers(len(tokens)))]]
    return [t for t, k in zip(tokens, keep) if k]


def random_swap(tokens: list, alpha: float, rng) -> list:
    """`changes` times, two different positions exchange their tokens."""
    out = list(tokens)
    if len(out) < 2 or alpha <= 0:
        return out
    for _ in range(changes(alpha, len(out))):
        i, j = rng.choice(len(out), size=2, replace=False)
        out[i], out[j] = out[j], out[i]
    return out


def random_insertion(tokens: list, alpha: float, rng, room: Optional[int] = None) -> list:
    """`changes` copies of the text's own tokens, each at a random place; at most `room` tokens in all
    (a text at max_length loses its last tokens, as the tokenizer cut it)."""
    out = list(tokens)
    if not out or alpha <= 0:
        return out
    for _ in range(changes(alpha, len(tokens))):
        out.insert(int(rng.integers(len(out) + 1)), tokens[int(rng.integers(len(tokens)))])
    return out if room is None else out[:room]


APPLY = {"delete": random_deletion, "swap": random_swap, "insert": random_insertion}


class TextAugment:
    """One training sample's token ids -> an EDA variant of it, different at each `epoch` (set by the loop)."""

    def __init__(self, alpha: float, operations: Sequence[str], special_ids, pad_id: int, seed: int,
                 padding_side: str = "right"):
        unknown = [op for op in operations if op not in APPLY]
        if unknown or not operations:
            raise ValueError(f"text augmentation operations {list(operations)}: use some of {list(OPERATIONS)}")
        self.alpha, self.operations = float(alpha), list(operations)
        self.special, self.pad_id, self.seed = frozenset(int(i) for i in special_ids), int(pad_id), int(seed)
        self.left = padding_side == "left"
        self.epoch = 1

    @classmethod
    def for_trial(cls, config, train_set: dict) -> Optional["TextAugment"]:
        """The trial's augmentation (None when hparams.augment_text is 0), the special tokens and the
        padding id from the model's tokenizer (the one that prepared the data)."""
        alpha = config.hparams.augment_text
        if not alpha:
            return None
        if "input_ids" not in train_set:
            raise ValueError(f"hparams.augment_text {alpha}: text augmentation applies to text jobs only (this "
                             "one has images): set it to 0, and use training.augment for images")
        from raytune_ft.models import SOURCES

        source = SOURCES.get(config.model["source"])
        tokenizer = source.tokenizer(source.Config.model_validate(config.model))
        unk = getattr(tokenizer, "unk_token_id", None)
        special = [i for i in tokenizer.all_special_ids if i != unk]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        return cls(alpha, config.training.augment_text_ops, special, pad, config.seed,
                   getattr(tokenizer, "padding_side", "right"))

    def rng(self, index: int):
        import numpy as np

        return np.random.default_rng([self.seed % 2**63, self.epoch, int(index)])

    def __call__(self, item: dict, index: int) -> dict:
        if self.alpha <= 0:
            return item
        rng = self.rng(index)
        operation = self.operations[int(rng.integers(len(self.operations)))]
        ids, mask = self.row(item["input_ids"], item["attention_mask"], operation, rng)
        return {**item, "input_ids": ids, "attention_mask": mask}

    def row(self, input_ids, attention_mask, operation: str, rng):
        """One stored row (1-D tensors of the same length) with `operation` applied to its tokens."""
        import torch

        ids, mask = input_ids.tolist(), attention_mask.tolist()
        real = [p for p, m in enumerate(mask) if m]
        if not real or real[-1] - real[0] + 1 != len(real):  # nothing, or a mask with holes: not ours to move
            return input_ids, attention_mask
        start, end = real[0], real[-1] + 1
        tokens = ids[start:end]
        words = [j for j, t in enumerate(tokens) if t not in self.special]
        if not words or words[-1] - words[0] + 1 != len(words):  # no words, or a special token between them
            return input_ids, attention_mask
        prefix, middle, suffix = tokens[:words[0]], tokens[words[0]:words[-1] + 1], tokens[words[-1] + 1:]
        room = len(ids) - len(prefix) - len(suffix)
        extra = {"room": room} if operation == "insert" else {}
        changed = prefix + APPLY[operation](middle, self.alpha, rng, **extra) + suffix
        pad_id = ids[mask.index(0)] if 0 in mask else self.pad_id
        padding, left = len(ids) - len(changed), start > 0 or self.left
        out_ids = [pad_id] * padding + changed if left else changed + [pad_id] * padding
        out_mask = [0] * padding + [1] * len(changed) if left else [1] * len(changed) + [0] * padding
        return (torch.tensor(out_ids, dtype=input_ids.dtype),
                torch.tensor(out_mask, dtype=attention_mask.dtype))
