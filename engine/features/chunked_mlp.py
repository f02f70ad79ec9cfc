"""Each decoder layer's MLP over sequence chunks, each chunk checkpointed (--mlp-chunk TOKENS).

At long sequences the largest tensors of a layer are its MLP's: gate, up, their product and the SiLU
are [T, intermediate] each (Llama-3.1-8B: 14,336 wide, 3.5 times the hidden size), about 40 GB together
at 350,000 tokens in bf16, all alive while backward runs through that layer (with --ckpt: while its
recompute runs). The MLP treats every position alone, so it can run over slices of the sequence: each
slice runs under its own non-reentrant checkpoint, which keeps only its input (a view of the layer's
hidden states) and recomputes the slice in backward. The peak then holds one slice's MLP tensors, at
the cost of one more MLP forward per step. Same function, same numbers up to matmul rounding (a smaller
M may pick another kernel): tests/test_chunked_mlp.py.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from engine.features.compile import decoder_layers


class SequenceChunkedMLP(nn.Module):
    """`mlp` applied to slices of `chunk` positions; a sequence that fits one slice runs as before."""

    def __init__(self, mlp: nn.Module, chunk: int):
        super().__init__()
        self.mlp, self.chunk = mlp, chunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] <= self.chunk:
            return self.mlp(x)
        if not torch.is_grad_enabled():
            return torch.cat([self.mlp(piece) for piece in x.split(self.chunk, dim=1)], dim=1)
        return torch.cat([checkpoint(self.mlp, piece, use_reentrant=False) for piece in x.split(self.chunk, dim=1)],
                         dim=1)


@contextmanager
def chunked_mlp_layers(model: nn.Module, chunk: int) -> Iterator[int]:
    """Every decoder layer's `mlp` wrapped for the block; yields how many, puts them back after."""
    layers = decoder_layers(model)
    originals = [layer.mlp for layer in layers]
    for layer in layers:
        layer.mlp = SequenceChunkedMLP(layer.mlp, chunk)
    try:
        yield len(layers)
    finally:
        for layer, mlp in zip(layers, originals):
            layer.mlp = mlp
