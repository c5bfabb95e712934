"""Samples to the columns preparation stores: images resized to the model's stored size, texts tokenized.

In this process, `CHUNK` samples at a time; or, for a job on a Ray cluster, spread over the cluster's
free CPUs by `Encoder` actors, `PART` samples each, returned in order to the driver, which only writes
them (data/prepare.py). Decoding images is what costs; the driver holds at most one part per actor.

    encoder = Encoder(source, config, recipe=..., tokenizer=..., max_length=...)
    for columns in encoder.stream(refs, labels): ...      # {"pixel_values": n x 3 x R x R uint8, "labels": n}
    for columns in on_cluster(encoder, refs, labels): ...  # the same columns, decoded on the cluster

Where the actors run: anywhere with a free CPU when every node can read the samples (a bucket, texts,
a built-in data set); otherwise on the driver's node (the head), which sees the paths the job checked.
"""
from __future__ import annotations

import os
from typing import Any, Iterator, Optional

from raytune_ft.data.store import LABELS
from raytune_ft.errors import InputError

CHUNK = 256  # samples decoded at a time (256 images of 256 x 256: ~50 MB decoded)
PART = 512  # samples an actor decodes and hands back at a time
MAX_ACTORS = 16


def load_tokenizer(model_spec):
    """The tokenizer of a text model's spec; InputError (what to give instead) when it cannot be loaded."""
    from raytune_ft.models.text import Transformers

    try:
        return Transformers.tokenizer(model_spec)
    except Exception as e:  # a hub name with no network, a folder without tokenizer files, ...
        reason = " ".join(str(e).split())
        raise InputError(f"model.name {model_spec.name}: cannot load its tokenizer ({reason or type(e).__name__}); "
                         "give a local Hugging Face model folder with its tokenizer files") from None


class Encoder:
    """What turns one split's samples into stored columns. Picklable: the same object runs as a Ray actor."""

    def __init__(self, source, config, *, recipe=None, tokenizer=None, max_length: Optional[int] = None):
        self.source, self.config = source, config
        self.recipe, self.tokenizer, self.max_length = recipe, tokenizer, max_length

    def columns(self, samples: list, labels: list[int]) -> dict[str, Any]:
        import numpy as np

        out = {LABELS: np.asarray(labels, dtype=np.int64)}
        if self.tokenizer is None:
            out["pixel_values"] = self.recipe.store(samples).numpy()  # n x 3 x R x R uint8
            return out
        enc = self.tokenizer(samples, max_length=self.max_length, truncation=True, padding="max_length",
                             return_tensors="np")
        out["input_ids"], out["attention_mask"] = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
        return out

    def stream(self, refs: list, labels: list[int], chunk: Optional[int] = None) -> Iterator[dict]:
        done, chunk = 0, chunk or CHUNK
        for samples in self.source.decode(self.config, refs, chunk):
            yield self.columns(samples, labels[done:done + len(samples)])
            done += len(samples)

    def part(self, refs: list, labels: list[int]) -> dict:
        import numpy as np

        pieces = list(self.stream(refs, labels))
        return {column: np.concatenate([p[column] for p in pieces]) for column in pieces[0]}


def on_cluster(encoder: Encoder, refs: list, labels: list[int]) -> Iterator[dict]:
    """`encoder.stream`'s columns, PART samples at a time, decoded by Encoder actors on the cluster Ray is
    connected to; at most one part per actor is waiting for the driver. An error in a sample (a file that
    is not an image) comes back as the InputError it is."""
    import ray
    from ray.exceptions import RayTaskError
    from ray.util import ActorPool
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    parts = [(refs[i:i + PART], labels[i:i + PART]) for i in range(0, len(refs), PART)]
    free = int(ray.available_resources().get("CPU", 0))
    if encoder.source.readable_everywhere(encoder.config) and free >= 1:
        options, n = {"num_cpus": 1}, min(MAX_ACTORS, free, len(parts))
    else:  # on this node (the head may have no CPU for Ray to give: the actors then ask for none)
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        options, n = {"num_cpus": 0, "scheduling_strategy": here}, min(MAX_ACTORS, os.cpu_count() or 1, len(parts))
    actor = ray.remote(Encoder).options(**options)
    actors = [actor.remote(encoder.source, encoder.config, recipe=encoder.recipe, tokenizer=encoder.tokenizer,
                           max_length=encoder.max_length) for _ in range(n)]
    try:
        yield from ActorPool(actors).map(lambda a, p: a.part.remote(*p), parts)
    except RayTaskError as e:
        if isinstance(e.cause, (InputError, ValueError, OSError)):
            raise e.cause from None
        raise
    finally:
        for a in actors:
            ray.kill(a)

