"""One autograd node per LoRA layer instead of peft's chain of generic ones.

For every adapted projection (7 per Llama block) peft's `lora.Linear.forward` computes

    y = base(x) + B(A(x.to(fp32))) * s     then .to(y's dtype)

as separate operations: cast, mm, mm, mul over [N, out], add over [N, out] (promoted to fp32 when the
model is bf16), cast back; autograd records a node for each. With a bf16 model (GPU) every layer also
keeps its own fp32 copy of x for backward (lora_A's input): q, k and v each save one of the same activation.

`LoRALinearFunction` does the same arithmetic in one node:

    forward   y = base(x) + s * (x A^T) B^T      base(x): the frozen layer's own forward (bnb's 4-bit
              matmul for QLoRA), run as is; the LoRA product is accumulated into it by one GEMM
              (addmm), in the adapters' dtype like peft, and rounded once to y's dtype;
              saved: x (one tensor, shared by the projections reading it) and xa = x A^T  [N, r]
    backward  dB = g^T (s * xa)      [out, r]
              dA = (s * g B)^T x     [r, in]      (the scale lands on [N, r] factors, never on [N, out])
              dx = g W + (s * g B) A              W dequantised once, as bnb's backward does; skipped
                                                  when x needs no gradient (the first block's inputs)
    both      the fp32 terms over SLICE_ROWS rows at a time, so that at long sequences no fp32 [N, in]
              or [N, out] tensor exists (peft makes both for every layer, forward and backward)

Same numbers as peft up to the order of float additions (tests/test_fused_lora.py). Layers it does not
cover (dropout > 0, several or disabled adapters, merged weights, DoRA, trainable base) keep peft's forward.
"""

from __future__ import annotations

import types
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn


# Rows per slice of the fp32 adapter terms, forward and backward: a batch of up to 16k tokens is one slice.
SLICE_ROWS = 16_384


def row_slices(n: int) -> list[slice]:
    # One whole slice up to SLICE_ROWS: the same kernels as unsliced (and under torch.compile a bound on
    # n, not its value, so varying batch shapes do not recompile).
    if n <= SLICE_ROWS:
        return [slice(None)]
    return [slice(start, start + SLICE_ROWS) for start in range(0, n, SLICE_ROWS)]


class LoRALinearFunction(torch.autograd.Function):
    """y = base(x) + scaling * (x @ A^T) @ B^T for a frozen linear `base` (see the module docstring)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lora_a: torch.Tensor, lora_b: torch.Tensor, base: nn.Module,
                scaling: float) -> torch.Tensor:
        y = base(x)  # autograd is off inside forward: bnb takes its inference path, the same kernel
        x2, y2 = x.reshape(-1, x.shape[-1]), y.view(-1, y.shape[-1])
        xa = x2.new_empty((x2.shape[0], lora_a.shape[0]), dtype=lora_a.dtype)  # x A^T [N, r], kept for backward
        for rows in row_slices(x2.shape[0]):
            torch.mm(x2[rows].to(lora_a.dtype), lora_a.t(), out=xa[rows])  # the fp32 copy of x: one slice
            # One GEMM that accumulates into y: no separate mul and add passes over [N, out]. Like peft, the
            # sum is formed in the adapters' dtype (fp32) and rounded once to y's dtype, written in place.
            y2[rows] = torch.addmm(y2[rows].to(xa.dtype), xa[rows], lora_b.t(), alpha=scaling)
        ctx.base, ctx.scaling = base, scaling
        ctx.save_for_backward(x, xa, lora_a, lora_b)
        return y

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        x, xa, lora_a, lora_b = ctx.saved_tensors
        s = ctx.scaling
        g = grad_y.reshape(-1, grad_y.shape[-1])  # [N, out]
        x2 = x.reshape(-1, x.shape[-1])  # [N, in]; xa is [N, r]
        grad_x = g @ _frozen_weight(ctx.base, g.dtype) if ctx.needs_input_grad[0] else None  # [N, in]
        grad_a = grad_b = None
        # The fp32 copies of g and x and the adapter term of dx exist for one slice of rows, not for all N
        # (at 131,072 tokens of the 8B shape down_proj's term and its cast were 10.5 GiB).
        for rows in row_slices(g.shape[0]):
            g_lora = g[rows].to(lora_b.dtype)
            gxa = (g_lora @ lora_b) * s  # [n, r]: gradient at the rank-r bottleneck
            part_b = g_lora.t() @ (xa[rows] * s)  # [out, r]
            part_a = gxa.t() @ x2[rows].to(lora_a.dtype)  # [r, in]
            grad_b = part_b if grad_b is None else grad_b.add_(part_b)
            grad_a = part_a if grad_a is None else grad_a.add_(part_a)
            if grad_x is not None:
                if grad_x.dtype == gxa.dtype:
                    grad_x[rows].addmm_(gxa, lora_a)
                else:  # as peft: the adapter's fp32 term rounded to x's dtype, then summed with the base's
                    grad_x[rows].add_((gxa @ lora_a).to(grad_x.dtype))
        if grad_x is not None:
            grad_x = grad_x.view(x.shape).to(x.dtype)
        return grad_x, grad_a, grad_b, None, None


def _frozen_weight(base: nn.Module, dtype: torch.dtype) -> torch.Tensor:
    """The base layer's weight [out, in] in `dtype`: dequantised from 4 bits as bnb's own backward does."""
    weight = base.weight
    if getattr(weight, "quant_state", None) is not None:  # bnb's Params4bit
        import bitsandbytes as bnb  # here, not at the top: the predictor reads SLICE_ROWS without it

        return bnb.functional.dequantize_4bit(weight.data, weight.quant_state).to(dtype)
    return weight.to(dtype)


def _fused_forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """Bound to a peft lora.Linear instance in place of its forward."""
    if args or kwargs or not _fusable(self):
        return type(self).forward(self, x, *args, **kwargs)
    name = self.active_adapters[0]
    return LoRALinearFunction.apply(x, self.lora_A[name].weight, self.lora_B[name].weight, self.base_layer,
                                     self.scaling[name])


def _fusable(layer: nn.Module) -> bool:
    """True when the layer computes exactly base(x) + s * B(A(x)) with one plain adapter."""
    if layer.disable_adapters or layer.merged or len(layer.active_adapters) != 1:
        return False
    name = layer.active_adapters[0]
    return (name in layer.lora_A and name not in getattr(layer, "lora_variant", {})
            and isinstance(layer.lora_dropout[name], nn.Identity)
            and isinstance(layer.base_layer, nn.Linear)  # bnb's Linear4bit is one too
            and not any(p.requires_grad for p in layer.base_layer.parameters())
            and layer.lora_A[name].bias is None and layer.lora_B[name].bias is None)


def fuse_lora_layers(model: nn.Module) -> int:
    """Route every peft LoRA layer on a linear base (4-bit or float) through LoRALinearFunction, in place.
    Returns how many layers qualify now; the others, and any layer at a moment it stops qualifying
    (e.g. adapters disabled for evaluation), run peft's own forward. Idempotent."""
    from peft.tuners.lora.bnb import Linear4bit as LoraLinear4bit  # peft's class for from_pretrained 4-bit models
    from peft.tuners.lora.layer import Linear as LoraLinear  # and for ours (quantised by models/quantize.py)

    fused = 0
    for module in model.modules():
        if isinstance(module, (LoraLinear, LoraLinear4bit)):
            module.forward = types.MethodType(_fused_forward, module)
            fused += _fusable(module)
    return fused


def unfuse_lora_layers(model: nn.Module) -> None:
    """Undo `fuse_lora_layers`: every layer runs peft's own forward again."""
    for module in model.modules():
        bound = module.__dict__.get("forward")
        if isinstance(bound, types.MethodType) and bound.__func__ is _fused_forward:
            del module.forward  # the instance attribute goes; the class's forward shows through again


@contextmanager
def fused_lora_layers(model: nn.Module) -> Iterator[int]:
    """LoRA layers fused inside the block (yields how many qualify), peft's forward again after it."""
    try:
        yield fuse_lora_layers(model)
    finally:
        unfuse_lora_layers(model)
