"""Data parallelism for one large run: every process trains the same unit on its shard of each global batch.

Launched by `accelerate launch --multi_gpu --num_processes N -m repro superglue ...` (or `torchrun
--nproc_per_node N -m repro ...`), each process finds its rank and the world size in the environment the
launcher sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT). Without a launch, WORLD_SIZE is unset and every
function here is a no-op: the single-process code paths are exactly what they were.

What the suite uses from `accelerate` is its launcher only (accelerate/commands/launch.py `launch_command`:
`--multi_gpu` starts the processes through torch.distributed.run, also on a machine without GPUs, while `--cpu`
always takes `simple_launcher`, one process unless an MPI hostfile is given). `Accelerator.prepare` does not fit
this loop: it wraps the model in DistributedDataParallel, whose gradient reduction is armed by `model.forward`,
while the scorers (`repro.scorers`) read the LM through `PromptedLM`'s own methods, and it reshapes the data
loader, while the loop draws its own per-epoch permutation (`training.epoch_batches`) and checkpoints its position.
So the pieces accelerate provides are written here on torch.distributed, one job each:

- `shard`: this process's contiguous part of a list, the first ranks taking one more when it does not divide
  (accelerate/state.py `PartialState.split_between_processes`); a global batch is split the same way, as
  accelerate's `split_batches=True` does (accelerate/data_loader.py `BatchSamplerShard`), so the global batch
  is the configured `batch_size` on any number of processes (`check_batch_size`);
- `reduce_gradients`: after each process's backward of its shard's loss (weighted by its share of the global
  batch, `repro.core.training`), the gradients are summed across processes, so every process steps with the
  one-process gradient of the global batch (DDP's all-reduce, done explicitly, in fp32 buckets of 25 MB:
  DistributedDataParallel's default `bucket_cap_mb`);
- `map_sharded`: evaluation shards the examples, each process predicts its shard, and the predictions are
  gathered in order on every process (accelerate/utils/operations.py `gather_object`; nothing is padded, so
  nothing is dropped as `Accelerator.gather_for_metrics` must), so every process scores the same predictions
  and selects the same model;
- `once`: result and checkpoint files are written by the main process, then every process waits until they
  are there (`Accelerator.is_main_process` and `wait_for_everyone`);
- `broadcast_parameters`: the trainable weights start from the main process's (DDP's module-state broadcast
  at construction).
"""

from __future__ import annotations

import atexit
import os
from typing import Any, Callable, Iterable, Optional, Sequence, TypeVar

from repro.errors import ConfigError

T = TypeVar("T")
BUCKET_ELEMENTS = 25 * 2**20 // 4  # fp32 elements per all-reduce (DistributedDataParallel's bucket_cap_mb=25)


# ------------------------------------------------------------------------------------------------ who am I
def world_size() -> int:
    """Processes of this run (1 unless launched by accelerate/torchrun with several)."""
    return _env_int("WORLD_SIZE", 1)


def rank() -> int:
    return _env_int("RANK", 0)


def local_rank() -> int:
    """This process's index on its machine: which GPU it takes."""
    return _env_int("LOCAL_RANK", 0)


def active() -> bool:
    return world_size() > 1


def is_main() -> bool:
    """The process that writes files and prints (rank 0; the only one without a launch)."""
    return rank() == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip().isdigit() else default


# ------------------------------------------------------------------------------------------------ setup
def setup(device: str) -> str:
    """Join the process group (once per process) and return this process's device: `cuda` becomes
    `cuda:<LOCAL_RANK>` (NCCL), `cpu` stays (gloo). Without a launch: `device`, unchanged."""
    if not active():
        return device
    import torch
    import torch.distributed as dist

    kind, _, index = str(device).partition(":")
    if kind == "cuda":
        if index and int(index) != local_rank():
            raise ConfigError(f"--device {device}: under a data-parallel launch each process takes the GPU of its "
                              "local rank; pass --device cuda")
        device = f"cuda:{local_rank()}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if kind == "cuda" else "gloo")
        atexit.register(_teardown)
    return device


def _teardown() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def check_batch_size(batch_size: int) -> None:
    """The global batch must split evenly over the processes (per process: batch_size / world size)."""
    n = world_size()
    if batch_size % n:
        raise ConfigError(f"batch_size {batch_size} does not divide over {n} processes; use a multiple of {n} "
                          "(the batch size is the global batch: each process takes batch_size / processes)")


# ------------------------------------------------------------------------------------------------ data
def shard(items: Sequence[T]) -> list[T]:
    """This process's contiguous part of `items` (all of them without a launch)."""
    n, r = world_size(), rank()
    if n == 1:
        return list(items)
    size, extra = divmod(len(items), n)
    start = r * size + min(r, extra)
    return list(items[start : start + size + (1 if r < extra else 0)])


def gather(part: list[Any]) -> list[Any]:
    """Every process's `part`, concatenated in rank order, on every process."""
    if not active():
        return list(part)
    import torch.distributed as dist

    parts: list[Any] = [None] * world_size()
    dist.all_gather_object(parts, list(part))
    return [x for p in parts for x in p]


def map_sharded(fn: Callable[[list[T]], list[Any]], items: Sequence[T]) -> list[Any]:
    """`fn(items)` computed shard by shard across the processes, in the order of `items`, on every process
    (`fn` maps a list to a list aligned with it: a scorer's `predict`)."""
    if not active():
        return fn(list(items))
    part = shard(items)
    return gather(fn(part) if part else [])


def broadcast_object(value: T) -> T:
    """The main process's `value`, on every process."""
    if not active():
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# ------------------------------------------------------------------------------------------------ gradients
def reduce_gradients(params: Iterable[Any], loss: float) -> float:
    """Sum every parameter's gradient over the processes (each process backpropagated its shard's share of
    the global batch's mean loss, so the sum is the one-process gradient) and return the summed `loss`. A
    parameter without a gradient on every process keeps none (the optimizer then skips it, as in one
    process); one with a gradient somewhere gets the sum, zeros standing in for the processes without."""
    if not active():
        return loss
    import torch
    import torch.distributed as dist

    params = list(params)
    device = params[0].device if params else torch.device("cpu")
    flags = torch.tensor([loss] + [float(p.grad is not None) for p in params], dtype=torch.float64, device=device)
    dist.all_reduce(flags)
    with_grad = [p for p, seen in zip(params, flags[1:].tolist()) if seen > 0]
    for bucket in _buckets(with_grad):
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float()
                          for p in bucket])
        dist.all_reduce(flat)
        _unflatten(flat, bucket, into_grad=True)
    return float(flags[0])


def broadcast_parameters(params: Iterable[Any]) -> None:
    """Copy the main process's values of `params` into every process's."""
    if not active():
        return
    import torch
    import torch.distributed as dist

    for bucket in _buckets(list(params)):
        flat = torch.cat([p.detach().reshape(-1).float() for p in bucket])
        dist.broadcast(flat, src=0)
        _unflatten(flat, bucket, into_grad=False)


def _buckets(params: list[Any]) -> list[list[Any]]:
    """Consecutive groups of parameters of at most BUCKET_ELEMENTS elements (a larger one alone)."""
    out: list[list[Any]] = []
    size = 0
    for p in params:
        if not out or size + p.numel() > BUCKET_ELEMENTS:
            out.append([])
            size = 0
        out[-1].append(p)
        size += p.numel()
    return out


def _unflatten(flat: Any, params: list[Any], *, into_grad: bool) -> None:
    import torch

    offset = 0
    with torch.no_grad():
        for p in params:
            value = flat[offset : offset + p.numel()].view_as(p).to(p.dtype)
            offset += p.numel()
            if not into_grad:
                p.copy_(value)
            elif p.grad is None:
                p.grad = value.clone()
            else:
                p.grad.copy_(value)


# ------------------------------------------------------------------------------------------------ files
def barrier() -> None:
    if active():
        import torch.distributed as dist

        dist.barrier()


def once(action: Callable[[], T]) -> Optional[T]:
    """Run `action` (a file write) on the main process only, then wait for every process, so that each one
    finds the file when it returns. Every process must call it at the same point; never nest it."""
    result = action() if is_main() else None
    barrier()
    return result
