"""Data-parallel training over processes launched by ``torchrun`` (one node or many).

``batch_size`` is the GLOBAL batch of a step. Rank r of N takes the r-th contiguous slice of the
same seeded global batch (``deadlib.train.loop.iterate_batches``) and splits it into ``grad_accum``
micro-batches. Every loss normaliser (L1 weight sum, L_reg mask count, sample count) is summed
over all micro-batches of all ranks before backward, so the averaged gradient is the
single-process one: 1 process with batch B, 2 with B/2 each, or 1 with grad_accum 2 follow the
same trajectory up to float rounding. Two exceptions: the discriminator's minibatch-stddev
groups samples within a micro-batch (as StyleGAN2's multi-GPU training does; with micro-batch 1
its channel is 0; ``disc_mbstd: false`` makes D exact too), and generator noise
(``noise: true``) is drawn per process. Rank 0 alone logs (DVCLive), validates and writes
checkpoints; every rank loads a checkpoint to resume, whatever world size wrote it.

Launched plainly (``python -m ...``) everything here is a single-process no-op: world size 1,
rank 0, device from the config (CPU or one GPU). Launched by torchrun, :func:`init_distributed`
reads RANK / WORLD_SIZE / LOCAL_RANK (+ MASTER_ADDR / MASTER_PORT) and joins the process group:
NCCL with one GPU per process (``cuda:LOCAL_RANK``) when CUDA is available, else gloo on CPU.

Per-identity neural textures are NOT wrapped in DDP but replicated: every rank holds all of
them and :func:`all_reduce_used_grads` averages, after backward, the gradients of the textures
that at least one rank used this step. A texture no rank used keeps ``grad=None`` everywhere, so
Adam skips it exactly as in one process; the all-reduce carries only the textures of the global
batch (at most batch_size), not the whole bank. Cost: a texture has 5.6M parameters at the full
profile (~90 MB with gradient and Adam moments), so ~100 identities per GPU are fine; a much
larger prior would shard textures by identity instead (not needed for this corpus).
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import torch
import torch.distributed as dist
import torch.nn as nn

from deadlib.core.config import resolve_device

if TYPE_CHECKING:
    from deadlib.train.checkpoint import TrainState


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: ``rank`` of ``world_size`` (``local_rank`` on its node), its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None                      # None: single process, no process group

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, validates and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return default if value in (None, "") else int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer (set by torchrun)") from None


def _device_for(device: str | torch.device | None, local_rank: int) -> torch.device:
    dev = resolve_device(str(device) if isinstance(device, torch.device) else device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    return dev


def init_distributed(backend: str = "auto", device: str | torch.device | None = "auto",
                     timeout_s: float = 1800) -> DistContext:
    """Join the torchrun process group (idempotent), or return a single-process context.

    ``backend="auto"``: nccl when this process gets a GPU, gloo otherwise. ``device`` as in
    params (``auto`` | ``cpu`` | ``cuda``); under torchrun a CUDA device becomes cuda:LOCAL_RANK.
    ``timeout_s`` bounds how long ranks wait for rank 0 (validation, checkpoint writes).
    """
    if dist.is_available() and dist.is_initialized():
        return current_context(device)
    rank, world, local = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0)
    if world <= 1:
        return DistContext(device=_device_for(device, 0))
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
    if missing:
        raise RuntimeError(f"WORLD_SIZE={world} but {missing} unset: launch with torchrun "
                           "(e.g. torchrun --nproc_per_node 2 -m deadlib.train.prior ...)")
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed; run a single process instead")
    dev = _device_for(device, local)
    if backend == "auto":
        backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend, rank=rank, world_size=world, timeout=datetime.timedelta(seconds=timeout_s))
    return DistContext(rank, world, local, dev, backend)


def current_context(device: str | torch.device | None = "auto") -> DistContext:
    """The context of an already initialised process group, or a single-process one."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistContext(device=_device_for(device, 0))
    local = _env_int("LOCAL_RANK", 0)
    backend = dist.get_backend()
    dev = _device_for("cuda" if backend == "nccl" else device, local)
    return DistContext(dist.get_rank(), dist.get_world_size(), local, dev, backend)


def shutdown_distributed() -> None:
    """Leave the process group (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    """Wait for every rank."""
    if _active():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """In-place sum over ranks; returns ``tensor``."""
    if _active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """In-place mean over ranks; returns ``tensor``."""
    if _active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= dist.get_world_size()
    return tensor


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``src``'s (picklable) object on every rank."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def broadcast_parameters(module: nn.Module, src: int = 0) -> None:
    """Copy ``src``'s parameters and buffers into every rank's ``module`` (e.g. textures at start)."""
    if _active():
        with torch.no_grad():
            for t in [*module.parameters(), *module.buffers()]:
                dist.broadcast(t.data, src=src)


def wrap_ddp(module: nn.Module, ctx: DistContext, find_unused_parameters: bool = False) -> nn.Module:
    """DistributedDataParallel around ``module`` in a multi-process run, else ``module`` itself.
    Buffers are not re-broadcast every forward (the renderer / discriminator have none that change)."""
    if not ctx.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DDP(module, device_ids=ids, output_device=ids[0] if ids else None, broadcast_buffers=False,
               find_unused_parameters=find_unused_parameters)


def no_sync(module: nn.Module, skip: bool) -> contextlib.AbstractContextManager:
    """DDP's ``no_sync()`` for accumulation micro-steps (``skip`` true), else a null context."""
    return module.no_sync() if skip and hasattr(module, "no_sync") else contextlib.nullcontext()


def all_reduce_used_grads(modules: Sequence[nn.Module], device: torch.device | None = None) -> int:
    """Average over ranks the gradients of every module that got a gradient on ANY rank.

    A module used only on other ranks gets zeros as its local contribution (its averaged
    gradient then equals the single-process one); a module no rank used keeps ``grad=None``.
    Returns how many modules were synced. No-op in a single process.
    """
    if not _active() or not modules:
        return 0
    params = [list(m.parameters()) for m in modules]
    device = device or params[0][0].device
    used = torch.tensor([float(any(p.grad is not None for p in ps)) for ps in params], device=device)
    all_reduce_sum(used)                                           # (n_modules,) how many ranks used each
    synced = [p for ps, u in zip(params, used.tolist()) if u > 0 for p in ps]
    if not synced:
        return 0
    for p in synced:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in synced])         # one collective for all textures
    all_reduce_mean(flat)
    for p, g in zip(synced, _split_like(flat, synced)):
        p.grad.copy_(g)
    return int((used > 0).sum())


def _split_like(flat: torch.Tensor, params: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
    offset = 0
    for p in params:
        yield flat[offset:offset + p.numel()].view_as(p)
        offset += p.numel()


def make_data_parallel(state: TrainState, ctx: DistContext) -> TrainState:
    """Wrap renderer and D in DDP for ``ctx`` (no-op in one process); textures start from rank 0's.

    Every renderer parameter is used in every forward, so ``find_unused_parameters`` stays off.
    D goes through DDP only in its own step (real and fake forwards, then one backward, as in
    rosinality's stylegan2 DDP training); the generator step calls the plain D, frozen.
    """
    state.ctx = ctx
    state.disc.requires_grad_(True)                                   # DDP registers trainable params only
    broadcast_parameters(state.bank)
    state.g_train, state.d_train = wrap_ddp(state.renderer, ctx), wrap_ddp(state.disc, ctx)
    return state


def release_data_parallel(state: TrainState) -> None:
    """Drop the DDP wrappers (the state keeps working in this process alone)."""
    state.g_train, state.d_train = state.renderer, state.disc
