"""What a trial adds to its loss: the strategy's own term (AdaLoRA's orthogonal regulariser), L2-SP and EWC.

L2-SP and EWC hold the backbone weights that train near their pretrained values (the anchors, taken
when the trial is set up): L2-SP with every weight alike, EWC weighted by the Fisher (raytune_ft/ewc/).
"""
from __future__ import annotations

from raytune_ft.ewc.penalty import ewc_penalty, load_fisher


class Penalties:
    def __init__(self, strategy, model, hp, data_dir):
        """model: the plain (unwrapped) model, at its pretrained weights; hp: the trial's HParams."""
        self.strategy, self.model, self.hp = strategy, model, hp
        self.params = dict(model.named_parameters())
        self.anchors = {n: p.detach().clone() for n, p in self.params.items()
                        if p.requires_grad and not n.startswith("head.")} if hp.l2sp > 0 or hp.ewc > 0 else {}
        self.fisher = load_fisher(data_dir, self.anchors) if hp.ewc > 0 else {}  # EWC's, of each anchor

    def __call__(self):
        total = 0.0
        term = self.strategy.penalty(self.model)
        if term is not None:
            total = total + term
        if self.anchors and self.hp.l2sp > 0:
            total = total + self.hp.l2sp / 2 * sum(((self.params[n] - a) ** 2).sum() for n, a in self.anchors.items())
        if self.fisher:
            total = total + ewc_penalty(self.params, self.anchors, self.fisher, self.hp.ewc)
        return total
