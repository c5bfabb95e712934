"""EWC's diagonal Fisher, estimated once per job at the pretrained weights: a linear probe on the frozen
features stands in for the pretrained head, F is the empirical Fisher under it (the package's docstring
says why and what it costs), written beside the prepared splits (`write_fisher`)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from raytune_ft.ewc.config import FISHER_FILE
from raytune_ft.ewc.samples import fisher_samples
from raytune_ft.files import replacing, write_text


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

    batch, labels, described = fisher_samples(job, out_dir, meta)
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
    with replacing(out_dir / FISHER_FILE) as tmp:
        save_file({n: t.contiguous() for n, t in fisher.items()}, str(tmp))
    meta = {**meta, "fisher": info}
    write_text(out_dir / "meta.json", json.dumps(meta, indent=2))
    return meta


def describe(info: dict) -> str:
    """The line a run prints about its Fisher estimate."""
    return (f"EWC: diagonal Fisher estimated once from {info['source']} ({info['samples']} samples, "
            f"{info['classes']} classes; linear probe on frozen features, train accuracy {info['probe_accuracy']:.2f}), "
            f"mean {info['mean']:.3g}, max {info['max']:.3g} -> data/{info['file']}")
