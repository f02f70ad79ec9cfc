"""Load a model by spec, in one of three fine-tuning modes, ready for the training loop.

spec:  "smollm2-135m-instruct"  the bundled model (default)
       "arch:<preset>"          random init at a real architecture's shape (models/presets.py)
       a local directory        any Hugging Face checkpoint (config.json + weights)
       "<owner>/<name>"         a hub id: from_pretrained as usual, so only if the HF cache has it
peft:  "qlora"  weights to 4-bit (models/quantize.py) + LoRA
       "lora"   frozen base in the compute dtype + LoRA
       "full"   no adapters, every weight trainable, in the compute dtype

What stays in which dtype (qlora/lora), and why. peft's prepare_model_for_kbit_training upcasts every
non-4-bit parameter (embeddings, norms, lm_head) to fp32; we do not:
- frozen embeddings, norms and lm_head stay in the compute dtype: nothing updates them, RMSNorm and
  LayerNorm already normalise in fp32 internally in transformers, and the engine computes the loss
  from the logits in fp32;
- LoRA A/B (the only trainable tensors) are fp32, see models/lora.py.
For Llama-3.2-1B the upcast would add more frozen bytes than all the 4-bit weights take
(docs/measurements.md; tests/test_models.py derives the frozen part on the meta device). For qlora a
safetensors checkpoint, and a preset on a GPU, are built piece by piece (models/stream.py), so loading
peaks near the 4-bit model plus one tensor or block, not at the float model.
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers
from torch import nn

from models.bundled import BUNDLED_HUB_ID, BUNDLED_NAME, bundled_model_dir
from models.lora import apply_lora, default_target_modules
from models.presets import PRESETS, preset_config
from models.quantize import QUANT_TYPES, quantize_to_4bit

ARCH_PREFIX = "arch:"
PEFT_MODES = ("qlora", "lora", "full")  # train.py --peft
DEFAULT_SEED = 1234  # random-init presets and LoRA A are drawn from it (seed 000 uses 1234)


def is_random_init(spec: str) -> bool:
    """True for "arch:<preset>" specs, whose weights are random (loss curves mean nothing there)."""
    return spec.startswith(ARCH_PREFIX)


def _preset_name(spec: str) -> str:
    name = spec[len(ARCH_PREFIX):]
    if name not in PRESETS:
        raise ValueError(f"unknown architecture preset {name!r} in --model {spec!r}; "
                         f"known: {', '.join(ARCH_PREFIX + p for p in PRESETS)}")
    return name


def _checkpoint(spec: str) -> str:
    """Directory or hub id to hand to from_pretrained, for every spec except arch: presets."""
    if spec == BUNDLED_NAME:
        return str(bundled_model_dir())
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"model directory {spec!r} has no config.json")
        return str(path)
    parts = spec.split("/")
    looks_like_hub_id = (len(parts) == 2 and all(parts) and not spec.startswith((".", "~"))
                         and not path.exists())
    if not looks_like_hub_id:
        raise ValueError(f"--model {spec!r} is neither {BUNDLED_NAME!r}, an arch:<preset>, an existing "
                         f"model directory nor a hub id of the form owner/name")
    # A hub id is read from its snapshot in the local Hugging Face cache, found without asking the hub:
    # there is none at run time, and transformers retries a missing one for half a minute.
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(spec, "config.json")
    if not isinstance(cached, str):
        raise ValueError(f"--model {spec!r} is not in the local Hugging Face cache: download it where there is "
                         f"network (hf download {spec}), or pass a local model directory")
    return str(Path(cached).parent)


def base_model_name(spec: str) -> str | None:
    """The base an adapter trained on `spec` names in adapter_config.json (`base_model_name_or_path`), so
    that it resolves elsewhere: the hub id of the bundled model, a hub id as given, a local directory as
    given (it resolves where that directory is); None for a random-init preset, which exists nowhere."""
    if is_random_init(spec):
        return None
    return BUNDLED_HUB_ID if spec == BUNDLED_NAME else spec


def _from_pretrained(cls, name: str, **kwargs):
    """`cls.from_pretrained` from local files only (`name` is a directory: see `_checkpoint`)."""
    try:
        return cls.from_pretrained(name, local_files_only=True, **kwargs)
    except OSError as error:  # hub id not in the local HF cache, no network, gated repo, ...
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"cannot load {name!r}: {first_line}") from error


def load_tokenizer(spec: str):
    """The tokenizer for `spec`: the bundled SmolLM2 one (ChatML, pad == eos == <|im_end|>) for the
    bundled model and for every arch: preset, the checkpoint's own otherwise.

    A tokenizer without a pad token gets pad = eos (seed 000 does the same; some transformers versions
    drop SmolLM2's pad token when converting the GGUF). Safe here because padding is masked by
    position in data/batching.collate, never by token id, so the learned end-of-turn stays labelled."""
    if is_random_init(spec):
        _preset_name(spec)  # reject unknown presets here too
        tokenizer = transformers.AutoTokenizer.from_pretrained(bundled_model_dir())
    else:
        tokenizer = _from_pretrained(transformers.AutoTokenizer, _checkpoint(spec))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _build_base(spec: str, compute_dtype: torch.dtype, device: torch.device, on_device: bool) -> nn.Module:
    """The float model in `compute_dtype`: on `device` if on_device, else on CPU (quantised later,
    layer by layer, straight onto the device)."""
    if is_random_init(spec):
        config = preset_config(_preset_name(spec))
        # Built where it will live, in the final dtype: no fp32 copy on CPU first (8B: 16 GB, not 32 GB).
        with torch.device(device if on_device else "cpu"):
            return transformers.AutoModelForCausalLM.from_config(config, dtype=compute_dtype)
    model = _from_pretrained(transformers.AutoModelForCausalLM, _checkpoint(spec), dtype=compute_dtype)
    return model.to(device) if on_device else model


def _streamable(spec: str, device: torch.device) -> str | None:
    """"random" for a preset on a GPU, the directory of a safetensors checkpoint, else None."""
    if is_random_init(spec):
        return "random" if device.type == "cuda" else None
    directory = Path(_checkpoint(spec))
    has_safetensors = (directory / "model.safetensors").is_file() or (directory / "model.safetensors.index.json").is_file()
    return str(directory) if has_safetensors else None


def load_model(
    spec: str,
    *,
    peft: str,
    quant: str = "nf4",
    double_quant: bool = True,
    compute_dtype: torch.dtype,
    lora_r: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.0,
    target_modules: list[str] | None = None,
    device: torch.device,
    seed: int = 0,
    prepare_base=None,
) -> nn.Module:
    """The model of `spec` on `device`, in train() mode with use_cache off; a PeftModel for qlora/lora.
    `prepare_base(model)`, if given, runs on the (quantised) base before LoRA is added: the benchmark's
    stock-recipe baseline passes peft's `prepare_model_for_kbit_training` there."""
    if peft not in PEFT_MODES:
        raise ValueError(f"unknown fine-tuning mode {peft!r}; choose one of {', '.join(PEFT_MODES)}")
    if quant not in QUANT_TYPES:
        raise ValueError(f"unknown quant type {quant!r}; choose one of {', '.join(QUANT_TYPES)}")
    device = torch.device(device)
    torch.manual_seed(seed)  # random init (arch:) and LoRA A init are both drawn from this

    quant_options = dict(quant_type=quant, double_quant=double_quant, compute_dtype=compute_dtype)
    if peft == "qlora" and (stream := _streamable(spec, device)):
        # Built piece by piece (models/stream.py): the float model never exists whole, on the host or the GPU.
        from models import stream as streaming

        model = (streaming.stream_random_init(preset_config(_preset_name(spec)), compute_dtype, device, quant_options)
                 if stream == "random" else streaming.stream_checkpoint(stream, compute_dtype, device, quant_options))
    elif peft == "qlora":
        # A preset on a CPU is built whole and quantised Linear by Linear (its random values are the ones
        # the CPU tests pin); a checkpoint without safetensors is read whole to the host first.
        model = _build_base(spec, compute_dtype, device, on_device=is_random_init(spec))
        quantize_to_4bit(model, device=device, **quant_options)
        model.to(device)  # what is left in float: embeddings, norms, lm_head, buffers
    else:
        model = _build_base(spec, compute_dtype, device, on_device=True)
    if peft == "qlora":
        if device.type == "cuda":
            # The float weights the 4-bit ones replaced are freed, but their blocks stay cached (reserved)
            # in the allocator. Hand them back, so that reserved memory measures training, not loading.
            torch.cuda.empty_cache()
    if prepare_base is not None:
        model = prepare_base(model)

    if peft == "full":
        for param in model.parameters():
            param.requires_grad_(True)
    else:
        for param in model.parameters():
            param.requires_grad_(False)
        targets = target_modules if target_modules is not None else default_target_modules(model)
        model = apply_lora(model, r=lora_r, alpha=lora_alpha, dropout=lora_dropout, target_modules=targets,
                           base_model_name=base_model_name(spec))

    model.config.use_cache = False  # no KV cache while training: it is memory for nothing
    model.train()
    return model
