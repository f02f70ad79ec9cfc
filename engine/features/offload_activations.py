"""Activations saved for backward in pinned host memory (--offload-activations).

With gradient checkpointing, what a forward leaves for backward is one tensor per decoder layer, its
input hidden states [B, T, H], from which the layer is recomputed. At long sequences they are most of
the memory: Llama-3.1-8B at 131,072 tokens keeps 32 x T x 4,096 x 2 B = 32 GiB of them. Here they go to
pinned host memory as autograd saves them, and come back one layer ahead of the recompute that needs
them:

  forward   pack: the copy to the host is queued on a side stream behind the work that produced the
            tensor; its device block returns to the allocator once that copy has run (record_stream),
            so the copy overlaps the next layer's compute;
  backward  unpack: waits for its copy back, which was queued when the tensor saved after it was
            unpacked, and queues the copy of the tensor saved before it: one layer's transfer overlaps
            the recompute and backward of the next.

Host copies are held in pieces whose sizes are powers of two (the binary digits of the tensor's byte
count, down to 1 MiB): torch's caching host allocator rounds every pinned block up to a power of two,
so a 2.7 GiB layer input at 350k tokens would take 4 GiB of pinned memory in one piece, 32 of them 128.

Device memory for activations is then about one layer's working set whatever the depth. Small tensors
(masks, rotary tables: under `min_bytes`), views of a larger buffer and parameters stay where they are.
One storage saved several times (the rotary tables every layer receives) is copied once.
torchtune's counterpart: `OffloadActivations`; HF Trainer has none.

The hooks are those of `engine.memory.ActivationCounter`, which every micro-step already runs under: an
offload plugged into it decides per tensor, and the counter reports what stayed on the device
(`activations`) and what went to the host (`activations_host`).
"""

from __future__ import annotations

import weakref

import torch


def pinned_pieces(numel: int, dtype: torch.dtype, min_bytes: int = 1 << 20) -> list[int]:
    """Element counts of the pinned buffers that hold `numel` elements of `dtype` without the host
    allocator's round-up: powers of two in bytes, largest first, the tail under `min_bytes` one piece."""
    item = dtype.itemsize
    counts, remaining = [], numel * item
    while remaining:
        size = 1 << (remaining.bit_length() - 1)
        size = remaining if size < min_bytes else size
        counts.append(size // item)
        remaining -= size
    return counts


class Offloaded:
    """A saved tensor's host copy (pinned pieces of its flat data, or one CPU tensor), and its trip back."""

    __slots__ = ("host", "shape", "copied", "index", "back", "ready", "__weakref__")

    def __init__(self, host: list[torch.Tensor], shape: torch.Size, copied, index: int):
        self.host, self.shape, self.copied, self.index = host, shape, copied, index
        self.back: torch.Tensor | None = None  # the device copy queued ahead of use
        self.ready = None  # the event that says `back` has arrived


class ActivationOffload:
    """The pack / unpack pair for one device. On a CPU "device" the host copy is a plain copy (no
    streams): what the tests use to check that every tensor comes back as it was."""

    def __init__(self, device: torch.device, min_bytes: int = 1 << 20, piece_bytes: int = 1 << 20):
        self.device, self.min_bytes, self.piece_bytes = device, min_bytes, piece_bytes
        self.cuda = device.type == "cuda"
        self.to_host = torch.cuda.Stream(device) if self.cuda else None
        self.to_device = torch.cuda.Stream(device) if self.cuda else None
        self.begin()

    def begin(self) -> None:
        """A new micro-batch: what was saved before belongs to a graph that backward has freed."""
        self.saved: list[weakref.ref] = []  # pack order: the next one unpacked is the previous one packed
        self.host_bytes = 0  # what this micro-batch moved to the host
        self.by_storage: dict[tuple[int, int], tuple[weakref.ref, Offloaded]] = {}

    def wants(self, tensor: torch.Tensor) -> bool:
        # Only a non-empty tensor that owns its whole storage: moving a view would free nothing.
        storage = tensor.untyped_storage()
        return (tensor.device.type == self.device.type and tensor.is_contiguous()
                and tensor.numel() * tensor.element_size() == storage.nbytes() >= max(self.min_bytes, 1))

    def pack(self, tensor: torch.Tensor) -> Offloaded:
        key = (tensor.untyped_storage().data_ptr(), tensor._version)
        alive, entry = self.by_storage.get(key, (lambda: None, None))
        if alive() is not None:  # the same tensor saved again (a freed one's address may be reused)
            return entry
        if self.cuda:
            counts = pinned_pieces(tensor.numel(), tensor.dtype, self.piece_bytes)
            host = [torch.empty(n, dtype=tensor.dtype, pin_memory=True) for n in counts]
            self.to_host.wait_stream(torch.cuda.current_stream(self.device))  # after the op that wrote it
            with torch.cuda.stream(self.to_host):
                for piece, part in zip(host, tensor.detach().view(-1).split(counts)):
                    piece.copy_(part, non_blocking=True)
                copied = self.to_host.record_event()
            tensor.record_stream(self.to_host)  # its block is not reused before the copy has read it
        else:
            host, copied = [tensor.detach().clone()], None
        entry = Offloaded(host, tensor.shape, copied, len(self.saved))
        self.host_bytes += tensor.numel() * tensor.element_size()
        self.saved.append(weakref.ref(entry))
        self.by_storage[key] = (weakref.ref(tensor), entry)
        return entry

    def unpack(self, entry: Offloaded) -> torch.Tensor:
        if not self.cuda:
            return entry.host[0]
        if entry.back is None:  # not prefetched: the first tensor backward needs
            self._fetch(entry)
        current = torch.cuda.current_stream(self.device)
        current.wait_event(entry.ready)
        tensor, entry.back = entry.back, None
        tensor.record_stream(current)  # made on the copy stream, used and freed on this one
        if entry.index > 0 and (previous := self.saved[entry.index - 1]()) is not None and previous.back is None:
            self._fetch(previous)  # the next tensor backward will need
        return tensor

    def _fetch(self, entry: Offloaded) -> None:
        with torch.cuda.stream(self.to_device):
            self.to_device.wait_event(entry.copied)
            back = torch.empty(entry.shape, dtype=entry.host[0].dtype, device=self.device)
            for part, piece in zip(back.view(-1).split([p.numel() for p in entry.host]), entry.host):
                part.copy_(piece, non_blocking=True)
            entry.back = back
            entry.ready = self.to_device.record_event()
