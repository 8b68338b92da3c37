"""Several processes: replicas (DDP-style) or sharded parameters (FSDP2), behind one small interface.

    par = Parallel.from_env(fsdp=config.fsdp)       # under torchrun / accelerate launch / srun
    model = par.wrap(model)                           # FSDP: shard every decoder layer, then the root
    ... forward/backward each micro-batch (par.micro_batch(model, last=...) around it) ...
    par.sync_gradients(params); norm = par.clip(params, max_norm)

Replicas: every process holds the whole model; after the micro-batches of a step, gradients are summed with
one flat all-reduce. Sharded (`--fsdp`, or `accelerate launch --use_fsdp`): `torch.distributed.fsdp.
fully_shard` splits parameters, gradients and optimizer state across processes; gradients are
reduce-scattered (summed) in the last micro-batch's backward. Either way each micro-batch's loss is already
divided by the loss weight of the whole global batch, so the summed gradient is the global weighted mean.

The scoring functions call the model's body and head directly (to apply the vocabulary projection to
response positions only). Under FSDP such a call must run inside the root module's forward hooks, so
`wrap` registers `model.mapl_call(fn, *args)` as an FSDP forward method; `encoding.forward.in_forward`
uses it when present.
"""

from __future__ import annotations

import os

import torch

TRUE = {"1", "true", "yes"}


def _copy_views(out):
    """Outputs of an FSDP forward get backward hooks, which an in-place op on a view would lose (FSDP warns
    about every view): hand back copies of views (a few numbers per sequence here)."""
    if isinstance(out, tuple):
        return tuple(_copy_views(t) for t in out)
    return out.clone() if isinstance(out, torch.Tensor) and out._is_view() else out


def _no_split_classes(model) -> set[str]:
    """Class names of the blocks to shard one by one (transformers' `_no_split_modules`: decoder layers)."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or [])
    return names


class Parallel:
    """Rank, world size, device and the strategy (`single`, `replicas` or `fsdp`)."""

    def __init__(self, rank: int, world: int, device: torch.device, strategy: str):
        self.rank, self.world, self.device, self.strategy = rank, world, device, strategy

    @classmethod
    def from_env(cls, fsdp: bool = False) -> Parallel:
        """Reads torchrun's WORLD_SIZE / LOCAL_RANK and initialises torch.distributed (nccl on GPUs, gloo on
        CPUs). `accelerate launch --use_fsdp` (ACCELERATE_USE_FSDP=true) also selects FSDP; accelerate's other
        fsdp_* settings are not read (mapl shards each decoder layer, then the root)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if torch.cuda.is_available():
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        else:
            device = torch.device("cpu")
        if world == 1:
            return cls(0, 1, device, "single")
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        if os.environ.get("ACCELERATE_USE_FSDP", "").lower() in TRUE:
            fsdp = True
            # mapl loads the full model on every process and then shards it; transformers' rank-0-only
            # loading (for accelerate's own FSDP wrapper) would leave the other processes' weights on "meta".
            os.environ["FSDP_CPU_RAM_EFFICIENT_LOADING"] = "false"
        return cls(dist.get_rank(), world, device, "fsdp" if fsdp else "replicas")

    @property
    def sharded(self) -> bool:
        return self.strategy == "fsdp"

    # --- collectives -------------------------------------------------------------------------------------
    def all_reduce(self, tensor: torch.Tensor, op=None) -> torch.Tensor:
        """Sum (or `op`) over processes, in place; the tensor may live on the CPU (moved for nccl)."""
        if self.world == 1:
            return tensor
        import torch.distributed as dist

        work = tensor.to(self.device) if self.device.type == "cuda" else tensor
        dist.all_reduce(work, op=op or dist.ReduceOp.SUM)
        if work is not tensor:
            tensor.copy_(work.cpu())
        return tensor

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def broadcast_parameters(self, model) -> None:
        """The same starting weights on every process."""
        if self.world > 1:
            import torch.distributed as dist

            for p in model.parameters():
                dist.broadcast(p.data, 0)

    # --- model -------------------------------------------------------------------------------------------
    def wrap(self, model):
        """FSDP: shard each decoder layer, then the root (embeddings, final norm, head, tied weights);
        replicas / single: the model as it is."""
        if not self.sharded:
            return model
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

        mesh = init_device_mesh(self.device.type, (self.world,))
        blocks = _no_split_classes(model)
        for module in list(model.modules()):
            if type(module).__name__ in blocks:
                fully_shard(module, mesh=mesh)
        fully_shard(model, mesh=mesh)
        for module in model.modules():
            if hasattr(module, "set_gradient_divide_factor"):  # a plain sum (gloo has no AVG / PREMUL_SUM):
                module.set_gradient_divide_factor(1.0)  # the losses are already globally normalised
                module.set_force_sum_reduction_for_comms(True)

        def mapl_call(fn, *args):
            return _copy_views(fn(model, *args))

        model.mapl_call = mapl_call
        register_fsdp_forward_method(model, "mapl_call")
        return model

    def micro_batch(self, model, last: bool) -> None:
        """FSDP: reduce-scatter gradients only in the backward of a step's last micro-batch."""
        if self.sharded:
            model.set_requires_gradient_sync(last)

    def sync_gradients(self, params) -> None:
        """Replicas: sum gradients over processes in one flat all-reduce (FSDP did it in backward)."""
        if self.strategy != "replicas":
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        self.all_reduce(flat)
        offset = 0
        for p, g in zip(params, grads, strict=True):
            n = g.numel()
            p.grad = flat[offset : offset + n].view_as(g).clone()
            offset += n

    def clip(self, params, max_norm: float) -> float:
        """Clip the global gradient norm (over all shards) and return it."""
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else float("inf"))
        if hasattr(norm, "full_tensor"):
            norm = norm.full_tensor()
        return float(norm)

    def pad_batches(self, n_items: int, batch_size: int) -> int:
        """How many batches every process runs when `n_items` are dealt round-robin: FSDP needs the same
        number of forwards on every process (each forward all-gathers parameters), so the ones with fewer
        items run extra forwards whose results are dropped."""
        per_rank = -(-n_items // self.world)
        return -(-per_rank // batch_size) if self.sharded else 0

    def memory(self, model, optimizer) -> dict:
        """This process's memory in MB: its trainable parameters with their gradients and optimizer state, its
        frozen parameters (a shard of each under FSDP), and its peak (CUDA: the allocator's peak; CPU: the
        peak resident set size, which also counts what the allocator keeps after freeing)."""
        def size(tensors) -> float:
            local = [t.to_local() if hasattr(t, "to_local") else t for t in tensors]
            return round(sum(t.numel() * t.element_size() for t in local) / 2**20, 1)

        params = list(model.parameters())
        trainable = [p for p in params if p.requires_grad]
        state = [v for st in optimizer.state.values() for v in st.values() if isinstance(v, torch.Tensor) and v.ndim]
        out = {"trainable_mb": size(trainable), "gradients_mb": size([p.grad for p in trainable if p.grad is not None]),
               "optimizer_state_mb": size(state), "frozen_mb": size([p for p in params if not p.requires_grad])}
        if self.device.type == "cuda":
            out["peak_mb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
            out["peak_kind"] = "cuda max allocated"
        else:
            import resource

            out["peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
            out["peak_kind"] = "max RSS"
        return out

    # --- state -------------------------------------------------------------------------------------------
    def full_state(self, model) -> dict[str, torch.Tensor]:
        """Every parameter and buffer as full CPU tensors, on rank 0 (other ranks: {}). A collective."""
        if not self.sharded:
            return {k: v.detach().cpu() for k, v in model.state_dict().items()}
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def trainable_state(self, model) -> dict[str, torch.Tensor]:
        """The trainable parameters as full CPU tensors (rank 0 under FSDP). A collective under FSDP."""
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        if not self.sharded:
            params = dict(model.named_parameters())
            return {n: params[n].detach().cpu().contiguous() for n in names}
        state = self.full_state(model)
        return {n: state[n].contiguous() for n in names if n in state}

    def load_trainable(self, model, weights: dict[str, torch.Tensor]) -> None:
        """Copy full tensors (on every process) into the trainable parameters, sharded or not."""
        params = dict(model.named_parameters())
        missing = [n for n, p in params.items() if p.requires_grad and n not in weights]
        if missing or any(n not in params for n in weights):
            raise ValueError(f"checkpoint does not match the model (e.g. {(missing or list(weights))[0]})")
        if self.sharded:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

            set_model_state_dict(model, weights, options=StateDictOptions(full_state_dict=True, strict=False))
            return
        with torch.no_grad():
            for name, tensor in weights.items():
                params[name].copy_(tensor)

    def optimizer_state(self, model, optimizer) -> dict:
        """The optimizer state to checkpoint, keyed by parameter name and gathered in full on rank 0, so a
        checkpoint loads whatever the process count and strategy. A collective under several processes."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def load_optimizer_state(self, model, optimizer, state: dict) -> None:
        """Load `optimizer_state`'s output (read by every process) into the local, possibly sharded, state."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))
