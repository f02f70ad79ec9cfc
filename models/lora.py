"""LoRA on the linear layers of the decoder blocks, discovered from the model rather than hard-coded.

Each targeted layer W (out x in, frozen) gets A (r x in) and B (out x r), trainable, and computes
W x + (alpha / r) * B A x, with B = 0 at the start so the wrapped model equals the base model.
A and B are kept in fp32 whatever the base dtype: an Adam update of lr 2e-4 applied to a bf16 value
of magnitude ~1e-2 is below bf16's resolution there (8 bits of mantissa), so the step would vanish.
"""

from __future__ import annotations

from torch import nn


def _in_decoder_block(name: str) -> bool:
    # Decoder blocks live in a ModuleList, so their modules have a numeric path component:
    # model.layers.3.self_attn.q_proj, gpt_neox.layers.0.mlp.dense_h_to_4h, transformer.h.11.attn.c_attn.
    return any(part.isdigit() for part in name.split("."))


def _linear_names(model: nn.Module) -> list[tuple[str, str]]:
    """(full name, leaf name) of every linear layer (nn.Linear, bnb Linear4bit, ...) in the model."""
    return [(name, name.rsplit(".", 1)[-1]) for name, module in model.named_modules()
            if isinstance(module, nn.Linear)]


def default_target_modules(model: nn.Module) -> list[str]:
    """Leaf names of every linear layer inside the decoder blocks, in model order, e.g. Llama:
    [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]; lm_head and embeddings excluded."""
    names: list[str] = []
    for full, leaf in _linear_names(model):
        if _in_decoder_block(full) and leaf not in names:
            names.append(leaf)
    return names


def apply_lora(
    model: nn.Module, *, r: int, alpha: float, dropout: float, target_modules: list[str],
    base_model_name: str | None = None,
) -> nn.Module:
    """Wrap `model` with LoRA adapters on `target_modules` (leaf names); adapters in fp32, base frozen.
    `base_model_name` is what the saved adapter_config.json names as its base (peft would write the path
    the weights were read from). Returns the peft.PeftModel."""
    import peft  # imported here: it takes seconds, and the constants above need none of it

    if r <= 0:
        raise ValueError(f"LoRA rank must be a positive integer, got {r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"LoRA dropout must be in [0, 1), got {dropout}")
    leaves = {leaf for _, leaf in _linear_names(model)}
    unknown = [t for t in target_modules if t not in leaves]
    if unknown or not target_modules:
        available = ", ".join(default_target_modules(model))
        raise ValueError(f"LoRA target module(s) {', '.join(unknown) or '(none given)'} match no linear "
                         f"layer of this model; available: {available}")
    config = peft.LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    lora_model = peft.get_peft_model(model, config)
    # Set after wrapping: get_peft_model replaces it with the path the weights were read from.
    lora_model.peft_config["default"].base_model_name_or_path = base_model_name
    for param in lora_model.parameters():
        if param.requires_grad:
            param.data = param.data.float()  # see the module docstring: fp32 adapters
    return lora_model
