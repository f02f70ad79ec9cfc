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
            unpacked, and queues the copy of the latest tensor saved before it that backward has not
            unpacked yet: one layer's transfer overlaps the recompute and backward of the next. A node
            unpacks its own tensors in the order it saved them (the loss's hidden rows, then its ids
            and log-sum-exp): "the tensor saved before" may already be in use, and fetching it again
            would leave a layer input's copy on the device that nothing reads.

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

    __slots__ = ("host", "shape", "copied", "index", "back", "ready", "unpacked", "__weakref__")

    def __init__(self, host: list[torch.Tensor], shape: torch.Size, copied, index: int):
        self.host, self.shape, self.copied, self.index = host, shape, copied, index
        self.back: torch.Tensor | None = None  # the device copy queued ahead of use
        self.ready = None  # the event that says `back` has arrived
        self.unpacked = False  # backward has had it (once; a tensor saved by two nodes comes back twice)


class ActivationOffload:
    """The pack / unpack pair for one device. On a CPU "device" the copies are plain copies (no streams,
    the same prefetch order): what the tests use to check that every tensor comes back as it was, and
    that every copy made for backward is read by it (`fetches`, `unread`)."""

    def __init__(self, device: torch.device, min_bytes: int = 1 << 20, piece_bytes: int = 1 << 20):
        self.device, self.min_bytes, self.piece_bytes = device, min_bytes, piece_bytes
        self.cuda = device.type == "cuda"
        self.to_host = torch.cuda.Stream(device) if self.cuda else None
        self.to_device = torch.cuda.Stream(device) if self.cuda else None
        self.begin()

    def begin(self) -> None:
        """A new micro-batch: what was saved before belongs to a graph that backward has freed."""
        self.saved: list[weakref.ref] = []  # pack order, which backward runs through in reverse
        self.host_bytes = 0  # what this micro-batch moved to the host
        self.fetches = 0  # copies made back to the device: one per unpack when the order is right
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
        if entry.back is None:  # not prefetched: the first tensor backward needs, or one it needs again
            self._fetch(entry)
        tensor, entry.back, entry.unpacked = entry.back, None, True
        if self.cuda:
            current = torch.cuda.current_stream(self.device)
            current.wait_event(entry.ready)
            tensor.record_stream(current)  # made on the copy stream, used and freed on this one
        if (following := self._next_needed(entry.index)) is not None and following.back is None:
            self._fetch(following)  # the next tensor backward will need
        return tensor

    def _next_needed(self, index: int) -> Offloaded | None:
        """The latest tensor saved before `index` that backward has not unpacked yet."""
        while (index := index - 1) >= 0:
            entry = self.saved[index]()
            if entry is not None and not entry.unpacked:
                return entry
        return None

    def _fetch(self, entry: Offloaded) -> None:
        self.fetches += 1
        if not self.cuda:
            entry.back = entry.host[0].clone()
            return
        with torch.cuda.stream(self.to_device):
            self.to_device.wait_event(entry.copied)
            back = torch.empty(entry.shape, dtype=entry.host[0].dtype, device=self.device)
            for part, piece in zip(back.view(-1).split([p.numel() for p in entry.host]), entry.host):
                part.copy_(piece, non_blocking=True)
            entry.back = back
            entry.ready = self.to_device.record_event()

    def unread(self) -> int:
        """Bytes copied back to the device that backward has not read (none once backward is done)."""
        return sum(entry.back.numel() * entry.back.element_size()
                   for _, entry in self.by_storage.values() if entry.back is not None)
