"""Split a `Classifier` into stem, ordered blocks and head (for layer-wise schedules and freezing).

Every parameter of the model lands in exactly one group:

- ``stem``: what runs before the first block (embeddings, the first conv, ViT's class token...);
- ``blocks``: the repeated blocks, bottom -> top. Backbone parameters that sit *after* the last
  block (a final conv / norm such as EfficientNet's ``conv_head``/``bn1``, ViT's ``encoder.ln``)
  join the last block; any sitting *between* two blocks (a downsampling layer between stages)
  join the block that follows them;
- ``head``: the new classification head.

Groups are lists of paths as in ``model.named_modules()`` (module paths) or, for parameters held
directly by a module that also holds blocks (ViT's ``class_token``, ``encoder.pos_embedding``),
parameter names as in ``model.named_parameters()``. ``Blocks.parameter_names`` turns a group into
the set of parameter names.

Detection is structural: the blocks are the outermost instances of the module class that is
repeated inside containers (``nn.ModuleList`` / ``nn.Sequential``) and holds the most parameters.
That finds torchvision ResNet (each ``layerX.Y``), EfficientNet / MobileNetV2 / V3 (each
inverted-residual block), ViT (``encoder.layers.*``), efficientnet_lite_pytorch (``_blocks.i``) and
transformers BERT / RoBERTa (``encoder.layer.i``) and DistilBERT (``transformer.layer.i``), among
others. ``block_paths`` overrides detection for any model.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

_STEM = -1
_HEAD = -2


@dataclass
class Blocks:
    stem: list[str]
    blocks: list[list[str]]  # bottom -> top
    head: list[str]

    def parameter_names(self, model, group: list[str]) -> set[str]:
        """Names (as in ``model.named_parameters()``) of every parameter under the group's paths."""
        names = [n for n, _ in model.named_parameters()]
        out: set[str] = set()
        for path in group:
            hit = {n for n in names if n == path or n.startswith(path + ".")}
            if not hit:
                raise ValueError(f"{path!r} holds no parameter of {type(model).__name__}")
            out |= hit
        return out

    def groups(self) -> list[list[str]]:
        """All groups bottom -> top: stem, each block, head."""
        return [self.stem, *self.blocks, self.head]


def find_blocks(model, block_paths: list[str] | None = None) -> Blocks:
    """Stem / blocks / head of a `Classifier` (``.backbone`` + ``.head``).

    ``block_paths``: the ordered block module paths relative to the backbone (e.g.
    ``["layers.0", "layers.1"]``), overriding detection. Where detection finds no structure, the
    model's ``fallback_block_paths`` (a source's own stages: timm's feature_info) are used, if it has any. With a peft-wrapped backbone, paths are
    relative to the wrapped model (``backbone.get_base_model()``); the returned paths are always
    full paths in ``model.named_modules()``.
    """
    from torch import nn

    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Module):
        raise ValueError(f"find_blocks expects a Classifier (a model with .backbone and .head), "
                         f"got {type(model).__name__}")
    base = backbone.get_base_model() if callable(getattr(backbone, "get_base_model", None)) else backbone
    base_prefix = next((n for n, m in model.named_modules() if m is base), None)
    if base_prefix is None:  # not reachable through named_modules: cannot name its paths
        raise ValueError(f"cannot locate the wrapped model {type(base).__name__} inside "
                         f"{type(backbone).__name__}; set no block-wise option for this model")

    if block_paths is not None:
        full = _user_paths(model, backbone, base, base_prefix, list(block_paths))
    else:
        try:
            full = [_join(base_prefix, p) for p in _detect(base)]
        except ValueError:  # the source's own stages (timm's feature_info), where it names them
            fallback = getattr(model, "fallback_block_paths", None)
            if not fallback or len(fallback) < 2:
                raise
            full = _user_paths(model, backbone, base, base_prefix, list(fallback))
    return _partition(model, full)


# ---------------------------------------------------------------------------------------------

def _join(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix and path else prefix or path


def _user_paths(model, backbone, base, base_prefix: str, paths: list[str]) -> list[str]:
    if not paths:
        raise ValueError("block_paths is empty: give the ordered block module paths, or leave it unset")
    backbone_prefix = next(n for n, m in model.named_modules() if m is backbone)
    full = []
    for path in paths:
        if not isinstance(path, str) or not path:
            raise ValueError(f"block path {path!r} is not a module path (e.g. 'encoder.layer.0')")
        for root, prefix in ((base, base_prefix), (backbone, backbone_prefix)):
            try:
                module = root.get_submodule(path)
            except AttributeError:
                continue
            break
        else:
            raise ValueError(f"block path {path!r} is not a module of {type(base).__name__} "
                             f"(block_paths are relative to the backbone, e.g. {_examples(base)})")
        if next(module.parameters(), None) is None:
            raise ValueError(f"block path {path!r} ({type(module).__name__}) holds no parameters")
        full.append(_join(prefix, path))
    for i, a in enumerate(full):
        for b in full[i + 1:]:
            if a == b or b.startswith(a + ".") or a.startswith(b + "."):
                raise ValueError(f"block paths overlap: {a!r} and {b!r}; each parameter must be in one block")
    return full


def _partition(model, block_paths: list[str]) -> Blocks:
    names = [n for n, _ in model.named_parameters()]
    backbone_params = "backbone."
    block_of: dict[str, int] = {}
    for i, path in enumerate(block_paths):
        for n in names:
            if n == path or n.startswith(path + "."):
                block_of[n] = i

    # Which group each parameter is in: backbone parameters outside blocks go by position.
    group: dict[str, int] = {}
    pending: list[str] = []  # after some block, waiting for the next block
    seen_block = False
    for n in names:
        if not n.startswith(backbone_params):
            group[n] = _HEAD
        elif n in block_of:
            for p in pending:
                group[p] = block_of[n]
            pending = []
            group[n] = block_of[n]
            seen_block = True
        elif not seen_block:
            group[n] = _STEM
        else:
            pending.append(n)
    for p in pending:
        group[p] = len(block_paths) - 1

    # Name parameters outside blocks by their widest module path that holds only that group and
    # no block (else by the parameter's own name).
    groups_under: dict[str, set[int]] = defaultdict(set)
    for n, g in group.items():
        parts = n.split(".")
        for k in range(1, len(parts) + 1):
            groups_under[".".join(parts[:k])].add(g)
    block_ancestors = set()
    for path in block_paths:
        parts = path.split(".")
        block_ancestors.update(".".join(parts[:k]) for k in range(1, len(parts) + 1))

    def owner(n: str) -> str:
        if n in block_of:
            return block_paths[block_of[n]]
        parts = n.split(".")
        for k in range(1, len(parts) + 1):
            prefix = ".".join(parts[:k])
            if prefix not in block_ancestors and groups_under[prefix] == {group[n]}:
                return prefix
        return n  # unreachable: a parameter's own name always qualifies

    stem: list[str] = []
    head: list[str] = []
    blocks: list[list[str]] = [[] for _ in block_paths]
    for n in names:
        g = group[n]
        target = stem if g == _STEM else head if g == _HEAD else blocks[g]
        path = owner(n)
        if path not in target:
            target.append(path)
    return Blocks(stem=stem, blocks=blocks, head=head)


# --- detection --------------------------------------------------------------------------------

def _is_tuner_layer(m) -> bool:
    """A peft adapter layer (wraps one Linear / Conv): counted as the leaf it replaces."""
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # pragma: no cover
        return False
    return isinstance(m, BaseTunerLayer)


def _children(m):
    return [] if _is_tuner_layer(m) else list(m.named_children())


def _walk(m, path=""):
    for name, child in _children(m):
        p = _join(path, name)
        yield p, child, m
        yield from _walk(child, p)


def _owns_params(m) -> bool:
    return next(m.parameters(), None) is not None


def _composite(m) -> bool:
    return bool(_children(m))


def _depth(m) -> int:
    kids = _children(m)
    return 1 + max(_depth(c) for _, c in kids) if kids else 0


def _containers():
    from torch import nn

    return (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _is_stage(m) -> bool:
    """A container of composite modules (a stage such as ResNet's layer1): not a block itself."""
    if not isinstance(m, _containers()):
        return False
    kids = [c for _, c in _children(m) if _owns_params(c)]
    return bool(kids) and all(_composite(c) for c in kids)


def _parent(path: str) -> str:
    return path.rpartition(".")[0]


def _detect(base) -> list[str]:
    """Block paths relative to ``base``, in module order; ValueError when none is found."""
    containers = _containers()
    walked = list(_walk(base))
    # Candidates: composite, parameter-holding children of containers that are not stages.
    candidates = [p for p, m, parent in walked
                  if isinstance(parent, containers) and _composite(m) and _owns_params(m)
                  and not _is_stage(m)]
    cset = set(candidates)
    outer = [p for p in candidates
             if not any(".".join(p.split(".")[:k]) in cset for k in range(1, p.count(".") + 1))]
    modules = {p: m for p, m, _ in walked}
    by_class: dict[type, list[str]] = defaultdict(list)
    for p in outer:
        by_class[type(modules[p])].append(p)
    scored = [(sum(q.numel() for p in paths for q in modules[p].parameters()), cls)
              for cls, paths in by_class.items() if len(paths) >= 2]
    if not scored:
        raise ValueError(
            f"cannot find the block structure of {type(base).__name__}: set model.block_paths to its "
            f"ordered block module paths (relative to the backbone), e.g. {_examples(base)}")
    _, chosen = max(scored, key=lambda s: s[0])
    main = set(by_class[chosen])
    # Other deep blocks in the same stages or in sibling stages (EfficientNetV2 mixes FusedMBConv
    # and MBConv stages); shallow conv-norm-act groups (stem, final conv) stay outside.
    parents = {_parent(p) for p in main}
    grandparents = {_parent(pp) for pp in parents if pp}
    def sibling_block(p: str) -> bool:
        if _depth(modules[p]) < 2:
            return False
        parent = _parent(p)
        return parent in parents or (
            bool(parent) and _is_stage(modules[parent]) and _parent(parent) in grandparents)

    return [p for p in outer if p in main or sibling_block(p)]


def _examples(base, n: int = 3) -> list[str]:
    """A few plausible block paths: children of the container with the most parameter-holding children."""
    containers = _containers()
    best: list[str] = []
    for path, m in [("", base), *((p, m) for p, m, _ in _walk(base))]:
        if isinstance(m, containers):
            kids = [_join(path, name) for name, c in _children(m) if _owns_params(c)]
            if len(kids) >= 2 and len(kids) > len(best):
                best = kids
    if not best:
        best = [name for name, c in _children(base) if _owns_params(c)]
    return best[:n]
