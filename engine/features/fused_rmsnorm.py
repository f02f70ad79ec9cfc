"""RMSNorm as one autograd node that keeps its input and one fp32 number per row (--fused-rmsnorm).

transformers' LlamaRMSNorm (Qwen2's, Mistral's and Phi-3's are the same code) computes

    h = x.to(fp32);  h = h * rsqrt(mean(h^2) + eps);  y = weight * h.to(x.dtype)

as five operations, and autograd keeps the fp32 copy of x for backward (twice the bytes of x in bf16)
while backward forms the fp32 gradients of each step over the whole [tokens, hidden] tensor, several
alive at once. At long sequences this is what bounds a checkpointed layer's recompute once the MLP is
sliced (--mlp-chunk): an allocator history of the Llama-3.1-8B shape at 131,072 tokens peaked in the
post-attention norm's backward with five such fp32 [tokens, hidden] temporaries (10 GiB) beside the 4 GiB
of fp32 copies its two norms kept.

`RMSNormFunction` computes the same forward (the same operations, row slice by row slice, so the output
is the same bits) and keeps x itself (in x's dtype: for the input norm of a checkpointed layer that is
the layer input, kept anyway) and rstd = rsqrt(mean(x^2) + eps), fp32 [tokens]. Its backward, over
SLICE_ROWS rows at a time,

    x^ = x * rstd;  gh = (g * weight), rounded to x's dtype as autograd does, in fp32
    dx = rstd * (gh - x^ * mean(gh * x^))            dweight = sum over rows of g * x^.to(x.dtype)

so the fp32 working set is one slice's. Same gradients up to the order of float additions
(tests/test_fused_rmsnorm.py).
"""

from __future__ import annotations

import functools
import inspect
import types
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from engine.features.fused_lora import row_slices


class RMSNormFunction(torch.autograd.Function):
    """weight * (x * rsqrt(mean(x^2) + eps)).to(x.dtype), statistics in fp32 (see the module docstring)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        x2 = x.reshape(-1, x.shape[-1])
        y = torch.empty(x2.shape, dtype=torch.promote_types(weight.dtype, x.dtype), device=x.device)
        rstd = torch.empty(x2.shape[0], dtype=torch.float32, device=x.device)
        for rows in row_slices(x2.shape[0]):
            h = x2[rows].to(torch.float32)
            r = torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
            torch.mul(weight, (h * r).to(x.dtype), out=y[rows])  # LlamaRMSNorm's operations, in its order
            rstd[rows] = r.squeeze(-1)
        ctx.save_for_backward(x, weight, rstd)
        return y.view(*x.shape[:-1], y.shape[-1])

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        x, weight, rstd = ctx.saved_tensors
        x2, g2 = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1])
        dx = torch.empty_like(x2) if ctx.needs_input_grad[0] else None
        dweight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if ctx.needs_input_grad[1] else None
        for rows in row_slices(x2.shape[0]):
            r = rstd[rows, None]
            normed = x2[rows].to(torch.float32) * r
            if dx is not None:
                gh = (g2[rows] * weight).to(x.dtype).to(torch.float32)  # as autograd: the weight's product, in x's dtype
                dx[rows] = (r * (gh - normed * (gh * normed).mean(-1, keepdim=True))).to(x.dtype)
            if dweight is not None:
                dweight += (g2[rows] * normed.to(x.dtype)).sum(0, dtype=torch.float32)
        return (None if dx is None else dx.view_as(x),
                None if dweight is None else dweight.to(weight.dtype), None)


def fused_forward(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A LlamaRMSNorm's forward through RMSNormFunction (bound to each norm as its `forward`)."""
    return RMSNormFunction.apply(x, norm.weight, norm.variance_epsilon)


@functools.cache
def _llama_forward_source() -> str:
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    return inspect.getsource(LlamaRMSNorm.forward)


def is_llama_rmsnorm(module: nn.Module) -> bool:
    """Whether `module` computes exactly LlamaRMSNorm's forward (its own class or a copy of its code)."""
    forward = type(module).__dict__.get("forward")
    if forward is None or not hasattr(module, "variance_epsilon"):
        return False
    try:
        return inspect.getsource(forward) == _llama_forward_source()
    except (OSError, TypeError):
        return False


@contextmanager
def fused_rmsnorm_layers(model: nn.Module) -> Iterator[int]:
    """Every LlamaRMSNorm of `model` computed by RMSNormFunction inside the block; yields how many. Each norm's
    `forward` is replaced on the instance, so names, parameters and attributes (`weight`, which evaluation's
    decoder reads mid-training) stay as they are; the class's forward comes back after."""
    norms = [m for m in model.modules() if is_llama_rmsnorm(m)]
    for norm in norms:
        norm.forward = types.MethodType(fused_forward, norm)
    try:
        yield len(norms)
    finally:
        for norm in norms:
            del norm.forward
