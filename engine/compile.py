"""torch.compile one decoder layer's code and reuse it for every layer (regional compilation).

Compiling the whole model traces every layer separately: minutes before the first step (160 s for the
SmolLM2 shape on an H100, /work/shared/GPU_NOTES.md). The decoder layers all run the same `forward`
code on different weights, and dynamo treats module parameters as graph inputs, so one compiled graph
serves all of them: the compile cost is that of one layer (~20 s for arch:tiny on a 2-core CPU).
Inductor then fuses the element-wise work between the matmuls (RMSNorm, rotary embedding, SiLU * up,
residual adds, the LoRA scale) into a few kernels, in forward and backward.

`dynamic=True`: sequence lengths change from micro-batch to micro-batch; the graph is compiled once
with a symbolic length instead of once per length. Gradient checkpointing keeps working: transformers'
checkpointing wrapper calls the module, and the module calls its compiled forward (also when backward
recomputes it). Losses match eager mode up to float summation order (tests/test_compile.py).
"""

from __future__ import annotations

from torch import nn

from engine.loss import body_and_head


def compile_decoder_layers(model: nn.Module) -> int:
    """Compile every decoder layer of `model` in place (nn.Module.compile); returns how many.
    The compilation itself happens on the first forward."""
    body, _ = body_and_head(model)
    layers = getattr(body, "layers", None)
    if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        raise ValueError(f"{type(body).__name__} has no `layers` list of decoder blocks to compile")
    for layer in layers:
        layer.compile(dynamic=True)
    return len(layers)
