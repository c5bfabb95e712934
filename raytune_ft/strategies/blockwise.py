"""Shared by the strategies that treat the backbone as stem + ordered blocks (bottom to top).

Groups are named "stem", "block0" ... "block{n-1}" (block{n-1} is nearest the head) and "head".
Depth from the top: head 0, block{n-1} 1, ..., block0 n, stem n + 1; with `layer_decay` d a
group's learning rate is base x d^depth (discriminative / layer-wise learning rates).
"""
from __future__ import annotations

from raytune_ft.strategies.base import Strategy


class BlockwiseStrategy(Strategy):
    def _structure(self, model):
        from raytune_ft.models.blocks import find_blocks

        blocks = find_blocks(model, getattr(model, "block_paths", None))
        order = ["stem"] + [f"block{i}" for i in range(len(blocks.blocks))]  # bottom to top
        paths = {"stem": blocks.stem, **{f"block{i}": b for i, b in enumerate(blocks.blocks)}}
        names = {g: blocks.parameter_names(model, paths[g]) for g in order}
        self.order = order
        self.paths = paths
        return names

    def depth(self, group: str) -> int:
        return 0 if group == "head" else len(self.order) - self.order.index(group)

    def groups(self, model, cfg):
        names = self._structure(model)
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        out = {g: sorted(names[g] & trainable) for g in self.order}
        out["head"] = sorted(n for n in trainable if n.startswith("head."))
        return {g: v for g, v in out.items() if v}

    def decayed(self, group: str, layer_decay: float) -> float:
        """base lr x layer_decay^depth for this group."""
        return layer_decay ** self.depth(group)

    def modules(self, model, groups: list[str]):
        """The nn.Modules of these groups (entries that name a bare parameter are skipped)."""
        out = []
        for g in groups:
            for path in self.paths.get(g, []):
                try:
                    out.append(model.get_submodule(path))
                except AttributeError:
                    pass
        return out
