"""What a fine-tuning strategy is: a config (its knobs, each searchable) and `apply`.

`apply` takes a freshly built `Classifier` and returns the module to train, with exactly the
parameters that should learn left `requires_grad=True` (torchtune's `set_trainable_params` idea:
one place decides what trains). `param_groups` turns that into optimizer groups.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Optional

from pydantic import BaseModel, ConfigDict, Field

from raytune_ft.hparams import HParamsOverride
from raytune_ft.registry import Registry

if TYPE_CHECKING:
    from torch import nn

    from raytune_ft.models.classifier import Classifier


class StrategyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    hparams: HParamsOverride = Field(
        default_factory=HParamsOverride,
        description="hyperparameters this strategy sets differently from search.hparams",
    )

    def knobs(self) -> dict[str, Any]:
        """The strategy's own settings (constants or samplers), without name and hparams."""
        return {k: getattr(self, k) for k in type(self).model_fields if k not in ("name", "hparams")}


class Strategy:
    """What trains, and how fast, in groups of parameters.

    Every method gets `cfg`, this strategy's own `Config` holding the trial's value of each knob
    (constants: Tune has drawn the samplers); `config(**knobs)` builds one.

    The worker puts each group (stem, blocks, head... as the strategy names them) in the optimizer
    and, before every epoch, sets its learning rate to base lr x `lr_scale(group, epoch)` (x the
    head multiplier for "head"), times the schedule's factor at each step. A scale of 0 holds a
    group still (gradual unfreezing) while it stays in the optimizer and in DDP's gradient sync.
    """

    name: ClassVar[str]
    Config: ClassVar[type[StrategyConfig]]
    families: ClassVar[tuple[str, ...]] = ("vision", "text")
    trains_backbone: ClassVar[bool] = True  # pretrained weights change (L2-SP applies)
    needs_cuda: ClassVar[bool] = False  # trains only on a CUDA GPU (QLoRA's 4-bit base): validate and the pre-flight say
    # What the strategy cannot run with, and why: "fsdp" (resources.distributed: fsdp), "gradient_checkpointing"
    # (hparams.gradient_checkpointing); validate refuses the pair with the reason (spec/scale_rules.py)
    unsupported: ClassVar[dict[str, str]] = {}

    def config(self, **knobs) -> StrategyConfig:
        """This strategy's typed config from knob values (checked as the job spec checks them)."""
        return self.Config.model_validate({"name": self.name, **knobs})

    def spec_problems(self, cfg: StrategyConfig, job) -> Iterable[tuple[str, str]]:
        """(knob, message) for each way this entry's knobs do not fit the rest of the job (`job`: the
        JobSpec; knobs may still be samplers here). `validate` reports them under strategies[i].<knob>."""
        return ()

    def quantization(self, cfg: StrategyConfig):
        """How the pretrained model is loaded (transformers' quantization_config, QLoRA's 4 bits), or None: as it
        is stored."""
        return None

    def apply(self, model: "Classifier", cfg: StrategyConfig, *, total_steps: Optional[int] = None) -> "nn.Module":
        """`total_steps`: the optimizer steps the trial will take, when known (AdaLoRA's budget schedule)."""
        raise NotImplementedError

    def groups(self, model: "nn.Module", cfg: StrategyConfig) -> dict[str, list[str]]:
        """Ordered {group: parameter names} of every trainable parameter; "head" is the new head."""
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        head = [n for n in names if n.startswith("head.")]
        return {"backbone": [n for n in names if not n.startswith("head.")], "head": head}

    def lr_scale(self, group: str, cfg: StrategyConfig, epoch: int) -> float:
        return 1.0

    def eval_modules(self, model: "nn.Module", cfg: StrategyConfig, epoch: int) -> list["nn.Module"]:
        """Modules that stay in eval mode while training this epoch (frozen BatchNorm statistics)."""
        return []

    def init_from_data(self, model: "nn.Module", cfg: StrategyConfig, batches) -> None:
        """After `apply`, for a strategy whose start depends on the data (LoRA's EVA init): `batches()` gives
        model inputs from the trial's training split. Not called when a saved model is rebuilt (its trained
        weights are loaded instead)."""

    def after_step(self, model: "nn.Module", step: int) -> None:
        """Called after every optimizer step (AdaLoRA reallocates its ranks here)."""

    def penalty(self, model: "nn.Module"):
        """A term the strategy adds to every training step's loss (a tensor), or None.

        The loop computes the loss outside the model, so a method whose model would add its own
        regulariser to `outputs.loss` (AdaLoRA) adds it here instead."""
        return None

    def state_dict(self, model: "nn.Module") -> dict:
        """What the strategy keeps outside the model's parameters and must get back on a resume
        (tensors, lists, numbers): saved with each epoch's resumable state."""
        return {}

    def load_state_dict(self, model: "nn.Module", state: dict) -> None:
        """Put back what `state_dict` returned, after the model's weights are restored."""


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    return STRATEGIES.register(cls.name)(cls)


def model_skeleton(job) -> Optional["Classifier"]:
    """The job's model without weights (models.skeleton: built on the meta device, once per process), for
    validate-time checks of what a strategy would find in it; None when it cannot be built (the model's own
    checks say why)."""
    from raytune_ft.models import skeleton

    try:
        return skeleton(job.model)
    except Exception:  # noqa: BLE001 - a missing folder, a broken config: reported by the model section
        return None


def set_trainable(model: "nn.Module", trainable: set[str]) -> None:
    """Every parameter trains iff its name is in `trainable`."""
    for name, p in model.named_parameters():
        p.requires_grad_(name in trainable)
