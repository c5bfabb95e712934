"""EWC (elastic weight consolidation, Kirkpatrick et al. 2017) as a knob, like `l2sp`:

    loss + ewc / 2 · Σ_i F_i (θ_i − θ*_i)²

θ* are the pretrained values of the backbone weights that train, F the diagonal Fisher information
of the pretrained model: a weight the source task leaned on (large F) is held near its pretrained
value, one it did not use (F = 0) moves freely. L2-SP is the same penalty with every F_i = 1.

The Fisher is estimated ONCE per job, in the driver, while the data are prepared (`write_fisher`,
called by `prepare_data` when some trial can have ewc > 0), and stored beside the splits as
`fisher.safetensors`; the trials get it with the data (`storage.sync_up` / `ensure_local` move the data
folder) and each keeps the entries of the parameters it trains (`load_fisher`).

The samples: `data.fisher_source` — `{path: ...}`, a file (or folder) of the source task in the job's
own data format and columns, or `{split: train | validation | test}`, a split of the prepared data;
default: the target's training split. `data.fisher_samples` of them (default 256), drawn at random
(seeded by `data.seed`). The run prints which, and the prepared data's meta.json records it ("fisher").

Log-likelihood gradients need the model's output distribution, but the pretrained model's own head
is gone (a new head is attached). The choice here: a linear probe on the frozen pooled features —
scikit-learn's LogisticRegression (standardised features, C = 1) on the Fisher samples with their
true labels — stands in for the source head, and F_i is the EMPIRICAL Fisher under that probe:
the mean over samples of (∂ log p(y | x) / ∂θ_i)², y the sample's true label, one backward pass per
sample, the backbone in eval mode (BatchNorm running statistics, no dropout), on the CPU.

Caveats. (1) The empirical Fisher (true labels) is not the true Fisher (labels drawn from the
model); it is the usual cheap stand-in and is exact only where the model fits the data. (2) The
probe is not the source task's head: on the target's own split, F says which weights the pretrained
features need to separate the TARGET classes linearly, which is a measure of importance for
"keep what already works here", not of what the source task needed. Give source-task samples
(`fisher_source: {path: ...}`) for the original EWC meaning. (3) F is not normalised: its scale
depends on the model and the data, so search `ewc` on a log scale (the meta records F's mean and max).

peft strategies (lora, ia3, ...) train new adapter weights, not the backbone's own: they have no
pretrained value to hold, and the spec refuses ewc > 0 for them (as it does l2sp), by the same
`trains_backbone` rule that refuses feature_extraction.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from raytune_ft.data.fisher import FisherSource

FISHER_FILE = "fisher.safetensors"
DEFAULT_SAMPLES = 256


def wanted(job) -> bool:
    """Whether some trial of `job` can have ewc > 0 (only then is the Fisher estimated)."""
    from raytune_ft.searchable import can_be_nonzero
    from raytune_ft.strategies import STRATEGIES

    for s in job.strategies:
        value = s.hparams.ewc if s.hparams.ewc is not None else job.search.hparams.ewc
        if STRATEGIES.get(s.name).trains_backbone and can_be_nonzero(value):  # ewc >= 0: non-zero is > 0
            return True
    return False


# --------------------------------------------------------------------------- the samples

def _samples(job, out_dir: Path, meta: dict):
    """({column: tensor} of the chosen samples, their labels 0..k-1 as a tensor, what they are)."""
    import random

    import numpy as np
    import torch

    from raytune_ft.data.sources import DATA_SOURCES
    from raytune_ft.errors import InputError
    from raytune_ft.data.store import load_split

    config = job.data
    n = config.fisher_samples
    source_spec = config.fisher_source or FisherSource(split="train")
    rng = random.Random(config.seed)
    if source_spec.split is not None:
        split = source_spec.split
        if split not in meta["splits"]:
            raise InputError(f"data.fisher_source: the prepared data have no {split} split (they have "
                             f"{', '.join(meta['splits'])}); name one of those, or give data.{split}")
        columns = load_split(out_dir, split)
        total = len(columns["labels"])
        rows = sorted(rng.sample(range(total), min(n, total)))
        batch = {k: (v[rows] if not isinstance(v, torch.Tensor) else v[torch.tensor(rows)]) for k, v in columns.items()}
        labels = batch.pop("labels")
    else:
        from raytune_ft.data import encode
        from raytune_ft.data.labels import class_names, label_names

        source = DATA_SOURCES.get(config.source)()
        own = config.model_copy(update={"train": source_spec.path, "validation": None, "test": None})
        refs, ys = source.index(own)["train"]
        if not refs:
            raise InputError(f"data.fisher_source.path {source_spec.path} has no samples; give at least one")
        names = label_names(ys, lambda row: source.locate(own, "train", row), "fisher_source")
        classes = class_names(names)
        rows = sorted(rng.sample(range(len(refs)), min(n, len(refs))))
        family = meta["family"]
        encoder = encode.Encoder(
            source, own, recipe=job.model.image_recipe() if family == "vision" else None,
            tokenizer=encode.load_tokenizer(job.model) if family == "text" else None,
            max_length=job.model.max_length if family == "text" else None)
        index = {c: i for i, c in enumerate(classes)}
        parts = list(encoder.stream([refs[i] for i in rows], [index[names[i]] for i in rows]))
        batch = {k: torch.from_numpy(np.concatenate([p[k] for p in parts])) for k in parts[0]}
        labels = batch.pop("labels")
    present, labels = torch.unique(labels, return_inverse=True)  # the classes the sample has, as 0..k-1
    if len(present) < 2:
        raise InputError(f"data.fisher_source ({source_spec.describe()}): the {len(labels)} sample(s) drawn hold "
                         f"{len(present)} class; the probe that stands in for the pretrained head needs at least "
                         "2: raise data.fisher_samples or name data with more classes")
    return batch, labels, source_spec.describe()


# --------------------------------------------------------------------------- the probe and the estimate

def _features(model, batch: dict, meta: dict, batch_size: int = 64):
    import torch

    from raytune_ft.train.evaluate import model_inputs

    out = []
    with torch.no_grad():
        for start in range(0, len(next(iter(batch.values()))), batch_size):
            rows = {k: v[start:start + batch_size] for k, v in batch.items()}
            out.append(model.features(model_inputs(rows, meta, torch.device("cpu"))).float())
    return torch.cat(out)


def fit_probe(features, labels):
    """A Linear layer (features -> k classes) fitted by logistic regression: (the layer, train accuracy)."""
    import warnings

    import torch
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    x = features.double().numpy()
    mean, std = x.mean(0), x.std(0)
    std[std < 1e-8] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(C=1.0, max_iter=1000).fit((x - mean) / std, labels.numpy())
    coef, intercept = clf.coef_, clf.intercept_
    if coef.shape[0] == 1:  # two classes: sklearn gives one logit; softmax over [0, z] is sigmoid(z)
        coef = torch.cat([torch.zeros_like(torch.from_numpy(coef)), torch.from_numpy(coef)]).numpy()
        intercept = [0.0, float(intercept[0])]
    # the standardisation folded into the layer: W (x - m) / s + b = (W / s) x + (b - W m / s)
    weight = torch.from_numpy(coef / std)
    bias = torch.as_tensor(intercept, dtype=torch.float64) - weight @ torch.from_numpy(mean)
    probe = torch.nn.Linear(x.shape[1], weight.shape[0])
    with torch.no_grad():
        probe.weight.copy_(weight.float())
        probe.bias.copy_(bias.float())
    accuracy = float((probe(features.float()).argmax(-1) == labels).float().mean())
    return probe, accuracy


def empirical_fisher(model, probe, samples, names: Optional[list[str]] = None) -> dict:
    """{parameter name: mean over `samples` of (∂ log p(y | x) / ∂θ)²}, p = softmax(probe(model.features(x))).

    samples: (model inputs of one sample as a batch of 1, its label) pairs. names: the parameters to
    estimate (default: every backbone parameter). The model is put in eval mode and left there."""
    import torch
    import torch.nn.functional as F

    model.eval()
    params = dict(model.named_parameters())
    names = names if names is not None else [n for n in params if n.startswith("backbone.")]
    for n in names:
        params[n].requires_grad_(True)
    wanted_params = [params[n] for n in names]
    total = [torch.zeros_like(p, dtype=torch.float32) for p in wanted_params]
    count = 0
    for inputs, label in samples:
        logits = probe(model.features(inputs).float())
        loss = F.cross_entropy(logits, torch.as_tensor([int(label)]))  # −log p(y | x)
        grads = torch.autograd.grad(loss, wanted_params, allow_unused=True)
        for acc, g in zip(total, grads):
            if g is not None:
                acc += g.detach().float() ** 2
        count += 1
    return {n: t / max(count, 1) for n, t in zip(names, total)}


def estimate(job, out_dir: Path, meta: dict) -> tuple[dict, dict]:
    """(the Fisher of every backbone parameter, what the meta records about it), at the pretrained weights."""
    import torch

    from raytune_ft.models import build_model
    from raytune_ft.train.evaluate import model_inputs

    batch, labels, described = _samples(job, out_dir, meta)
    model = build_model(job.model, int(labels.max()) + 1)
    model.eval()
    probe, accuracy = fit_probe(_features(model, batch, meta), labels)
    cpu = torch.device("cpu")
    samples = ((model_inputs({k: v[i:i + 1] for k, v in batch.items()}, meta, cpu), labels[i])
               for i in range(len(labels)))
    fisher = empirical_fisher(model, probe, samples)
    values = torch.cat([f.flatten() for f in fisher.values()])
    info = {"source": described, "samples": len(labels), "classes": int(labels.max()) + 1,
            "probe": "logistic regression on the frozen pooled features (empirical Fisher, true labels)",
            "probe_accuracy": round(accuracy, 4), "parameters": len(fisher), "file": FISHER_FILE,
            "mean": float(values.mean()), "max": float(values.max())}
    return fisher, info


def write_fisher(job, out_dir: Path, meta: dict) -> dict:
    """Estimate the Fisher, write it beside the prepared splits and record it in meta.json; return the meta.

    Both files are written to a temporary name and renamed into place: in a run on prepared data they
    are hard links to the prepared folder's files, which must stay as they are."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    fisher, info = estimate(job, out_dir, meta)
    tmp = out_dir / f".{FISHER_FILE}.tmp"
    save_file({n: t.contiguous() for n, t in fisher.items()}, str(tmp))
    os.replace(tmp, out_dir / FISHER_FILE)
    meta = {**meta, "fisher": info}
    tmp = out_dir / ".meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, out_dir / "meta.json")
    return meta


def describe(info: dict) -> str:
    """The line a run prints about its Fisher estimate."""
    return (f"EWC: diagonal Fisher estimated once from {info['source']} ({info['samples']} samples, "
            f"{info['classes']} classes; linear probe on frozen features, train accuracy {info['probe_accuracy']:.2f}), "
            f"mean {info['mean']:.3g}, max {info['max']:.3g} -> data/{info['file']}")


# --------------------------------------------------------------------------- in the worker

def load_fisher(data_dir, anchors: dict) -> dict:
    """The Fisher entries of the parameters in `anchors` ({name: pretrained value}: the backbone weights
    that train), on their device. A missing file or entry is an error that says what to do."""
    from safetensors.torch import load_file

    path = Path(data_dir) / FISHER_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no Fisher information for ewc > 0: the data were prepared by a job whose "
                                "trials could not have ewc > 0; prepare the data again with this job")
    fisher = load_file(str(path))
    missing = [n for n in anchors if n not in fisher]
    if missing:
        raise ValueError(f"{path} has no entry for {len(missing)} trained parameter(s), e.g. {missing[0]!r}: it was "
                         "estimated for another model; prepare the data again with this job's model section")
    wrong = [n for n, a in anchors.items() if fisher[n].shape != a.shape]
    if wrong:
        raise ValueError(f"{path}: {wrong[0]!r} has shape {tuple(fisher[wrong[0]].shape)}, the model's is "
                         f"{tuple(anchors[wrong[0]].shape)}; prepare the data again with this job's model section")
    return {n: fisher[n].to(device=a.device, dtype=a.dtype) for n, a in anchors.items()}


def ewc_penalty(params: dict, anchors: dict, fisher: dict, strength: float):
    """strength / 2 · Σ F (θ − θ*)² over the parameters in `fisher`."""
    return strength / 2 * sum((fisher[n] * (params[n] - anchors[n]) ** 2).sum() for n in fisher)
