"""Load a base model (optionally 4-bit) with a trained LoRA adapter for evaluation, or merge the
adapter into a standalone Hugging Face model directory.

For evaluation the base must be loaded *without* fresh LoRA layers (models/load.load_model adds
them for training), then `PeftModel.from_pretrained(base, adapter_dir)` puts the trained ones in.
The base is built the way the run trained it: the run's config.json, next to its adapter/
(runs/<name>/config.json, or checkpoint-N/config.json for checkpoint-N/adapter), names the model,
the fine-tuning mode (qlora: 4-bit base) and the 4-bit type.

Merging (W' = W + (alpha/r) B A, `merge_and_unload`) is done on float weights and saved in float:
merging into 4-bit weights would re-quantise W', and one NF4 step (about 1/8 of a 64-value
block's absmax) is larger than most entries of the low-rank update, so most of what was learned
would round away. For a qlora run there are two float bases to merge into:
  "dequantized" (default for qlora): W = dequant(quant(W_original)), the very weights the adapter
                was trained and evaluated against, kept in float; the merged model computes what
                the 4-bit base + adapter computed, up to float rounding;
  "original":   the checkpoint's float weights, the usual recipe; the result differs from the
                trained model by the quantisation error of W, which the adapter never saw.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from data.files import atomic_directory, atomic_write_json
from models.bundled import BUNDLED_NAME
from models.load import DEFAULT_SEED, is_random_init, load_model, load_tokenizer
from models.quantize import QUANT_TYPES, quantize_to_4bit

# peft and bitsandbytes are imported inside the functions that build models: importing bitsandbytes
# logs a warning on CPU-only machines, and checking a path (check_adapter_dir, read_run_config)
# should print nothing but its error.
BASE_WEIGHTS = ("auto", "dequantized", "original")


def check_adapter_dir(adapter_dir: str | Path) -> Path:
    """The adapter directory, validated: it must hold a PEFT adapter (adapter_config.json)."""
    path = Path(adapter_dir)
    if not path.is_dir():
        raise ValueError(f"adapter directory not found: {path}")
    if not (path / "adapter_config.json").is_file():
        if (path / "adapter").is_dir():  # a train.py run or checkpoint directory: its adapter is inside
            check_adapter_dir(path / "adapter")  # a --peft full run's "adapter" is a model: says so
            raise ValueError(f"{path} is a train.py run directory: pass --adapter {path / 'adapter'}")
        if (path / "training_state.pt").is_file() or (path / "metrics.jsonl").is_file():
            raise ValueError(f"{path} is a train.py run directory without an adapter (the run did not finish): "
                             f"--resume it, or pass a checkpoint's: --adapter {path}/checkpoint-N/adapter")
        if (path / "config.json").is_file():
            raise ValueError(f"{path} holds a full model (a --peft full run), not an adapter: "
                             f"pass it as --model {path}")
        raise ValueError(f"{path} is not a PEFT adapter directory (no adapter_config.json)")
    return path


def read_run_config(adapter_dir: str | Path) -> dict | None:
    """The training run's config.json beside the adapter directory, if there is one."""
    path = Path(adapter_dir).parent / "config.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"cannot read the run config {path}: {exc}") from None


def load_base(spec: str, *, quant: str | None, double_quant: bool = True, compute_dtype: torch.dtype,
              device: torch.device | str, seed: int = DEFAULT_SEED) -> nn.Module:
    """The plain base model of `spec` (no LoRA), frozen, in eval() mode, use_cache on.

    quant None: weights in `compute_dtype`; "nf4"/"fp4": every Linear except lm_head in 4-bit, as
    in training (models/quantize.py), quantised layer by layer onto `device` from a CPU copy."""
    if quant is not None and quant not in QUANT_TYPES:
        raise ValueError(f"unknown quant type {quant!r}; choose one of {', '.join(QUANT_TYPES)} or none")
    device = torch.device(device)
    # peft="full" is load_model's "no adapters" mode; training flags are undone below.
    model = load_model(spec, peft="full", compute_dtype=compute_dtype,
                       device=torch.device("cpu") if quant else device, seed=seed)
    if quant is not None:
        quantize_to_4bit(model, quant_type=quant, double_quant=double_quant,
                         compute_dtype=compute_dtype, device=device)
        model.to(device)  # embeddings, norms, lm_head
    for param in model.parameters():
        param.requires_grad_(False)
    model.config.use_cache = True
    return model.eval()


def dequantize_linears(model: nn.Module) -> nn.Module:
    """Replace every bnb Linear4bit by an nn.Linear holding its dequantised weight, in place."""
    import bitsandbytes as bnb

    targets = [name for name, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    for name in targets:
        parent_name, _, child_name = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        quantized = getattr(parent, child_name)
        weight = bnb.functional.dequantize_4bit(quantized.weight.data, quantized.weight.quant_state)
        linear = nn.Linear(quantized.in_features, quantized.out_features, bias=quantized.bias is not None,
                           device=weight.device, dtype=weight.dtype)
        linear.weight.data = weight
        if quantized.bias is not None:
            linear.bias.data = quantized.bias.data.to(weight.dtype)
        linear.requires_grad_(False)
        setattr(parent, child_name, linear)
    return model


def _run_settings(adapter_dir: Path | None, spec: str | None) -> dict:
    """model / peft / quant / double_quant / seed of the run that trained the adapter (defaults when unknown)."""
    run = read_run_config(adapter_dir) if adapter_dir is not None else None
    settings = {"model": spec or BUNDLED_NAME, "peft": None, "quant": "nf4", "double_quant": True,
                "seed": DEFAULT_SEED, "run_config": None}
    if run is not None:
        if spec is not None and spec != run.get("model"):
            print(f"warning: --model {spec} differs from the run's model {run.get('model')} "
                  f"({adapter_dir.parent / 'config.json'}); using {spec}")
        settings.update(model=spec or run.get("model", BUNDLED_NAME), peft=run.get("peft"),
                        quant=run.get("quant", "nf4"), double_quant=run.get("double_quant", True),
                        seed=run.get("seed", DEFAULT_SEED),
                        run_config=str(adapter_dir.parent / "config.json"))
    return settings


def load_for_eval(spec: str | None, adapter_dir: str | Path | None = None, *, quant: str = "auto",
                  double_quant: bool | None = None, compute_dtype: torch.dtype,
                  device: torch.device | str) -> tuple[nn.Module, object, dict]:
    """(model, tokenizer, description) for evaluation: the base of `spec`, plus the adapter if given.

    spec None with an adapter: the run's model. quant "auto": as the run trained (qlora -> its 4-bit
    type; lora/full -> float); without an adapter or run config "auto" means float. "none" forces
    float, "nf4"/"fp4" force 4-bit (e.g. the base alone, quantised like the run it is compared with)."""
    import peft

    adapter = check_adapter_dir(adapter_dir) if adapter_dir is not None else None
    run = _run_settings(adapter, spec)
    if quant == "auto":
        base_quant = run["quant"] if run["peft"] == "qlora" else None
    elif quant == "none":
        base_quant = None
    else:
        base_quant = quant
    dq = run["double_quant"] if double_quant is None else double_quant
    model = load_base(run["model"], quant=base_quant, double_quant=dq, compute_dtype=compute_dtype,
                      device=device, seed=run["seed"])
    if adapter is not None:
        try:
            model = peft.PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
        except (RuntimeError, ValueError, KeyError) as exc:  # shapes/targets from another base
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ValueError(f"adapter {adapter} does not fit model {run['model']}: {first}") from None
        model.eval()
    description = {
        "model": run["model"],
        "adapter": str(adapter) if adapter is not None else None,
        "base_quant": base_quant or "none",
        "double_quant": dq if base_quant else None,
        "compute_dtype": str(compute_dtype).removeprefix("torch."),
        "run_config": run["run_config"],
    }
    return model, load_tokenizer(run["model"]), description


def merge_adapter(base_spec: str | None, adapter_dir: str | Path, out_dir: str | Path, *,
                  base_weights: str = "auto", dtype: torch.dtype = torch.float32) -> Path:
    """Merge the adapter into its base and save a standalone model directory (config.json,
    model.safetensors, tokenizer files, merge.json), written atomically.

    base_weights: "dequantized" / "original" (see the module docstring); "auto" picks dequantized
    for a qlora run, original otherwise. base_spec None: the run's model."""
    import peft

    if base_weights not in BASE_WEIGHTS:
        raise ValueError(f"unknown base_weights {base_weights!r}; choose one of {', '.join(BASE_WEIGHTS)}")
    adapter = check_adapter_dir(adapter_dir)
    run = _run_settings(adapter, base_spec)
    if base_weights == "auto":
        base_weights = "dequantized" if run["peft"] == "qlora" else "original"
    cpu = torch.device("cpu")
    if base_weights == "dequantized":
        # Quantise exactly as training did (same type, same double quantisation), then back to float.
        model = load_base(run["model"], quant=run["quant"], double_quant=run["double_quant"],
                          compute_dtype=dtype, device=cpu, seed=run["seed"])
        dequantize_linears(model)
    else:
        model = load_base(run["model"], quant=None, compute_dtype=dtype, device=cpu, seed=run["seed"])
    try:
        model = peft.PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"adapter {adapter} does not fit model {run['model']}: {first}") from None
    merged = model.merge_and_unload()
    merged.config.use_cache = True  # load_model switched it off for training
    tokenizer = load_tokenizer(run["model"])
    out = Path(out_dir)
    with atomic_directory(out) as tmp:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / "merge.json", {
            "base_model": run["model"], "adapter": str(adapter), "base_weights": base_weights,
            "quant": run["quant"] if base_weights == "dequantized" else None,
            "double_quant": run["double_quant"] if base_weights == "dequantized" else None,
            "dtype": str(dtype).removeprefix("torch."), "random_init_base": is_random_init(run["model"]),
        })
    return out
