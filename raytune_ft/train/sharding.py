"""FSDP for a trial of several workers (resources.distributed: fsdp): each worker holds 1/N of every weight,
of its gradient and of the optimizer's state, and gathers one unit's weights at a time to compute with it.

    sharding = Sharding(config)                                   # a TrialConfig
    Accelerator(..., **sharding.accelerator_options())             # GPUs: Accelerate's FSDP plugin
    model = sharding.shard(model, accelerator)                     # before the optimizer: it holds the shards
    model, optimizer, *loaders = sharding.prepare(accelerator, model, optimizer, *loaders)
    gathered = sharding.gather(model, optimizer)   # every worker calls it; rank 0 gets whole tensors to save
    sharding.load(model, optimizer, saved)         # a resumed trial: those whole tensors back into the shards
    sharding.memory(model, optimizer)              # the largest worker's bytes of weights and optimizer state

FSDP2 (`torch.distributed.fsdp.fully_shard`): each parameter is sharded on its own (a DTensor), so frozen
weights, adapters and the weights that train share a unit as they are: no flattened parameters, no
`use_orig_params`, the optimizer's groups (per block, for discriminative learning rates) built from the
sharded parameters by name as without FSDP. The units: each block models/blocks.py finds (a transformer
layer, with what joined it: the final norm), the new head, and the root (embeddings, what is left).
`fsdp.sharding: full_shard` frees a unit's gathered weights after its forward and gathers them again for
its backward; `shard_grad_op` keeps them from the forward to the backward.

Accelerate does FSDP only on GPUs (its state takes the FSDP plugin for multi-GPU-like device types; on CPUs
a multi-process run is always DDP, and a model of DTensors is refused there). So the model is sharded here,
the same way on both, before the optimizer is built; on GPUs the plugin goes to the Accelerator as well, whose
FSDP2 `prepare` takes the sharded module as it is (its own mixed precision, gradient scaler and state-dict
handling then know the model is sharded); on CPUs (gloo) the model is not handed to `prepare` (it would be
wrapped in DDP), only the optimizer and the data loaders are. Checkpoints hold whole tensors (gathered onto
rank 0: the weights that train and the buffers, the optimizer's state by parameter name), so `resume`, a
restarted worker group, the test evaluation and `load_trial_model` read them as any other trial's.
"""
from __future__ import annotations

from typing import Optional

from raytune_ft.train.grad_checkpoint import group_modules

PRECISIONS = {"bf16": "bfloat16", "fp16": "float16"}


class Sharding:
    def __init__(self, config):
        res = config.resources
        self.fsdp = res.distributed == "fsdp" and res.workers_per_trial > 1
        self.settings, self.gpu = res.fsdp, res.gpus_per_worker > 0
        self.mixed_precision = config.training.mixed_precision

    def policies(self) -> dict:
        """fully_shard's mixed precision and offload policies: compute in bf16 / fp16, gradients reduced and
        outputs given in fp32 (the loss and the optimizer see fp32)."""
        import torch
        from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy

        low = PRECISIONS.get(self.mixed_precision)
        mp = MixedPrecisionPolicy(param_dtype=getattr(torch, low), reduce_dtype=torch.float32,
                                  output_dtype=torch.float32) if low else MixedPrecisionPolicy()
        return {"mp_policy": mp, "offload_policy": CPUOffloadPolicy() if self.settings.cpu_offload else OffloadPolicy()}

    def accelerator_options(self) -> dict:
        """Accelerator(...) keywords: Accelerate's FSDP plugin on GPUs (FSDP2, the same policies)."""
        if not (self.fsdp and self.gpu):
            return {}
        from accelerate.utils import FullyShardedDataParallelPlugin

        policies = self.policies()
        return {"fsdp_plugin": FullyShardedDataParallelPlugin(
            fsdp_version=2, reshard_after_forward=self.settings.sharding == "full_shard",
            cpu_offload=policies["offload_policy"], mixed_precision_policy=policies["mp_policy"],
            state_dict_type="FULL_STATE_DICT")}

    def shard(self, model, accelerator):
        """The model with each unit sharded across the trial's workers (the model itself without FSDP)."""
        if not self.fsdp:
            return model
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        from raytune_ft.models.blocks import find_blocks

        options = {"mesh": init_device_mesh(accelerator.device.type, (accelerator.num_processes,)),
                   "reshard_after_forward": self.settings.sharding == "full_shard", **self.policies()}
        for group in find_blocks(model, getattr(model, "block_paths", None)).blocks:
            modules = group_modules(model, group)
            if modules:
                fully_shard(modules, **options)
        fully_shard(model.head, **options)
        options.pop("reshard_after_forward")  # the root: torch's default (kept gathered: its backward comes next)
        return fully_shard(model, **options)

    def prepare(self, accelerator, model, optimizer, *loaders) -> tuple:
        if self.fsdp and not self.gpu:  # CPUs: Accelerate would wrap the sharded model in DDP (see above)
            return (model, *accelerator.prepare(optimizer, *loaders))
        return accelerator.prepare(model, optimizer, *loaders)

    def distributed_type(self, accelerator) -> str:
        from accelerate.utils import DistributedType

        return str(DistributedType.FSDP if self.fsdp else accelerator.distributed_type)

    def gather(self, model, optimizer) -> Optional[tuple[dict, dict]]:
        """(the weights that train and the buffers, the optimizer's state) as whole tensors on the CPU of rank 0
        (the other ranks get empty dicts). Every worker must call it: the shards are gathered. None without FSDP
        (rank 0 has them whole already)."""
        if not self.fsdp:
            return None
        from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                             get_optimizer_state_dict)

        from raytune_ft.train.checkpoint import trainable_names

        whole = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
        keep = trainable_names(model)  # frozen weights are never gathered
        weights = {k: v for k, v in get_model_state_dict(model, options=whole).items() if k in keep}
        return weights, get_optimizer_state_dict(model, optimizer, options=whole)

    def load(self, model, optimizer, saved: dict) -> None:
        """A checkpoint's weights (those that trained) and optimizer state back into the model and optimizer."""
        if not self.fsdp:
            model.load_state_dict(saved["model"], strict=False)
            optimizer.load_state_dict(saved["optimizer"])
            return
        from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                             set_optimizer_state_dict)

        set_model_state_dict(model, saved["model"], options=StateDictOptions(full_state_dict=True, strict=False))
        set_optimizer_state_dict(model, optimizer, saved["optimizer"], options=StateDictOptions(full_state_dict=True))

    def memory(self, model, optimizer, device) -> dict:
        """The bytes a worker holds of the model's weights and of the optimizer's state (a shard under FSDP, a
        whole copy under DDP), the largest over the trial's workers."""
        import torch
        import torch.distributed as dist

        held = torch.tensor([float(sum(local_bytes(p) for p in model.parameters())),
                             float(sum(local_bytes(t) for s in optimizer.state.values() for t in s.values()
                                       if isinstance(t, torch.Tensor)))], device=device)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(held, op=dist.ReduceOp.MAX)
        return {"param_bytes": int(held[0]), "optimizer_bytes": int(held[1])}


def local_bytes(tensor) -> int:
    """Bytes of this worker's part of a tensor: its shard of a DTensor, else the whole tensor."""
    local = tensor.to_local() if hasattr(tensor, "to_local") else tensor
    return local.numel() * local.element_size()
