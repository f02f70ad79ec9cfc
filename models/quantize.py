"""4-bit quantisation done by hand: every nn.Linear (except `skip`) becomes a bitsandbytes Linear4bit.

This is exactly what `from_pretrained(..., quantization_config=BitsAndBytesConfig(load_in_4bit=True))`
does inside transformers, minus the plumbing, so one code path serves the bundled model, the random
`arch:` presets and local checkpoints alike:

  1. the model exists in the compute dtype (bf16 on GPU, fp32 on CPU);
  2. for one Linear at a time, wrap its float weight in `bnb.nn.Params4bit` and call `.to(device)`:
     that call is where bitsandbytes quantises. A weight of shape (out, in), n = out*in values, becomes
       - packed codes:  uint8 [ceil(n/2), 1]  (two 4-bit indices into a 16-entry table per byte)
       - absmax:        one scale per block of 64 values, fp32 [ceil(n/64)]
                        or, with double quantisation, uint8 [ceil(n/64)] + a nested fp32 absmax per
                        256 scales [ceil(n/64/256)] + one fp32 offset (the mean of the scales)
       - code tables:   the 16-value NF4/FP4 table (fp32) and, nested, the 256-value dynamic map (fp32)
  3. the float weight loses its last reference and is freed before the next Linear is touched, so the
     peak is one float Linear above the 4-bit model, not a whole second copy.

lm_head stays in the compute dtype (like transformers, which never quantises the output layer: with
tied embeddings it *is* the embedding matrix, and its logits feed the loss directly).

One deliberate difference from a stock Linear4bit: on CPUs with AVX512-BF16, bitsandbytes rewrites the
packed weight *in place* into a CPU-only layout the first time a layer runs in eval mode without grad,
and from then on computes that layer with a bf16 kernel, in eval and in train mode alike: an
evaluation in the middle of training would silently change the model being trained. We switch that
path off (`support_avx512bf16_for_cpu = False`): every forward dequantises the same bytes the same way,
at a cost in CPU evaluation speed only (docs/measurements.md).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

QUANT_TYPES = ("nf4", "fp4")  # train.py --quant
QUANT_SKIP = ("lm_head",)  # layers left in the compute dtype: the output layer


def _is_skipped(name: str, skip: Iterable[str]) -> bool:
    return any(name == s or name.endswith("." + s) for s in skip)


def quantize_to_4bit(
    model: nn.Module,
    *,
    quant_type: str,
    double_quant: bool,
    compute_dtype: torch.dtype,
    device: torch.device | str,
    skip: Iterable[str] = QUANT_SKIP,
) -> nn.Module:
    """Replace every nn.Linear not named in `skip` by a frozen bnb Linear4bit on `device`, in place."""
    if quant_type not in QUANT_TYPES:
        raise ValueError(f"unknown quant type {quant_type!r}; choose one of {', '.join(QUANT_TYPES)}")
    # Imported here, not at the top: importing bitsandbytes logs a warning on CPU-only machines, and
    # QUANT_TYPES above serves argument checks that must stay silent and instant.
    import bitsandbytes as bnb

    device = torch.device(device)
    skip = tuple(skip)
    # Collect first: replacing children while iterating named_modules() would skip some of them.
    targets = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and not isinstance(module, bnb.nn.Linear4bit)
        and not _is_skipped(name, skip)
    ]
    for name in targets:
        parent_name, _, child_name = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        linear = getattr(parent, child_name)
        setattr(parent, child_name, quantize_linear(linear.weight.data, linear.bias, quant_type=quant_type,
                                                    double_quant=double_quant, compute_dtype=compute_dtype,
                                                    device=device))
        del linear  # last reference to the float weight: freed now, not at the end
    return model


def quantize_linear(weight: torch.Tensor, bias: torch.Tensor | None, *, quant_type: str, double_quant: bool,
                    compute_dtype: torch.dtype, device: torch.device | str) -> nn.Module:
    """A frozen bnb Linear4bit on `device` holding `weight` [out, in] (any device) quantised, and `bias`."""
    import bitsandbytes as bnb

    out_features, in_features = weight.shape
    quantized = bnb.nn.Linear4bit(
        in_features,
        out_features,
        bias=bias is not None,
        compute_dtype=compute_dtype,  # dtype the 4-bit weight is dequantised to for each matmul
        compress_statistics=double_quant,
        quant_type=quant_type,
        device="meta",  # placeholder weight, replaced below: nothing is allocated twice
    )
    quantized.weight = bnb.nn.Params4bit(
        weight,
        requires_grad=False,
        quant_type=quant_type,
        compress_statistics=double_quant,
        module=quantized,
    ).to(device)  # <- quantisation happens here, on `device`
    if bias is not None:  # a meta bias (streaming: not read yet) is filled in when it is
        quantized.bias = bias if bias.is_meta else nn.Parameter(bias.data.to(device), requires_grad=False)
    quantized.support_avx512bf16_for_cpu = False  # see the module docstring
    return quantized
