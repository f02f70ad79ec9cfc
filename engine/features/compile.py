"""torch.compile one decoder layer's code and reuse it for every layer (regional compilation).

Compiling the whole model traces every layer separately: minutes before the first step. The decoder
layers all run the same `forward` code on different weights, and dynamo treats module parameters as
graph inputs, so one compiled graph serves all of them: the compile cost is that of one layer.
Inductor then fuses the element-wise work between the matmuls (RMSNorm, rotary embedding, SiLU * up,
residual adds, the LoRA scale) into a few kernels, in forward and backward.

`dynamic=True`: sequence lengths change from micro-batch to micro-batch; the graph is compiled once
with a symbolic length instead of once per length. Gradient checkpointing keeps working: transformers'
checkpointing wrapper calls the module, and the module calls its compiled forward (also when backward
recomputes it). Losses match eager mode up to float summation order (tests/test_compile.py).

Compile for training only: generation (train.py --eval before and after training) runs the layers with
a KV cache and one-token steps, other graphs that would compile again. `compiled_decoder_layers` is the
context manager for that: compiled inside, eager again after.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn

from engine.loss import body_and_head


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    body, _ = body_and_head(model)
    layers = getattr(body, "layers", None)
    if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        raise ValueError(f"{type(body).__name__} has no `layers` list of decoder blocks to compile")
    return layers


def compile_decoder_layers(model: nn.Module) -> int:
    """Compile every decoder layer of `model` in place (nn.Module.compile); returns how many.
    The compilation itself happens on the first forward."""
    layers = decoder_layers(model)
    for layer in layers:
        layer.compile(dynamic=True)
    return len(layers)


@contextmanager
def compiled_decoder_layers(model: nn.Module) -> Iterator[int]:
    """Decoder layers compiled inside the block (yields how many), eager again after it."""
    layers = decoder_layers(model)
    compile_decoder_layers(model)
    try:
        yield len(layers)
    finally:
        for layer in layers:
            layer._compiled_call_impl = None  # what nn.Module.compile set; None is nn.Module's eager default
