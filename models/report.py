"""Parameter counts, bytes and dtypes of a model, counted the way memory is actually used.

Two traps are handled here:
- a packed bnb Params4bit reports numel() == n/2 (two 4-bit values per uint8 byte): its real parameter
  count is prod(quant_state.shape), and its bytes include the quantisation state beside the codes
  (absmax, nested absmax, offset, code tables);
- tensors that share storage (tied input/output embeddings, buffers registered twice) are counted once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import bitsandbytes as bnb
import torch
from torch import nn

MIB = 2**20


def _is_4bit(param: torch.Tensor) -> bool:
    return isinstance(param, bnb.nn.Params4bit) and param.quant_state is not None


def _quant_state_tensors(param: bnb.nn.Params4bit) -> Iterator[torch.Tensor]:
    state = param.quant_state
    yield state.absmax
    yield state.code
    if state.nested:
        yield state.offset
        yield state.state2.absmax
        yield state.state2.code


def _unique_parameters(model: nn.Module) -> Iterator[nn.Parameter]:
    # parameters() already yields a shared Parameter once (tied embeddings are one Parameter).
    yield from model.parameters()


def count_parameters(model: nn.Module) -> dict[str, int]:
    """{"total", "trainable", "4bit", "frozen_float"}: real parameter counts, shared weights once."""
    counts = {"total": 0, "trainable": 0, "4bit": 0, "frozen_float": 0}
    for param in _unique_parameters(model):
        if _is_4bit(param):
            n = math.prod(param.quant_state.shape)
            counts["4bit"] += n
        else:
            n = param.numel()
            counts["trainable" if param.requires_grad else "frozen_float"] += n
        counts["total"] += n
    return counts


class _StorageSet:
    """Bytes of tensors, each underlying storage counted once (meta tensors: once per tensor)."""

    def __init__(self) -> None:
        self.seen: set = set()

    def add(self, t: torch.Tensor) -> int:
        if t.device.type == "meta":
            # No storage to compare: one entry per tensor object. Callers pass long-lived objects
            # (the Parameter itself, not param.data, whose id a later temporary could reuse).
            key, nbytes = ("meta", id(t)), t.numel() * t.element_size()
        else:
            storage = t.untyped_storage()
            key, nbytes = (t.device, storage.data_ptr()), storage.nbytes()
        if key in self.seen:
            return 0
        self.seen.add(key)
        return nbytes


def parameter_bytes(model: nn.Module) -> dict[str, int]:
    """Bytes held by the model: {"params_4bit", "params_frozen", "params_trainable", "params_host"}.

    params_4bit = packed codes + absmax + nested absmax + offset + code tables; params_frozen = other
    frozen parameters + buffers (e.g. rotary inv_freq); params_trainable = trainable parameters;
    params_host = frozen parameters moved to pinned host memory (engine/features/offload.py), in none of the
    others: they take no device memory."""
    storages = _StorageSet()
    out = {"params_4bit": 0, "params_frozen": 0, "params_trainable": 0, "params_host": 0}
    for param in _unique_parameters(model):
        if param.device.type == "cpu" and param.is_pinned():
            out["params_host"] += storages.add(param)
        elif _is_4bit(param):
            out["params_4bit"] += storages.add(param)
            out["params_4bit"] += sum(storages.add(t) for t in _quant_state_tensors(param))
        elif param.requires_grad:
            out["params_trainable"] += storages.add(param)
        else:
            out["params_frozen"] += storages.add(param)
    for buffer in model.buffers():
        out["params_frozen"] += storages.add(buffer)
    return out


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def dtype_summary(model: nn.Module) -> dict[str, str]:
    """Kind -> dtype(s), e.g. {"4-bit weights": "nf4 (uint8 packed, 2/byte)", "frozen float":
    "bfloat16", "trainable (LoRA)": "float32"}; kinds the model does not have are left out."""
    is_lora = any("lora_" in name for name, p in model.named_parameters() if p.requires_grad)
    trainable_kind = "trainable (LoRA)" if is_lora else "trainable"
    kinds: dict[str, list[str]] = {}
    for param in _unique_parameters(model):
        if _is_4bit(param):
            state = param.quant_state
            label = (f"{state.quant_type} ({_dtype_name(param.dtype)} packed, 2/byte"
                     f"{', double-quantised scales' if state.nested else ''})")
            kind = "4-bit weights"
        else:
            label = _dtype_name(param.dtype)
            kind = trainable_kind if param.requires_grad else "frozen float"
        if label not in kinds.setdefault(kind, []):
            kinds[kind].append(label)
    return {kind: ", ".join(labels) for kind, labels in kinds.items()}


def format_model_report(model: nn.Module) -> str:
    """Multi-line summary printed when training starts: counts, share trainable, MiB per kind, dtypes."""
    counts = count_parameters(model)
    nbytes = parameter_bytes(model)
    total_bytes = sum(nbytes.values())
    share = 100.0 * counts["trainable"] / counts["total"] if counts["total"] else 0.0
    lines = [
        f"parameters: {counts['total']:,} total, {counts['trainable']:,} trainable ({share:.3f}%)",
        f"  4-bit: {counts['4bit']:,}   frozen float: {counts['frozen_float']:,}",
        f"memory of weights: {total_bytes / MIB:,.2f} MiB",
        f"  4-bit weights + quant state: {nbytes['params_4bit'] / MIB:,.2f} MiB",
        f"  frozen float params + buffers: {nbytes['params_frozen'] / MIB:,.2f} MiB",
        f"  trainable params: {nbytes['params_trainable'] / MIB:,.2f} MiB",
    ]
    if nbytes["params_host"]:
        lines.append(f"  frozen params in pinned host memory (--offload-embeddings): {nbytes['params_host'] / MIB:,.2f} MiB")
    lines.append("dtypes:")
    lines += [f"  {kind}: {dtypes}" for kind, dtypes in dtype_summary(model).items()]
    return "\n".join(lines)
