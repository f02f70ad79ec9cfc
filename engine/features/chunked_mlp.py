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

import types
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from engine.features.compile import decoder_layers


def sliced_forward(mlp: nn.Module, chunk: int, x: torch.Tensor) -> torch.Tensor:
    """`mlp`'s own forward applied to slices of `chunk` positions; a sequence that fits one slice runs as
    before."""
    forward = type(mlp).forward.__get__(mlp)  # the class's forward: the instance's is this function
    if x.shape[1] <= chunk:
        return forward(x)
    if not torch.is_grad_enabled():
        return torch.cat([forward(piece) for piece in x.split(chunk, dim=1)], dim=1)
    return torch.cat([checkpoint(forward, piece, use_reentrant=False) for piece in x.split(chunk, dim=1)], dim=1)


@contextmanager
def chunked_mlp_layers(model: nn.Module, chunk: int) -> Iterator[int]:
    """Every decoder layer's `mlp` sliced inside the block; yields how many. The MLP's `forward` is replaced
    on the instance, so its names, parameters and projections (which evaluation's decoder reads
    mid-training) stay as they are; the class's forward comes back after."""
    mlps = [layer.mlp for layer in decoder_layers(model)]
    for mlp in mlps:
        mlp.forward = types.MethodType(lambda self, x: sliced_forward(self, chunk, x), mlp)
    try:
        yield len(mlps)
    finally:
        for mlp in mlps:
            del mlp.forward
