"""Build a 4-bit model a piece at a time, so the float model never exists whole (QLoRA on a GPU).

`from_pretrained` reads every float weight into host memory before anything is quantised (8B: 16 GB
in bf16), and a random-init preset built whole on the GPU takes the float model's 15 GiB there before
its Linears shrink to 4 bits. Here the model is first built on the meta device (shapes, no memory), then
filled piece by piece, each Linear quantised as soon as its float weight exists:

  checkpoint   safetensors files (one, or shards listed in model.safetensors.index.json) read tensor by
               tensor (`safe_open` reads only the bytes of the tensor asked for): host memory peaks near
               the largest tensor above the 4-bit model, the device near the 4-bit model plus one tensor;
  random init  one module at a time (a decoder block, the embedding, ...) allocated on the device and
               drawn with the model's own `_init_weights`, its Linears quantised before the next block
               exists: the device peaks near the 4-bit model plus one block.

Names and dtypes follow the model's `state_dict`; a tied LM head is the embedding (not read twice); a
tensor the checkpoint lacks, or one it has that the model does not, is an error naming it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import torch
import transformers
from torch import nn

from models.quantize import QUANT_SKIP, quantize_linear


def meta_model(config: transformers.PretrainedConfig, dtype: torch.dtype) -> nn.Module:
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(config, dtype=dtype)


def _is_quantized_linear(name: str, module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) and not any(name == s or name.endswith("." + s) for s in QUANT_SKIP)


def _quantize_children(unit: nn.Module, prefix: str, quant: dict, device: torch.device) -> None:
    for name, module in list(unit.named_modules()):
        full = f"{prefix}.{name}" if name else prefix
        if _is_quantized_linear(full, module) and name:
            parent_name, _, child = name.rpartition(".")
            parent = unit.get_submodule(parent_name)
            setattr(parent, child, quantize_linear(module.weight.data, module.bias, device=device, **quant))


def _units(model: nn.Module) -> Iterator[tuple[str, nn.Module, bool]]:
    """(name, module, recurse) in module order: each decoder block whole, every other module's own tensors."""
    blocks = []
    for name, module in model.named_modules():
        if any(name.startswith(b + ".") for b in blocks):
            continue
        parent, _, index = name.rpartition(".")
        if index.isdigit() and isinstance(model.get_submodule(parent), nn.ModuleList):
            blocks.append(name)
            yield name, module, True
        else:
            yield name, module, False


def stream_random_init(config: transformers.PretrainedConfig, dtype: torch.dtype, device: torch.device,
                       quant: dict) -> nn.Module:
    """A random-init model of `config` with its Linears in 4 bits (`quant`: quantize_linear's options),
    built one block at a time on `device`."""
    model = meta_model(config, dtype)
    for name, unit, recurse in _units(model):
        own = list(unit.parameters(recurse=recurse)) + list(unit.buffers(recurse=recurse))
        if not any(t.is_meta for t in own):
            continue
        unit.to_empty(device=device, recurse=recurse)  # keeps each Parameter object: tied weights stay tied
        for module in (unit.modules() if recurse else [unit]):
            model._init_weights(module)
        if not recurse:
            model.tie_weights()  # to_empty gave the embedding a new Parameter: a tied head takes it now
        if recurse:
            _quantize_children(unit, name, quant, device)
        elif _is_quantized_linear(name, unit):
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child,
                    quantize_linear(unit.weight.data, unit.bias, device=device, **quant))
    return model


def checkpoint_files(directory: Path) -> list[Path]:
    """The safetensors files of a checkpoint directory, shards in index order."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        shards = dict.fromkeys(json.loads(index.read_text())["weight_map"].values())
        return [directory / shard for shard in shards]
    single = directory / "model.safetensors"
    if single.is_file():
        return [single]
    raise ValueError(f"{directory} has no model.safetensors (or index): streaming reads safetensors only")


def stream_checkpoint(directory: str | Path, dtype: torch.dtype, device: torch.device, quant: dict) -> nn.Module:
    """The checkpoint in `directory` with its Linears in 4 bits, read and quantised tensor by tensor."""
    from safetensors import safe_open

    directory = Path(directory)
    config = transformers.AutoConfig.from_pretrained(directory, local_files_only=True)
    model = meta_model(config, dtype)
    expected = {name for name, t in model.state_dict(keep_vars=True).items()}
    tied = model.get_output_embeddings() is not None and \
        model.get_output_embeddings().weight is model.get_input_embeddings().weight
    for file in checkpoint_files(directory):
        with safe_open(str(file), framework="pt", device="cpu") as reader:
            for key in reader.keys():
                if key not in expected:
                    raise ValueError(f"{file.name}: tensor {key!r} is not a parameter of {type(model).__name__}")
                module_name, _, attr = key.rpartition(".")
                module = model.get_submodule(module_name)
                tensor = reader.get_tensor(key)  # this tensor's bytes only
                if attr == "weight" and _is_quantized_linear(module_name, module):
                    parent_name, _, child = module_name.rpartition(".")
                    setattr(model.get_submodule(parent_name), child,
                            quantize_linear(tensor.to(dtype), module.bias, device=device, **quant))
                elif attr in module._buffers:
                    module._buffers[attr] = tensor.to(device)
                else:
                    value = tensor.to(dtype) if tensor.is_floating_point() else tensor
                    module._parameters[attr] = nn.Parameter(value.to(device), requires_grad=False)
                del tensor
    if tied:
        model.tie_weights()  # the head is the embedding just read
    for module in model.modules():  # buffers computed from the config (rotary tables)
        if any(b.is_meta for b in module.buffers(recurse=False)):
            module.to_empty(device=device, recurse=False)
            model._init_weights(module)
    missing = [name for name, param in model.named_parameters() if param.is_meta]
    if missing:
        raise ValueError(f"{directory}: the checkpoint lacks {', '.join(missing[:3])}"
                         + (f" and {len(missing) - 3} more" if len(missing) > 3 else ""))
    return model
