"""CUDA graphs: record one micro-batch's forward + loss + backward once per padded length, then replay it.

Why: a QLoRA micro-step of a narrow, deep model is thousands of small kernels, and the CPU cannot issue
them as fast as the GPU runs them (docs/measurements.md has the kernel counts and times). A CUDA graph
is the recorded kernel sequence, issued in one call, with the same gradients as eager.

A graph replays fixed shapes and fixed addresses, which decides everything below:
  * lengths: a micro-batch is right-padded to a multiple of LENGTH_MULTIPLE tokens and to `batch_size`
    rows; one graph per padded length that occurs in the data, all recorded before the first step,
    longest first (every step then runs at replay speed, and the peak memory shows at once); all
    graphs share one memory pool: they never run at once, and nothing they allocate outlives a replay;
  * no attention mask: with right padding and causal attention no real token ever attends to a pad
    (pads come after it), so the mask changes nothing the loss sees; without it attention takes the
    is_causal path and the graph holds no data-dependent mask logic (which would sync the host);
  * labels: the LM head runs at a fixed number of gathered positions, `label_slots` = batch_size x the
    longest answer in the data; unused slots point at position 0 with target -100 (ignored). With
    --no-loss-on-labels-only every position is a slot (label_slots None);
  * inputs are copied into the graph's own tensors before each replay; the window's loss normaliser is
    a device scalar filled before each replay (it changes every optimizer step); with the embeddings
    in host memory (--offload-embeddings) the input is the rows gathered on the host, [B, T, H], not
    the ids (a device-to-host read of the ids cannot be recorded);
  * gradients accumulate in place into .grad tensors that exist before capture, so the loop zeroes them
    in place (`zero_grad(set_to_none=False)`) instead of freeing them.
Not graphed: the optimizer step (bitsandbytes passes the learning rate, which changes every step, as a
kernel argument), clipping and logging: a few hundred launches per optimizer step, not per micro-batch.

Capture needs one eager run first (cuBLAS and the allocator set themselves up), on a side stream, here
on an all-pad micro-batch with no labels (shapes, not values, decide the kernels and the memory). That
run is the activation measurement for its length (saved-tensor hooks do not run on replay), and its
gradient contribution is undone, so recording changes nothing numerically. Every length's eager run
comes before the first capture, and their cached blocks are released in between: the recording's peak
is then the larger of the two passes, not their sum.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

import torch

from data.batching import TrainData
from data.tokenize import IGNORE_INDEX
from engine.features.offload import HostEmbedding
from engine.loss import HeadLoss, body_and_head, compute_loss_at_positions, plain_head_loss
from engine.memory import ActivationCounter

LENGTH_MULTIPLE = 32  # padded lengths: ~7 graphs for prompts of 100-300 tokens, < 32 pad tokens per row


def padded_length(length: int) -> int:
    return -(-length // LENGTH_MULTIPLE) * LENGTH_MULTIPLE


def static_micro_batch(input_ids: list[list[int]], labels: list[list[int]], *, batch_size: int, length: int,
                       label_slots: int, pad_token_id: int, host_embedding: HostEmbedding | None = None
                       ) -> dict[str, torch.Tensor]:
    """Host tensors of fixed shapes for one micro-batch (rows right-padded, missing rows all pad):
    input_ids [batch_size, length] (or, with `host_embedding`, inputs_embeds [batch_size, length, H]:
    the rows of those ids); positions, targets [label_slots]: flat indices into the
    [batch_size * (length - 1)] predicting positions, and the token each must predict (-100: unused)."""
    ids = torch.full((batch_size, length), pad_token_id, dtype=torch.long)
    positions = torch.zeros(label_slots, dtype=torch.long)
    targets = torch.full((label_slots,), IGNORE_INDEX, dtype=torch.long)
    used = 0
    for row, (row_ids, row_labels) in enumerate(zip(input_ids, labels)):
        ids[row, :len(row_ids)] = torch.as_tensor(row_ids, dtype=torch.long)
        shifted = torch.as_tensor(row_labels[1:], dtype=torch.long)  # position t predicts labels[t + 1]
        at = (shifted != IGNORE_INDEX).nonzero().squeeze(1)
        if used + len(at) > label_slots:
            raise ValueError(f"micro-batch has more than {label_slots} label tokens (the graphs' fixed slot count)")
        positions[used:used + len(at)] = row * (length - 1) + at
        targets[used:used + len(at)] = shifted[at]
        used += len(at)
    if host_embedding is not None:
        return {"inputs_embeds": host_embedding.gather(ids), "positions": positions, "targets": targets}
    return {"input_ids": ids, "positions": positions, "targets": targets}


class GraphedMicroSteps:
    """forward + loss + backward of one micro-batch as a CUDA graph replay (see the module docstring):
    the loop's micro-step (engine/step.py) with the eager one's interface, `forward_backward`."""

    recorded = True  # gradients accumulate into fixed .grad tensors; memory is fixed at recording

    def __init__(self, model: torch.nn.Module, data: TrainData, *, batch_size: int, label_slots: int | None,
                 device: torch.device, head_loss: HeadLoss = plain_head_loss):
        self.model, self.data, self.device, self.head_loss = model, data, device, head_loss
        self.module = model  # what the loop enters for no_backward_sync: graphs run in one process, no DDP
        # Read at construction: the embeddings must already be where training keeps them.
        embedding = body_and_head(model)[0].get_input_embeddings()
        self.host_embedding = embedding if isinstance(embedding, HostEmbedding) else None
        self.activations = ActivationCounter(model)  # hooks run in the eager run before each capture only
        self.batch_size, self.label_slots, self.pad_token_id = batch_size, label_slots, data.pad_token_id
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        for p in self.trainable:  # fixed addresses for the captured in-place accumulation
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        self.scale = torch.zeros((), device=device)  # 1 / label tokens of the window (the loop's `scale`)
        self.loss = torch.zeros((), device=device)  # the last replay's scaled loss; read it before the next
        self.pool = torch.cuda.graph_pool_handle()
        self.stream = torch.cuda.Stream(device)  # eager runs and captures: one stream, one set of workspaces
        self.input_buffers: dict[str, torch.Tensor] = {}  # flat device tensors, see _empty_inputs
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, dict[str, torch.Tensor], int]] = {}
        self.lengths = sorted({padded_length(n) for n in data.lengths}, reverse=True)  # longest first
        self.peak_allocated = 0  # bytes, set by record_all

    def record_all(self) -> float:
        """Record one graph per padded length not recorded yet; returns the seconds it took. Sets
        `peak_allocated`: replays allocate nothing (they reuse the addresses the recording got), so the
        recording's allocator peak is the replays' footprint, which later peak counters cannot see.

        Two passes, for memory: first the eager run of every length, then the captures. Interleaved, the
        eager run of each length would need fresh memory beside the graph pool, which already holds the
        longer lengths' recordings: reserved would be the pool *plus* an eager micro-batch."""
        started = time.perf_counter()
        torch.cuda.reset_peak_memory_stats(self.device)
        missing = {length: self._empty_inputs(length) for length in self.lengths if length not in self.graphs}
        with self._gradients_kept():
            activation_bytes = {length: self._eager_run(inputs) for length, inputs in missing.items()}
        torch.cuda.empty_cache()  # the eager runs' blocks go back to the driver before the pool grows
        for length, inputs in missing.items():
            self.graphs[length] = (self._record(inputs), inputs, activation_bytes[length])
        torch.cuda.synchronize(self.device)
        self.peak_allocated = max(self.peak_allocated, torch.cuda.max_memory_allocated(self.device))
        return time.perf_counter() - started

    def _empty_inputs(self, length: int) -> dict[str, torch.Tensor]:
        """The graph's own input tensors for `length`, filled with an all-pad micro-batch without labels.
        They are views of one device buffer per input, sized by the longest length: the graphs never run
        at once (with --offload-embeddings the rows [B, T, H] would otherwise cost a buffer per length)."""
        empty = static_micro_batch([], [], batch_size=self.batch_size, length=length, label_slots=self._slots(length),
                                   pad_token_id=self.pad_token_id, host_embedding=self.host_embedding)
        inputs = {}
        for name, host in empty.items():
            flat = self.input_buffers.get(name)
            if flat is None or flat.numel() < host.numel():  # graphs recorded earlier keep the old buffer alive
                flat = self.input_buffers[name] = torch.empty(host.numel(), dtype=host.dtype, device=self.device)
            inputs[name] = flat[:host.numel()].view(host.shape)
            inputs[name].copy_(host)  # all pad: the same values in every view, whatever the length
        return inputs

    def _slots(self, length: int) -> int:
        return self.label_slots or self.batch_size * (length - 1)

    @classmethod
    def for_training(cls, model: torch.nn.Module, data: TrainData, *, batch_size: int, label_only: bool,
                     device: torch.device, head_loss: HeadLoss = plain_head_loss) -> "GraphedMicroSteps":
        """Sized for `data`: label slots for `batch_size` of its longest answers."""
        longest_answer = max(data.label_tokens(i) for i in range(len(data.input_ids)))
        return cls(model, data, batch_size=batch_size, label_slots=batch_size * longest_answer if label_only else None,
                   device=device, head_loss=head_loss)

    def forward_backward(self, indices: list[int], scale: float) -> torch.Tensor:
        """Accumulate the gradients of (loss sum x scale) of the examples `indices` into .grad; returns
        the scaled loss as a device scalar (valid until the next call)."""
        input_ids, labels = [self.data.input_ids[i] for i in indices], [self.data.labels[i] for i in indices]
        length = padded_length(max(len(ids) for ids in input_ids))
        host = static_micro_batch(input_ids, labels, batch_size=self.batch_size, length=length,
                                  label_slots=self._slots(length), pad_token_id=self.pad_token_id,
                                  host_embedding=self.host_embedding)
        if length not in self.graphs:  # a length record_all was not told about
            inputs = self._empty_inputs(length)
            with self._gradients_kept():
                activation_bytes = self._eager_run(inputs)
            self.graphs[length] = (self._record(inputs), inputs, activation_bytes)
        graph, inputs, activation_bytes = self.graphs[length]
        for name, tensor in host.items():
            inputs[name].copy_(tensor, non_blocking=True)
        self.scale.fill_(scale)
        graph.replay()
        self.activations.note(activation_bytes)  # measured at recording: a replay runs no hooks
        return self.loss

    def _run(self, inputs: dict[str, torch.Tensor]) -> None:
        loss = compute_loss_at_positions(self.model, **inputs, head_loss=self.head_loss) * self.scale
        loss.backward()
        self.loss.copy_(loss.detach())

    @contextmanager
    def _gradients_kept(self) -> Iterator[None]:
        """Undo what eager runs add to .grad (recording must change nothing numerically). The copy is kept
        in host memory: on the device it would raise the recording's peak."""
        before = [p.grad.to("cpu") for p in self.trainable]
        yield
        for p, kept in zip(self.trainable, before):
            p.grad.copy_(kept)

    def _eager_run(self, inputs: dict[str, torch.Tensor]) -> int:
        """The eager run capture needs first (cuBLAS and the allocator set themselves up), on the
        recording stream; it measures the length's activations too. Returns their bytes."""
        self.scale.fill_(1.0)
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.stream):
            with self.activations.count():
                self._run(inputs)
        torch.cuda.current_stream(self.device).wait_stream(self.stream)
        return self.activations.last

    def _record(self, inputs: dict[str, torch.Tensor]) -> torch.cuda.CUDAGraph:
        graph = torch.cuda.CUDAGraph()
        # The eager runs' stream: cuBLAS keeps a workspace per (handle, stream), and a stream of its own
        # would give the captures another set of them.
        with torch.cuda.graph(graph, pool=self.pool, stream=self.stream):  # records only: nothing runs
            self._run(inputs)
        return graph
