"""EWC (elastic weight consolidation, Kirkpatrick et al. 2017) as a knob, like `l2sp`:

    loss + ewc / 2 · Σ_i F_i (θ_i − θ*_i)²

θ* are the pretrained values of the backbone weights that train, F the diagonal Fisher information
of the pretrained model: a weight the source task leaned on (large F) is held near its pretrained
value, one it did not use (F = 0) moves freely. L2-SP is the same penalty with every F_i = 1.

The Fisher is estimated ONCE per job, in the driver, right after the data are prepared (`write_fisher`,
called by `prepare_job` (raytune_ft/prepare.py) when some trial can have ewc > 0), and stored beside the splits as
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

The modules, in the order a job meets them:

    config.py    the spec's data.fisher_source (FisherSource), whether a job wants the Fisher (`wanted`)
    samples.py   the samples it is estimated on: a split of the prepared data, or a source-task file
    fisher.py    the probe, the empirical Fisher, written beside the prepared splits (`write_fisher`)
    penalty.py   in the worker: the entries a trial trains (`load_fisher`) and the penalty (`ewc_penalty`)

Nothing is imported here: data/config.py holds a FisherSource, so this package must load without data/.
"""
