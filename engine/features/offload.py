"""Frozen embeddings and LM head in pinned host memory while training (--offload-embeddings).

In QLoRA the largest frozen tensor that is *not* quantised is the vocabulary matrix: Llama-3.2-1B's
embedding (128,256 x 2,048, tied to the LM head) is 501 MiB in bf16, more than all its 4-bit weights
together (479 MiB). Nothing trains it, and training uses it in two narrow ways:
  * input: only the rows of the batch's token ids (4 x 352 ids: 5.5 MiB of the 501) — gathered on
    the host and copied to the device;
  * output: the label-only LM head, computed over vocabulary chunks that are copied from pinned host
    memory just before their matmul (engine/features/chunked_loss.py): two passes over the matrix per
    micro-batch (forward, and the recompute in backward), ~1 GiB over PCIe, a fixed cost per
    micro-batch, not per token.
So the device holds a chunk (4,096 rows: 16 MiB for Llama) instead of the matrix. Pinned (page-locked)
memory is what lets a host-to-device copy run asynchronously and be recorded in a CUDA graph.

The Parameter objects stay the same (tied weights stay tied, the optimizer never sees them); only
their data moves. `restore_embeddings` puts them back (generation and evaluation use the plain head).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn


class HostEmbedding(nn.Module):
    """nn.Embedding whose weight lives on the host: ids (any device) -> rows on `device`."""

    def __init__(self, embedding: nn.Embedding, device: torch.device):
        super().__init__()
        self.original = [embedding]  # a list: not a submodule, so its (shared) weight is listed once
        self.weight = embedding.weight  # the same Parameter, now holding host memory
        self.device = device

    @property
    def num_embeddings(self) -> int:
        return self.weight.shape[0]

    def gather(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Rows of host `input_ids` [B, T] -> [B, T, H] on the host (pinned when a GPU is the target)."""
        rows = nn.functional.embedding(input_ids.cpu(), self.weight)
        return rows.pin_memory() if self.device.type == "cuda" else rows

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # Device ids are read back to the host: a sync per micro-batch in eager mode (the CUDA graph
        # path gathers from the host-side batch instead, engine/features/cuda_graphs.py).
        return self.gather(input_ids).to(self.device, non_blocking=True)


def _base(model: nn.Module) -> nn.Module:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _to_host(param: nn.Parameter, pin: bool) -> None:
    host = param.data.to("cpu")
    param.data = host.pin_memory() if pin else host


def offload_embeddings(model: nn.Module, device: torch.device) -> int:
    """Move the input embedding and LM head weights to (pinned) host memory; returns the device bytes
    freed. Both must be frozen (LoRA/QLoRA)."""
    base = _base(model)
    embedding, head = base.get_input_embeddings(), base.get_output_embeddings()
    if isinstance(embedding, HostEmbedding):
        return 0
    if type(embedding) is not nn.Embedding:  # e.g. Gemma scales its embeddings inside forward
        raise ValueError(f"--offload-embeddings supports a plain nn.Embedding input layer, not {type(embedding).__name__}")
    weights = {id(p): p for p in (embedding.weight, head.weight)}.values()  # tied: one Parameter
    if any(p.requires_grad for p in weights) or getattr(head, "bias", None) is not None:
        raise ValueError("--offload-embeddings needs frozen embeddings and a bias-free LM head (LoRA/QLoRA)")
    freed = sum(p.numel() * p.element_size() for p in weights if p.device.type != "cpu")
    for p in weights:
        _to_host(p, pin=device.type == "cuda")
    base.set_input_embeddings(HostEmbedding(embedding, device))
    if device.type == "cuda":
        torch.cuda.empty_cache()  # hand the freed segments back: reserved memory drops now
    return freed


def restore_embeddings(model: nn.Module, device: torch.device) -> None:
    """Undo `offload_embeddings`: weights back on `device`, the original embedding module back."""
    base = _base(model)
    host = base.get_input_embeddings()
    if not isinstance(host, HostEmbedding):
        return
    for p in {id(p): p for p in (host.weight, base.get_output_embeddings().weight)}.values():
        p.data = p.data.to(device)
    base.set_input_embeddings(host.original[0])


@contextmanager
def embeddings_on_host(model: nn.Module, device: torch.device) -> Iterator[int]:
    """`offload_embeddings` for the duration of the block (training), `restore_embeddings` after."""
    freed = offload_embeddings(model, device)
    try:
        yield freed
    finally:
        restore_embeddings(model, device)
