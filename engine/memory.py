"""Where the memory goes, every optimizer step, in bytes — the same way on CPU and GPU.

The book's `estimate_memory_of_gradients` / `estimate_memory_of_optimizer` (seed 003) multiply
`nelement() * element_size()` over tensors. We do the same, with three corrections that matter:
  * tensors are deduplicated by *storage*: quantisation states share code books, tied embeddings share
    one matrix, and a saved tensor may be a view of a bigger buffer — memory holds storages, not views;
  * activations are measured, not guessed: saved-tensor hooks see every tensor autograd keeps for
    backward (parameters excluded: they are counted once, as parameters);
  * paged optimizer state lives in CUDA unified memory (bitsandbytes allocates it with
    cudaMallocManaged, outside PyTorch's allocator), so `torch.cuda.memory_allocated()` cannot see it:
    it is reported on its own as `optimizer_paged` (a part of `optimizer`).

The record (the `mem` field of metrics.jsonl, a documented contract), all in bytes:
  params_4bit       packed 4-bit weights + quantisation state (absmax, nested absmax, code books)
  params_frozen     other frozen parameters and buffers (embeddings, norms, rotary tables, ...)
  params_trainable  parameters the optimizer updates (LoRA A/B, or everything with --peft full)
  params_host       frozen parameters kept in pinned host memory (--offload-embeddings: embeddings and
                    LM head), in none of the other params_* keys: host RAM, not device memory (0 without)
  grads             gradients at their peak in the step (after the last backward, before zero_grad)
  optimizer         every optimizer state tensor (Adam moments, 8-bit absmax/code books, step counts)
  optimizer_paged   the part of `optimizer` in CUDA unified memory (0 on CPU)
  activations       peak bytes saved for backward by one micro-batch's forward
  allocated, peak_allocated, reserved   torch.cuda.* at the end of the step (None on CPU); under
                    --cuda-graphs peak_allocated is at least the peak while the graphs were recorded:
                    replays reuse that memory without allocating, so the step's own counter misses it
  cublas_workspace  cuBLAS workspaces at the end of the step: PyTorch's allocator holds one per (cuBLAS
                    handle, stream), and backward runs on its own thread, hence its own handle (None on
                    CPU, and under --cuda-graphs, where captured graphs use them and they stay untouched)
  unexplained       allocated minus what should still be resident after zero_grad (parameters, the
                    unpaged optimizer state, gradients kept by zero_grad(set_to_none=False), cuBLAS
                    workspaces): the CUDA reconciliation; ~0 when nothing leaks (None on CPU)
  device_used       total minus free device memory (cudaMemGetInfo): sees the CUDA context, the
                    allocator's cache and the paged optimizer pages that live on the GPU (None on CPU)
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import torch

from models.report import parameter_bytes

MEMORY_KEYS = ("params_4bit", "params_frozen", "params_trainable", "params_host", "grads", "optimizer",
               "optimizer_paged", "activations", "activations_host", "allocated", "peak_allocated", "reserved",
               "cublas_workspace", "unexplained", "device_used")
SNAPSHOT_STEPS = 3  # optimizer steps recorded by --memory-snapshot: step 1 allocates the optimizer state


def storage_key(t: torch.Tensor) -> tuple[str, int]:
    """Identity of the memory a tensor lives in (two views of one buffer share it)."""
    return (str(t.device), t.untyped_storage().data_ptr())


def unique_storage_bytes(tensors: Iterable[torch.Tensor]) -> int:
    seen: dict[tuple[str, int], int] = {}
    for t in tensors:
        if t is None or t.device.type == "meta":
            continue
        seen[storage_key(t)] = t.untyped_storage().nbytes()
    return sum(seen.values())


def gradient_bytes(model: torch.nn.Module) -> int:
    return unique_storage_bytes(p.grad for p in model.parameters() if p.grad is not None)


def optimizer_state_tensors(optimizer: torch.optim.Optimizer) -> Iterator[torch.Tensor]:
    for state in optimizer.state.values():
        for value in state.values():
            if torch.is_tensor(value):
                yield value


def optimizer_bytes(optimizer: torch.optim.Optimizer) -> tuple[int, int]:
    """(all state bytes, paged state bytes). bitsandbytes marks unified-memory tensors `is_paged`."""
    tensors = list(optimizer_state_tensors(optimizer))
    paged = [t for t in tensors if getattr(t, "is_paged", False)]
    return unique_storage_bytes(tensors), unique_storage_bytes(paged)


class ActivationCounter:
    """Counts the bytes autograd saves for backward during a forward pass.

    `torch.autograd.graph.saved_tensors_hooks(pack, unpack)` calls `pack` for every tensor an autograd
    node saves. We record its storage (once) and hand the tensor back untouched. With non-reentrant
    gradient checkpointing, the checkpointed layers install their own inner hooks and keep nothing but
    their inputs, so this count drops to the layer boundaries: exactly the saving checkpointing buys.
    """

    def __init__(self, model: torch.nn.Module):
        # Parameters and buffers are saved by reference in every matmul: they are memory we already
        # count as parameters, so they are excluded here.
        tensors = list(model.parameters()) + list(model.buffers())
        for module in model.modules():  # 4-bit quantisation state hangs off the weight, not as a buffer
            state = getattr(getattr(module, "weight", None), "quant_state", None)
            if state is not None:
                tensors += [t for t in _quant_state_tensors(state)]
        self.excluded = {storage_key(t) for t in tensors if t.device.type != "meta"}
        self._seen: dict[tuple[str, int], int] = {}
        self.peak = 0  # max over the micro-batches counted since the last reset
        self.last = 0  # the last counted micro-batch
        self.peak_host = 0  # the same for what an offload moved to host memory
        # --offload-activations plugs an ActivationOffload in here (engine/features/offload_activations.py)
        self.offload = None

    def _pack(self, tensor: torch.Tensor):
        if tensor.device.type == "meta" or (key := storage_key(tensor)) in self.excluded:
            return tensor
        if self.offload is not None and self.offload.wants(tensor):
            return self.offload.pack(tensor)  # counted by the offload: a freed device address is reused
        self._seen[key] = tensor.untyped_storage().nbytes()
        return tensor

    def _unpack(self, packed) -> torch.Tensor:
        return packed if isinstance(packed, torch.Tensor) else self.offload.unpack(packed)

    @contextmanager
    def count(self) -> Iterator[None]:
        """Wrap one micro-batch's forward (and loss): everything saved inside is counted."""
        self._seen = {}
        if self.offload is not None:
            self.offload.begin()
        with torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack):
            yield
        self.last = sum(self._seen.values())
        self.peak = max(self.peak, self.last)
        self.peak_host = max(self.peak_host, self.offload.host_bytes if self.offload is not None else 0)
        self._seen = {}

    def note(self, nbytes: int) -> None:
        """A micro-batch measured earlier ran again (a CUDA graph replay runs no hooks)."""
        self.peak = max(self.peak, nbytes)

    def reset(self) -> None:
        self.peak = self.peak_host = 0


def _quant_state_tensors(state) -> list[torch.Tensor]:
    out = [getattr(state, name, None) for name in ("absmax", "code", "offset")]
    nested = getattr(state, "state2", None)
    if nested is not None:
        out += [getattr(nested, name, None) for name in ("absmax", "code")]
    return [t for t in out if torch.is_tensor(t)]


class MemoryTracker:
    """Builds the per-step `mem` record. Parameter bytes are computed once (they do not change)."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device, *,
                 activations: ActivationCounter | None = None, measure_cublas_workspace: bool = True,
                 replay_peak_allocated: int = 0):
        """`activations`: the counter the micro-step fills (a new one if None); under CUDA graphs the
        workspaces are not measured (the graphs hold them) and `replay_peak_allocated` is the recording's
        peak (see peak_allocated above)."""
        self.model, self.optimizer, self.device = model, optimizer, device
        self.measure_cublas_workspace = measure_cublas_workspace
        self.params = parameter_bytes(model)
        self.activations = activations if activations is not None else ActivationCounter(model)
        self.is_cuda = device.type == "cuda"
        self.replay_peak_allocated = replay_peak_allocated

    def start_step(self) -> None:
        self.activations.reset()
        if self.is_cuda:
            torch.cuda.reset_peak_memory_stats(self.device)

    def record(self, grads_bytes: int) -> dict[str, int | None]:
        """Call after optimizer.step() (the state exists from the first step on); `grads_bytes` was
        measured before zero_grad, when gradients were at their peak."""
        optimizer_total, optimizer_paged = optimizer_bytes(self.optimizer)
        mem: dict[str, int | None] = {
            "params_4bit": self.params["params_4bit"],
            "params_frozen": self.params["params_frozen"],
            "params_trainable": self.params["params_trainable"],
            "params_host": self.params["params_host"],
            "grads": grads_bytes,
            "optimizer": optimizer_total,
            "optimizer_paged": optimizer_paged,
            "activations": self.activations.peak,
            "activations_host": self.activations.peak_host,
            "allocated": None,
            "peak_allocated": None,
            "reserved": None,
            "cublas_workspace": None,
            "unexplained": None,
            "device_used": None,
        }
        if self.is_cuda:
            allocated = torch.cuda.memory_allocated(self.device)
            free, total = torch.cuda.mem_get_info(self.device)
            workspace = cublas_workspace_bytes(self.device) if self.measure_cublas_workspace else None
            # Activations are freed by now; gradients too, unless zero_grad kept them (set_to_none=False).
            resident = (mem["params_4bit"] + mem["params_frozen"] + mem["params_trainable"]
                        + optimizer_total - optimizer_paged + gradient_bytes(self.model) + (workspace or 0))
            peak = max(torch.cuda.max_memory_allocated(self.device), self.replay_peak_allocated)
            mem.update(allocated=allocated, peak_allocated=peak,
                       reserved=torch.cuda.memory_reserved(self.device), cublas_workspace=workspace,
                       unexplained=allocated - resident, device_used=total - free)
        return mem


def cublas_workspace_bytes(device: torch.device) -> int | None:
    """Bytes of `memory_allocated` that are cuBLAS workspaces: release them and see allocated drop. The
    next matmul takes them back from the allocator's cache (no cudaMalloc). None if torch cannot say."""
    clear = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
    if clear is None:
        return None
    torch.cuda.synchronize(device)  # a kernel still running may be using one
    before = torch.cuda.memory_allocated(device)
    clear()
    return before - torch.cuda.memory_allocated(device)


def start_allocator_history(device: torch.device) -> None:
    """Record every CUDA allocation with its stack trace (for --memory-snapshot)."""
    torch.cuda.memory._record_memory_history(max_entries=200_000, device=device)


def dump_allocator_history(path: str) -> None:
    """Write the snapshot (a pickle) that https://pytorch.org/memory_viz opens, and stop recording."""
    from pathlib import Path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.cuda.memory._dump_snapshot(path)
    torch.cuda.memory._record_memory_history(enabled=None)


def tracked_total(mem: dict) -> int:
    """Parameters + gradients + optimizer + activations: the book's "total memory", from our parts."""
    return sum(mem[k] or 0 for k in ("params_4bit", "params_frozen", "params_trainable", "grads",
                                     "optimizer", "activations"))


def format_bytes(n: int | None) -> str:
    if n is None:
        return "n/a"
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"
