"""Predict where a training step's memory goes, from the model's config alone: no weights, no GPU.

    python -m engine.tools.predict --model arch:llama-3.2-1b --peft qlora --batch-size 4 --seq-len 512 --ckpt --budget 24GiB

prints one row per component, "fits / does not fit in 24 GiB" and the largest batch size that fits.
The keys are those of the engine's per-step `mem` record (engine/memory.py), so a prediction can be
checked against a run component by component (engine/tools/sweep.py does). Parameters, gradients and
optimizer state are counted on the model built on the meta device; activations by replaying each
architecture's layer symbolically, op by op, saving what PyTorch's backward needs; the peak as the
largest of the loss-backward, layer-backward and optimizer phases. docs/memory-model.md gives every
term and its calibration.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass, field

import torch
import transformers
from torch import nn

from engine.device import COMPUTE_DTYPES
from engine.optim import OPTIMIZERS
from models.load import PEFT_MODES
from models.quantize import QUANT_SKIP, QUANT_TYPES

GIB = 1024**3
MEMORY_COMPONENTS = ("params_4bit", "params_frozen", "params_trainable", "grads", "optimizer",
                     "optimizer_paged", "activations")

QUANT_BLOCK = 64            # bnb Params4bit blocksize: one absmax per 64 weights
NESTED_BLOCK = 256          # double quantisation: one fp32 absmax per 256 absmax values
FOUR_BIT_CODE_BYTES = 16 * 4       # NF4/FP4 lookup table, fp32
NESTED_CODE_BYTES = 256 * 4        # bnb dynamic 8-bit map for the nested absmax, fp32
OFFSET_BYTES = 4                   # fp32 mean of the absmax values (double quant)
MIN_8BIT_SIZE = 4096               # bnb: smaller tensors keep 32-bit Adam state
STATE_BLOCK = 256                  # bnb 8-bit Adam: one fp32 absmax per 256 state values
QMAP_BYTES = 2 * 256 * 4           # bnb 8-bit Adam: signed + unsigned dynamic maps, shared
PAGED_MIN_NUMEL = 100_000          # bnb get_state_buffer pages tensors with >= 1e5 elements
CUBLAS_WORKSPACES = 20 * 2**20    # measured: allocator bytes beyond the model on an H100 (cuBLAS/cuBLASLt workspaces)
TORCH_STEP_BYTES = 4               # torch AdamW: one fp32 scalar `step` per parameter tensor (on CPU)


# ---- parameters ---------------------------------------------------------------------------------

def quantized_weight_bytes(n: int, double_quant: bool) -> int:
    """Bytes of one bnb 4-bit weight of n values: packed codes + quantisation state (see module doc)."""
    blocks = math.ceil(n / QUANT_BLOCK)
    packed = math.ceil(n / 2)
    if not double_quant:
        return packed + blocks * 4 + FOUR_BIT_CODE_BYTES
    nested_absmax = math.ceil(blocks / NESTED_BLOCK) * 4
    return packed + blocks + nested_absmax + OFFSET_BYTES + NESTED_CODE_BYTES + FOUR_BIT_CODE_BYTES


def dtype_bytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in COMPUTE_DTYPES:
        raise ValueError(f"compute dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {dtype!r}")
    return COMPUTE_DTYPES[dtype]


def meta_model(model_config: transformers.PretrainedConfig, compute_dtype: torch.dtype) -> nn.Module:
    """The model with every tensor on the meta device: real shapes and dtypes, no memory, ~0.1 s for 8B."""
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(model_config, dtype=compute_dtype)


@dataclass(frozen=True)
class LinearLayer:
    name: str
    leaf: str
    in_features: int
    out_features: int


def _is_skipped(name: str) -> bool:
    return any(name == s or name.endswith("." + s) for s in QUANT_SKIP)


def linear_layers(model: nn.Module) -> list[LinearLayer]:
    return [LinearLayer(name, name.rsplit(".", 1)[-1], m.in_features, m.out_features)
            for name, m in model.named_modules() if isinstance(m, nn.Linear)]


def resolve_targets(model: nn.Module, target_modules: list[str] | None) -> list[str]:
    """LoRA targets as models/lora.py resolves them (default: every linear leaf name in the decoder)."""
    from models.lora import default_target_modules

    targets = list(target_modules) if target_modules is not None else default_target_modules(model)
    leaves = {layer.leaf for layer in linear_layers(model)}
    unknown = [t for t in targets if t not in leaves]
    if unknown or not targets:
        raise ValueError(f"LoRA target module(s) {', '.join(unknown) or '(none given)'} match no linear layer "
                         f"of this model; available: {', '.join(default_target_modules(model))}")
    return targets


@dataclass
class ParameterPrediction:
    bytes: dict[str, int]
    trainable: list[tuple[int, int]]  # (numel, bytes per element) of every trainable tensor
    largest_4bit: int                 # elements of the largest quantised weight
    outside_layers_trainable: int     # trainable bytes outside the decoder blocks (embeddings, head, final norm)


def predict_parameters(model: nn.Module, *, peft: str, double_quant: bool, lora_r: int,
                       targets: list[str]) -> ParameterPrediction:
    quantized = {layer.name for layer in linear_layers(model) if peft == "qlora" and not _is_skipped(layer.name)}
    quantized_weights = {id(model.get_submodule(name).weight) for name in quantized}
    out = {"params_4bit": 0, "params_frozen": 0, "params_trainable": 0}
    trainable: list[tuple[int, int]] = []
    outside = 0
    largest = 0
    for name in quantized:
        n = model.get_submodule(name).weight.numel()
        out["params_4bit"] += quantized_weight_bytes(n, double_quant)
        largest = max(largest, n)
    for name, param in model.named_parameters():  # a tied weight is one Parameter: yielded once
        if id(param) in quantized_weights:
            continue
        nbytes = param.numel() * param.element_size()
        if peft == "full":
            out["params_trainable"] += nbytes
            trainable.append((param.numel(), param.element_size()))
            if not any(part.isdigit() for part in name.split(".")):  # not inside a numbered decoder block
                outside += nbytes
        else:
            out["params_frozen"] += nbytes
    seen = set()
    for buffer in model.buffers():
        if id(buffer) not in seen:
            seen.add(id(buffer))
            out["params_frozen"] += buffer.numel() * buffer.element_size()
    if peft != "full":
        for layer in linear_layers(model):
            if layer.leaf in targets:
                a, b = lora_r * layer.in_features, layer.out_features * lora_r  # A: r x in, B: out x r
                out["params_trainable"] += 4 * (a + b)
                trainable += [(a, 4), (b, 4)]
    return ParameterPrediction(out, trainable, largest, outside)


def resolve_optimizer(optim: str, device: str) -> str:
    from engine.optim import resolve_optimizer_name

    if optim not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optim!r}")
    return resolve_optimizer_name(optim, torch.device(device))[0]


def predict_optimizer(trainable: list[tuple[int, int]], optim: str) -> tuple[int, int, int]:
    """(state bytes, paged bytes, bytes on the CPU) for an already resolved optimizer name."""
    total = paged = on_cpu = 0
    if optim == "adamw":
        for n, elem in trainable:
            total += 2 * n * elem + TORCH_STEP_BYTES
            on_cpu += TORCH_STEP_BYTES
        return total, 0, on_cpu
    any_8bit = False
    for n, elem in trainable:
        if optim.endswith("8bit") and n >= MIN_8BIT_SIZE:
            moments, absmax = 2 * n, 2 * 4 * math.ceil(n / STATE_BLOCK)
            any_8bit = True
        else:
            moments, absmax = 2 * 4 * n, 0
        total += moments + absmax
        if optim.startswith("paged") and n >= PAGED_MIN_NUMEL:
            paged += moments
    if any_8bit:
        total += QMAP_BYTES
    return total, paged, on_cpu


# ---- activations: a symbolic replay of the forward --------------------------------------------

@dataclass(eq=False)
class _Tensor:
    """A tensor of the replay: bytes per token, and whether autograd tracks it. Views reuse the object."""
    nbytes: int
    grad: bool


@dataclass
class _Replay:
    """Collects what autograd saves, one entry per storage, in bytes per token."""
    E: int                       # compute dtype bytes
    full: bool                   # every weight trainable
    targets: frozenset[str]
    r: int
    dropout: bool
    on_cpu: bool                 # a few kernels keep different tensors on the CPU (see below)
    fused_lora: bool = False     # --fused-lora: the layer input itself, no fp32 copy (engine/features/fused_lora.py)
    fused_rmsnorm: bool = False  # --fused-rmsnorm: the norm's input itself and rstd (engine/features/fused_rmsnorm.py)
    saved: dict[int, _Tensor] = field(default_factory=dict)  # by id; holding the object keeps ids unique
    mlp: int = 0                 # bytes per token the last layer's MLP saved, its input apart (what --mlp-chunk slices)
    mlp_input: int = 0           # bytes per token of that MLP's input when only the MLP keeps it (a sliced MLP: whole)
    mlp_input_unsaved: int = 0   # the same when nothing keeps it unsliced (the slices' checkpoints still do)
    attention: int = 0           # bytes per token the last layer saved from its input norm through o_proj

    def new(self, nbytes: int, grad: bool) -> _Tensor:
        return _Tensor(nbytes, grad)

    def keep(self, *tensors: _Tensor) -> None:
        for t in tensors:
            self.saved[id(t)] = t

    @property
    def total(self) -> int:
        return sum(t.nbytes for t in self.saved.values())

    def linear(self, x: _Tensor, leaf: str, in_f: int, out_f: int) -> _Tensor:
        lora = leaf in self.targets and not self.full
        if self.full:
            self.keep(x)  # dW = dY^T X
        if lora:
            if self.dropout:  # lora_A keeps the fp32 dropout output; dropout keeps its mask when x
                self.keep(self.new(4 * in_f, True))  # needs a gradient: bool on CUDA (fused kernel),
                if x.grad:                           # an fp32 scaled noise tensor on the CPU
                    self.keep(self.new((4 if self.on_cpu else 1) * in_f, False))
            elif self.E == 4 or self.fused_lora:
                self.keep(x)  # lora_A keeps the layer input itself
            else:
                self.keep(self.new(4 * in_f, True))  # x.to(fp32) for the fp32 adapter: one copy per layer
            self.keep(self.new(4 * self.r, True))  # lora_B keeps A x
        return self.new(self.E * out_f, x.grad or self.full or lora)

    def rms_norm(self, x: _Tensor, h: int) -> _Tensor:
        # x.to(fp32); x * rsqrt(mean(x^2) + eps); weight * x.to(dtype)  (transformers LlamaRMSNorm)
        if x.grad and self.fused_rmsnorm:
            self.keep(x, self.new(4, True))  # x itself (alive anyway) and rstd, fp32 per row
        elif x.grad:
            self.keep(x if self.E == 4 else self.new(4 * h, True), self.new(4, True))
        if self.full and not self.fused_rmsnorm:  # RMSNormFunction recomputes it from x and rstd
            self.keep(self.new(self.E * h, True))  # the weight's gradient needs the normalised x
        return self.new(self.E * h, x.grad or self.full)

    def layer_norm(self, x: _Tensor, h: int) -> _Tensor:
        if x.grad or self.full:  # native_layer_norm keeps input, mean and rstd (fp32 on CUDA, E on CPU)
            stat = self.E if self.on_cpu else 4
            self.keep(x, self.new(stat, False), self.new(stat, False))
        return self.new(self.E * h, x.grad or self.full)

    def rope(self, x: _Tensor, width: int) -> _Tensor:
        return self.new(self.E * width, x.grad)  # x*cos + rotate_half(x)*sin keeps only cos, sin

    def sdpa(self, q: _Tensor, k: _Tensor, v: _Tensor, heads: int, head_dim: int) -> _Tensor:
        grad = q.grad or k.grad or v.grad
        out = self.new(self.E * heads * head_dim, grad)
        if grad:
            self.keep(q, k, v, out, self.new(4 * heads, False))  # + logsumexp per head
        return out

    def pointwise(self, x: _Tensor, width: int) -> _Tensor:
        """silu / gelu: keep the input."""
        if x.grad:
            self.keep(x)
        return self.new(self.E * width, x.grad)

    def mul(self, a: _Tensor, b: _Tensor, width: int) -> _Tensor:
        if a.grad:
            self.keep(b)
        if b.grad:
            self.keep(a)
        return self.new(self.E * width, a.grad or b.grad)


@dataclass(frozen=True)
class _Dims:
    family: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    rotary_dim: int
    vocab: int

    @property
    def widths(self) -> tuple[int, int]:
        """q's and each of k's and v's width: heads x head_dim, kv_heads x head_dim."""
        return self.heads * self.head_dim, self.kv_heads * self.head_dim


LLAMA_LIKE = ("llama", "qwen2", "mistral")
SUPPORTED_FAMILIES = LLAMA_LIKE + ("phi3", "gpt_neox")


def model_dims(config: transformers.PretrainedConfig) -> _Dims:
    family = config.model_type
    if family not in SUPPORTED_FAMILIES:
        raise ValueError(f"no activation formula for model_type {family!r}; supported: {', '.join(SUPPORTED_FAMILIES)}")
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    rotary_dim = head_dim
    if family == "gpt_neox":
        rope = getattr(config, "rope_parameters", None) or {}
        pct = rope.get("partial_rotary_factor", getattr(config, "rotary_pct", 1.0))
        rotary_dim = int(head_dim * pct)
    return _Dims(family, config.hidden_size, config.intermediate_size, config.num_hidden_layers, heads,
                 getattr(config, "num_key_value_heads", None) or heads, head_dim, rotary_dim, config.vocab_size)


def _llama_layer(f: _Replay, x: _Tensor, d: _Dims, padded: bool) -> _Tensor:
    h, (q_w, kv_w) = d.hidden, d.widths
    start = f.total
    y = f.rms_norm(x, h)
    if d.family == "phi3":  # fused qkv_proj: q, k, v are views of one output
        q = k = v = f.linear(y, "qkv_proj", h, q_w + 2 * kv_w)
    else:
        q, k, v = (f.linear(y, leaf, h, w) for leaf, w in (("q_proj", q_w), ("k_proj", kv_w), ("v_proj", kv_w)))
    q, k = f.rope(q, q_w), f.rope(k, kv_w)
    if padded and d.kv_heads < d.heads:  # repeat_kv: k and v copied out to every head
        k, v = f.new(f.E * q_w, k.grad), f.new(f.E * q_w, v.grad)
    attn = f.sdpa(q, k, v, d.heads, d.head_dim)
    if d.family == "phi3":  # q is a strided view of the fused output: the attention output comes back
        attn = f.new(f.E * q_w, attn.grad)  # (B, heads, T, d) in memory and o_proj gets a copy
    o = f.linear(attn, "o_proj", q_w, h)  # else the output is (B, T, heads, d) in memory: no copy
    f.attention = f.total - start
    x = f.new(f.E * h, x.grad or o.grad)  # residual
    y = f.rms_norm(x, h)
    before = f.total
    if d.family == "phi3":
        gate = up = f.linear(y, "gate_up_proj", h, 2 * d.intermediate)
    else:
        gate, up = f.linear(y, "gate_proj", h, d.intermediate), f.linear(y, "up_proj", h, d.intermediate)
    m = f.mul(f.pointwise(gate, d.intermediate), up, d.intermediate)
    down = f.linear(m, "down_proj", d.intermediate, h)
    # The slices of a sliced MLP are views of y, each kept by its checkpoint: y stays whole, so it is counted
    # apart from the MLP's own tensors.
    y_in_mlp = id(y) in f.saved
    f.mlp = f.total - before - (y.nbytes if y_in_mlp else 0)
    f.mlp_input = y.nbytes if y_in_mlp else 0
    f.mlp_input_unsaved = y.nbytes if id(y) not in f.saved else 0
    return f.new(f.E * h, x.grad or down.grad)


def _neox_layer(f: _Replay, x: _Tensor, d: _Dims, padded: bool) -> _Tensor:
    h = d.hidden
    qkv = f.linear(f.layer_norm(x, h), "query_key_value", h, 3 * h)
    attn = f.sdpa(f.rope(qkv, h), f.rope(qkv, h), qkv, d.heads, d.head_dim)  # v is a view of qkv
    dense_in = f.new(f.E * h, attn.grad)  # transpose + reshape of the attention output: a copy
    a = f.linear(dense_in, "dense", h, h)
    up = f.linear(f.layer_norm(x, h), "dense_h_to_4h", h, d.intermediate)  # parallel residual: same x
    m = f.linear(f.pointwise(up, d.intermediate), "dense_4h_to_h", d.intermediate, h)
    return f.new(f.E * h, x.grad or a.grad or m.grad)


def _layer(d: _Dims):
    return _neox_layer if d.family == "gpt_neox" else _llama_layer


@dataclass
class ActivationPrediction:
    total: int
    one_layer: int  # bytes one layer saves without checkpointing (recomputed once in backward with ckpt)
    loss_tokens: int
    loss_saved: int  # bytes saved by the loss (log-probs, targets), freed when its backward has run
    loss_transient: int = 0  # the loss backward's temporaries (fp32 gradients of log-probs and logits, or a chunk's)
    layer_input: int = 0  # one layer's input [B, T, H]: what --offload-activations brings back per layer
    mlp_saved: int = 0  # of one_layer, what the MLP keeps (its input included): freed before the layer's norms run backward
    attention_saved: int = 0  # of one_layer, what the input norm and attention keep: alive through attention's backward


def predict_activations(d: _Dims, *, E: int, full: bool, targets: list[str], lora_r: int, lora_dropout: float,
                        batch_size: int, seq_len: int, ckpt: bool, label_only_loss: bool,
                        label_tokens: int | None, padded: bool = False, device: str = "cuda",
                        fused_lora: bool = False, chunked_loss: bool = False,
                        mlp_chunk: int = 0, fused_rmsnorm: bool = False) -> ActivationPrediction:
    tokens = batch_size * seq_len
    loss_rows = batch_size * (seq_len - 1)  # position t predicts t+1: the last position predicts nothing
    n_labels = loss_rows if label_tokens is None else label_tokens
    if not 0 <= n_labels <= loss_rows:
        raise ValueError(f"label_tokens must be between 0 and batch_size x (seq_len - 1) = {loss_rows}, got {n_labels}")
    f = _Replay(E=E, full=full, targets=frozenset(targets), r=lora_r, dropout=lora_dropout > 0,
                on_cpu=torch.device(device).type == "cpu", fused_lora=fused_lora, fused_rmsnorm=fused_rmsnorm)
    layer = _layer(d)

    # Layers, per token. Layer 0's input is the embedding output: tracked only if the embedding trains.
    x = f.new(E * d.hidden, full)
    one_layer = 0
    for index in range(d.layers):
        if ckpt:  # a recompute starts from its saved input, counted as such: a norm keeping it adds nothing
            f.keep(x)
        before = f.total
        x = layer(f, x, d, padded)
        if index > 0:  # layer 0 may save less (untracked input)
            one_layer = max(one_layer, f.total - before)
    # --mlp-chunk: the MLP keeps its tensors for one slice of the sequence at a time (its slices' inputs
    # are views of the norm output, which stays whole): the rest of the sequence's MLP bytes never coexist.
    sliced = mlp_chunk and seq_len > mlp_chunk and d.family != "gpt_neox"
    mlp_rest = f.mlp * (seq_len - mlp_chunk) * batch_size if sliced else 0
    mlp_rest -= f.mlp_input_unsaved * tokens if sliced else 0  # kept whole by the slices alone
    mlp_saved = (f.mlp * min(seq_len, mlp_chunk or seq_len) * batch_size
                 + (f.mlp_input + (f.mlp_input_unsaved if sliced else 0)) * tokens)
    # With checkpointing each layer keeps only its input; the full set exists for one layer at a time.
    per_token = d.layers * E * d.hidden if ckpt else f.total
    rope = 0 if ckpt else 2 * seq_len * d.rotary_dim * E  # cos and sin [1, T, rotary_dim], shared by layers
    # A padding mask reaches SDPA as [B, 1, T, T]; each layer's attention keeps its own float copy.
    mask = d.layers * batch_size * seq_len**2 * E if padded and not ckpt else 0
    layers_total = per_token * tokens + rope + mask - (0 if ckpt else d.layers * mlp_rest)

    # Final norm and loss (engine/loss.py).
    f.saved.clear()
    x_final = _Tensor(E * d.hidden, True)
    f.layer_norm(x_final, d.hidden) if d.family == "gpt_neox" else f.rms_norm(x_final, d.hidden)  # records what it saves
    tail = f.total * tokens
    if full:
        tail += 8 * tokens  # embedding backward keeps the input ids (int64)
    if label_only_loss:
        tail += loss_rows  # bool mask of label positions, kept by the gather
        if full:
            tail += n_labels * d.hidden * E  # the gathered head input, for the head's weight gradient
        rows = n_labels
    else:
        if full:
            tail += tokens * d.hidden * E  # the final norm output, input of the trainable head
        rows = loss_rows
    if chunked_loss and label_only_loss and not full:
        # engine/features/chunked_loss.py keeps the gathered hidden [K, H], int64 ids, a bool mask and the
        # fp32 log-sum-exp; its backward holds one chunk's logits (bf16 and fp32), their fp32 gradient and
        # its cast, and the fp32 gradient of the hidden rows.
        from engine.features.chunked_loss import CHUNK_ROWS

        chunk = min(CHUNK_ROWS, d.vocab)
        loss_saved = rows * (d.hidden * E + 8 + 1 + 4)
        transient = rows * (chunk * (2 * E + 8) + d.hidden * (4 + E))
    else:
        loss_saved = rows * d.vocab * 4 + rows * 8 + 4 if rows else 0  # fp32 log-probs, int64 targets, total weight
        transient = 8 * rows * d.vocab  # fp32 gradients of the log-probs and the logits
    return ActivationPrediction(layers_total + tail + loss_saved, one_layer * tokens - mlp_rest, rows, loss_saved,
                                transient, E * d.hidden * tokens, mlp_saved, f.attention * tokens)


# ---- the whole step ----------------------------------------------------------------------------

def predict_memory(model_config: transformers.PretrainedConfig, *, peft: str = "qlora", quant: str = "nf4",
                   double_quant: bool = True, compute_dtype: torch.dtype | str = torch.bfloat16, lora_r: int = 16,
                   target_modules: list[str] | None = None, optim: str = "paged_adamw_8bit", batch_size: int = 4,
                   seq_len: int = 512, ckpt: bool = False, label_only_loss: bool = True,
                   label_tokens: int | None = None, lora_dropout: float = 0.0, accum: int = 1,
                   device: str = "cuda", padded: bool = False, packing: bool = False, fused_lora: bool = False,
                   chunked_loss: bool = False, mlp_chunk: int = 0, offload_activations: bool = False,
                   offload_embeddings: bool = False, cublas_workspace_mib: int | None = None,
                   fused_rmsnorm: bool = False) -> dict:
    """Predicted bytes per component (the keys of the engine's `mem` record) + `peak_allocated` and its
    `peak_terms`. `label_tokens`: loss positions per micro-batch (default: all, B x (T-1)); `device`
    decides how paged optimizers resolve ("cpu": unpaged, like the engine); `padded`: batches with padding
    (packed rows too: their block-diagonal mask reaches attention like a padding mask). The switches are
    train.py's of the same names."""
    if peft not in PEFT_MODES:
        raise ValueError(f"peft must be one of {', '.join(PEFT_MODES)}, got {peft!r}")
    if quant not in QUANT_TYPES:
        raise ValueError(f"quant must be nf4 or fp4, got {quant!r}")
    if batch_size < 1 or seq_len < 2 or accum < 1 or lora_r < 1:
        raise ValueError(f"need batch_size >= 1, seq_len >= 2, accum >= 1 and lora_r >= 1; got {batch_size}, "
                         f"{seq_len}, {accum}, {lora_r}")
    dtype = resolve_dtype(compute_dtype)
    E = dtype_bytes(dtype)
    dims = model_dims(model_config)
    model = meta_model(model_config, dtype)
    targets = resolve_targets(model, target_modules) if peft != "full" else []
    params = predict_parameters(model, peft=peft, double_quant=double_quant, lora_r=lora_r, targets=targets)
    params.bytes["params_host"] = 0
    if offload_embeddings:  # engine/features/offload.py: the frozen embedding and untied head leave the device
        embedding, head = model.get_input_embeddings().weight, model.get_output_embeddings()
        moved = embedding.numel() * E + (head.weight.numel() * E if head is not None and head.weight is not embedding else 0)
        params.bytes["params_frozen"] -= moved
        params.bytes["params_host"] = moved
        chunked_loss = True  # the streamed head is the chunked loss's
    optim_name = resolve_optimizer(optim, device)
    optimizer, paged, optimizer_on_cpu = predict_optimizer(params.trainable, optim_name)
    grads = params.bytes["params_trainable"]
    acts = predict_activations(dims, E=E, full=peft == "full", targets=targets, lora_r=lora_r,
                               lora_dropout=lora_dropout, batch_size=batch_size, seq_len=seq_len, ckpt=ckpt,
                               label_only_loss=label_only_loss, label_tokens=label_tokens, padded=padded or packing,
                               device=device, fused_lora=fused_lora, chunked_loss=chunked_loss, mlp_chunk=mlp_chunk,
                               fused_rmsnorm=fused_rmsnorm)
    # --offload-activations: every saved tensor goes to the host; backward brings back the loss's, then one
    # layer input at a time with the next one already on its way.
    on_device = 0 if offload_activations else acts.total
    host = acts.total if offload_activations else 0

    tokens = batch_size * seq_len
    weights = sum(v for k, v in params.bytes.items() if k != "params_host")
    state = optimizer - paged - optimizer_on_cpu
    # Gradients exist from the first backward on when micro-batches accumulate; with one micro-batch
    # they are created during the backward (set_to_none), tiny for LoRA, large for full fine-tuning.
    full_single = peft == "full" and accum == 1
    base = {
        "weights": weights,
        "optimizer state on GPU": state,
        "batches": 3 * tokens * 8 * accum,
        "gradients": 0 if full_single else grads,
    }
    # Backward, phase 1 (loss): every saved tensor + fp32 gradients of the log-probs and logits.
    loss_phase = {"activations": acts.loss_saved if offload_activations else acts.total,
                  "loss gradients": acts.loss_transient}
    # Phase 2 (layers): the loss buffers are gone; one layer's backward temporaries, its recomputed
    # activations with ckpt, a dequantised 4-bit weight; full fine-tuning has the head's gradient by now.
    # With offloading: the layer input in use, the next on its way, and layer 0's (the embedding output),
    # which stays referenced on the device (seen in an allocator history at 131,072 tokens). Throughout a
    # layer's backward the gradient of its output [T, h] is alive. Then three sub-phases, read from allocator
    # histories of the 8B shape (docs/memory-model.md), the largest counts:
    # - the MLP's backward, every saved tensor alive. peft's LoRA path: 3 intermediate-wide gradients and a
    #   hidden-wide one (with the layer output's, the fp32 copy of a hidden-wide gradient). --fused-lora:
    #   down_proj's dx [M, I] with, over one slice of SLICE_ROWS rows, its adapter term in fp32, its cast
    #   and the fp32 copy of g [S, h] (engine/features/fused_lora.py); then, down_proj's input freed, the
    #   three gradients of SiLU(gate) * up.
    #   A sliced MLP also holds its finished slices' input gradients until the last one is made.
    # - the post-attention norm's backward, the MLP's saved tensors freed: LlamaRMSNorm's autograd holds
    #   five fp32 [T, h] temporaries; --fused-rmsnorm its dx and one slice's fp32 terms (GPT-NeoX's
    #   LayerNorm is one fused kernel: no such phase).
    # - attention's backward, the MLP's and the post-attention norm's saved tensors freed (allocator
    #   histories at 196,608 and 352,256 tokens; Llama-like families): o_proj's dx beside the residual
    #   stream's gradient (autograd adds the MLP branch's into it in place), and SDPA's backward (cuDNN's
    #   kernel, the default on H100 and H200): dq, dk, dv and a workspace of two fp32 [T, heads x head_dim]
    #   buffers (measured: 5.52 layer inputs at 131,072 to 352,256 tokens; the flash kernel takes as much).
    from engine.features.fused_lora import SLICE_ROWS

    h, inter = dims.hidden, dims.intermediate
    mlp_rows = min(tokens, batch_size * (mlp_chunk or seq_len))
    if fused_lora:
        slice_rows = min(mlp_rows, SLICE_ROWS)
        mlp_backward = max(2 * mlp_rows * inter * E, mlp_rows * inter * E + slice_rows * (inter * (4 + E) + h * 4))
    else:
        mlp_backward = (mlp_rows * 3 * inter + tokens * h) * E
    mlp_backward += (tokens - mlp_rows) * h * E
    if dims.family == "gpt_neox":
        norm_backward = 0
    elif fused_rmsnorm:
        norm_backward = tokens * h * E + min(tokens, SLICE_ROWS) * h * 3 * 4
    else:
        norm_backward = 5 * tokens * h * 4
    q_w, kv_w = dims.widths
    attention_backward = 0
    if dims.family != "gpt_neox":
        sdpa_backward = tokens * ((q_w + 2 * kv_w) * E + 8 * q_w + 4 * dims.heads)
        attention_backward = tokens * q_w * E + sdpa_backward - (acts.one_layer - acts.attention_saved)
    layer_phase = {
        "activations": 3 * acts.layer_input if offload_activations else acts.total - acts.loss_saved,
        "gradient of the layer output": tokens * h * E,
        "layer backward": max(mlp_backward, norm_backward - acts.mlp_saved, attention_backward),
        "recomputed layer (ckpt)": acts.one_layer if ckpt else 0,
        "dequantised 4-bit weight": params.largest_4bit * E,
        "head and embedding gradients": params.outside_layers_trainable if full_single else 0,
    }
    foreach_temp = sum(n * elem for n, elem in params.trainable) if optim_name == "adamw" else 0
    step_phase = {"gradients": grads - base["gradients"], "AdamW foreach temporary": foreach_temp}
    phases = [loss_phase, layer_phase, step_phase]
    worst = max(phases, key=lambda terms: sum(terms.values()))
    terms = dict(base, **{k: v + (base.get(k) or 0) for k, v in worst.items()})
    if torch.device(device).type == "cuda":
        terms["cuBLAS workspaces"] = CUBLAS_WORKSPACES if cublas_workspace_mib is None else 2 * cublas_workspace_mib << 20
    out = dict(params.bytes)
    out.update(grads=grads, optimizer=optimizer, optimizer_paged=paged, activations=on_device,
               activations_host=host, peak_allocated=sum(terms.values()), peak_terms=terms)
    return out


def model_config_for_spec(spec: str) -> transformers.PretrainedConfig:
    """The transformers config of a --model spec: arch:<preset>, the bundled model, or a local directory."""
    from pathlib import Path

    from models.load import ARCH_PREFIX, BUNDLED_NAME
    from models.presets import preset_config

    if spec.startswith(ARCH_PREFIX):
        return preset_config(spec[len(ARCH_PREFIX):])
    if spec == BUNDLED_NAME:
        from models.bundled import bundled_model_dir

        return transformers.AutoConfig.from_pretrained(bundled_model_dir())
    path = Path(spec).expanduser()
    if (path / "config.json").is_file() and (path / "metrics.jsonl").is_file():
        raise ValueError(f"--model {spec!r} is a train.py run directory: predict with its --model and settings")
    if path.is_dir():
        try:
            return transformers.AutoConfig.from_pretrained(path)
        except (OSError, ValueError) as error:
            raise ValueError(f"--model {spec!r}: not a model directory ({str(error).splitlines()[0][:120]})") from None
    raise ValueError(f"--model {spec!r}: the predictor needs arch:<preset>, {BUNDLED_NAME!r} or a local model "
                     f"directory (it reads only config.json)")


def predict_for_spec(spec: str, **kwargs) -> dict:
    """predict_memory for a --model spec (see model_config_for_spec); kwargs as predict_memory."""
    return predict_memory(model_config_for_spec(spec), **kwargs)


# Longest sequence at which a prediction was checked on the GPU: from 16,384 to 352,256 tokens of the
# Llama-3.1-8B shape (one of them cut to 8 layers), within 5% of eleven measured peaks (docs/memory-model.md).
CHECKED_TOKENS = 352_256


def longest_sequence_that_fits(model_config, budget: int, limit: int = 1 << 24, **kwargs) -> int:
    """Longest sequence (batch 1, every position a label unless `label_tokens` says otherwise) whose
    predicted peak_allocated fits `budget` bytes, to 1,024 tokens (0: not even 1,024)."""
    kwargs = {k: v for k, v in kwargs.items() if k not in ("seq_len", "batch_size", "label_tokens")}
    fits = lambda t: predict_memory(model_config, batch_size=1, seq_len=t, **kwargs)["peak_allocated"] <= budget  # noqa: E731
    step = 1024
    if not fits(step):
        return 0
    low, high = step, 2 * step
    while high <= limit and fits(high):
        low, high = high, high * 2
    if high > limit:
        return low
    while high - low > step:
        mid = (low + high) // 2 // step * step
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low


def largest_batch_that_fits(model_config, budget: int, limit: int = 1 << 16, **kwargs) -> int:
    """Largest micro-batch whose predicted peak_allocated fits `budget` bytes (0: not even 1)."""
    fits = lambda b: predict_memory(model_config, batch_size=b, **kwargs)["peak_allocated"] <= budget  # noqa: E731
    if not fits(1):
        return 0
    low, high = 1, 2
    while high <= limit and fits(high):  # the peak grows with the batch: double, then bisect
        low, high = high, high * 2
    if high > limit:
        return low
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low


# ---- command line --------------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(GiB|MiB|KiB|GB|MB|KB|B)?\s*$", re.IGNORECASE)
_UNITS = {"gib": 1024**3, "mib": 1024**2, "kib": 1024, "gb": 10**9, "mb": 10**6, "kb": 10**3, "b": 1}


def parse_size(text: str) -> int:
    """"24GiB" -> bytes (GiB/MiB/KiB binary, GB/MB/KB decimal, a bare number is GiB)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"cannot read the memory size {text!r}; write e.g. 24GiB, 80GB or 512MiB")
    unit = (match.group(2) or "GiB").lower()
    return int(float(match.group(1)) * _UNITS[unit])


def gib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / GIB:.3f}"


def format_prediction(pred: dict) -> str:
    rows = [(k, pred[k]) for k in MEMORY_COMPONENTS] + [("peak_allocated", pred["peak_allocated"])]
    rows += [(k, pred[k]) for k in ("params_host", "activations_host") if pred.get(k)]  # host memory
    lines = [f"{'component':<28}{'GiB':>10}{'bytes':>18}"]
    lines += [f"{name:<28}{gib(value):>10}{value:>18,}" for name, value in rows]
    lines.append("peak_allocated = " + " + ".join(f"{k} {gib(v)}" for k, v in pred["peak_terms"].items() if v))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.tools.predict", description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--model", default="smollm2-135m-instruct",
                   help="arch:<preset>, the bundled model, or a local directory: only its config is read "
                        "(default: smollm2-135m-instruct)")
    p.add_argument("--peft", choices=PEFT_MODES, default="qlora",
                   help="fine-tuning mode, as train.py --peft (default: qlora)")
    p.add_argument("--quant", choices=QUANT_TYPES, default="nf4", help="4-bit data type for qlora (default: nf4)")
    p.add_argument("--double-quant", action=argparse.BooleanOptionalAction, default=True,
                   help="quantise the 4-bit blocks' absmax constants too (default: on)")
    p.add_argument("--compute-dtype", choices=tuple(COMPUTE_DTYPES), default="bf16",
                   help="dtype of activations and frozen float weights (default: bf16)")
    p.add_argument("--lora-r", type=int, default=16, help="LoRA rank (default: 16)")
    p.add_argument("--lora-dropout", type=float, default=0.0,
                   help="dropout on the LoRA input path: above 0 each adapted layer keeps its dropout output (and mask) "
                        "for backward (default: 0.0)")
    p.add_argument("--target-modules", nargs="+", default=None,
                   help="linear layers to adapt, by module name (default: every linear layer of the decoder)")
    p.add_argument("--optim", choices=OPTIMIZERS, default="paged_adamw_8bit",
                   help="optimizer, as train.py --optim (default: paged_adamw_8bit)")
    p.add_argument("--batch-size", type=int, default=4, help="sequences per micro-batch (default: 4)")
    p.add_argument("--accum", type=int, default=1,
                   help="gradient accumulation steps: gradients stay resident between micro-batches (default: 1)")
    p.add_argument("--seq-len", type=int, default=512, help="tokens per sequence (default: 512)")
    p.add_argument("--ckpt", action=argparse.BooleanOptionalAction, default=False,
                   help="gradient checkpointing: only each decoder layer's input is kept (default: off)")
    p.add_argument("--loss-on-labels-only", action=argparse.BooleanOptionalAction, default=True,
                   help="the LM head and loss only at label positions, as train.py (default: on)")
    p.add_argument("--label-tokens", type=int, default=None,
                   help="loss positions per micro-batch (default: every position)")
    p.add_argument("--device", default="cuda",
                   help="cuda or cpu: how paged optimizers resolve (on cpu: unpaged) (default: cuda)")
    p.add_argument("--budget", default=None,
                   help="GPU memory to fit in, e.g. 24GiB: prints whether the step fits and the largest batch "
                        "size that does (default: no budget)")
    p.add_argument("--max-context", action="store_true",
                   help="with --budget: print the longest sequence (batch 1) that fits, for these switches (default: off)")
    p.add_argument("--packing", action="store_true", help="packed rows, as train.py --packing: their attention mask counts like padding (default: off)")
    p.add_argument("--fused-lora", action="store_true", help="train.py's --fused-lora (default: off)")
    p.add_argument("--chunked-loss", action="store_true", help="train.py's --chunked-loss (default: off)")
    p.add_argument("--mlp-chunk", type=int, default=0, help="train.py's --mlp-chunk TOKENS (default: 0, off)")
    p.add_argument("--fused-rmsnorm", action="store_true", help="train.py's --fused-rmsnorm (default: off)")
    p.add_argument("--offload-activations", action="store_true", help="train.py's --offload-activations (default: off)")
    p.add_argument("--offload-embeddings", action="store_true", help="train.py's --offload-embeddings (default: off)")
    p.add_argument("--cublas-workspace-mib", type=int, default=None, help="train.py's --cublas-workspace-mib (default: PyTorch's size)")
    return p


def main(argv: list[str] | None = None) -> int:
    """The command line: bad input is one line and exit status 2, checked before anything is printed."""
    args = build_parser().parse_args(argv)
    try:
        return predict_command(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def predict_command(args: argparse.Namespace) -> int:
    if args.device != "cpu" and not args.device.startswith("cuda"):
        raise ValueError(f"--device must be cpu or cuda (how paged optimizers resolve), got {args.device!r}")
    if not 0 <= args.lora_dropout < 1:
        raise ValueError(f"--lora-dropout must be in [0, 1), got {args.lora_dropout}")
    budget = parse_size(args.budget) if args.budget else None
    kwargs = dict(peft=args.peft, quant=args.quant, double_quant=args.double_quant, compute_dtype=args.compute_dtype,
                  lora_r=args.lora_r, target_modules=args.target_modules, optim=args.optim, seq_len=args.seq_len,
                  ckpt=args.ckpt, label_only_loss=args.loss_on_labels_only, label_tokens=args.label_tokens,
                  lora_dropout=args.lora_dropout, accum=args.accum, device=args.device, packing=args.packing,
                  fused_lora=args.fused_lora, chunked_loss=args.chunked_loss, mlp_chunk=args.mlp_chunk,
                  offload_activations=args.offload_activations, offload_embeddings=args.offload_embeddings,
                  cublas_workspace_mib=args.cublas_workspace_mib, fused_rmsnorm=args.fused_rmsnorm)
    if args.max_context and budget is None:
        raise ValueError("--max-context needs --budget (e.g. --budget 80GiB)")
    if args.mlp_chunk < 0:
        raise ValueError(f"--mlp-chunk must be >= 0, got {args.mlp_chunk}")
    config = model_config_for_spec(args.model)
    pred = predict_memory(config, batch_size=args.batch_size, **kwargs)
    print(f"{args.model} | {args.peft} | {args.compute_dtype} | batch {args.batch_size} x seq {args.seq_len} | "
          f"ckpt {'on' if args.ckpt else 'off'} | {args.optim}")
    print(format_prediction(pred))
    if budget is not None:
        verdict = "fits" if pred["peak_allocated"] <= budget else "does not fit"
        largest = largest_batch_that_fits(config, budget, **kwargs)
        print(f"{verdict} in {args.budget} = {gib(budget)} GiB (predicted peak {gib(pred['peak_allocated'])} GiB; "
              f"the CUDA context and allocator fragmentation come on top)")
        print(f"largest batch size that fits: {largest}" if largest else "no batch size fits")
    if args.max_context:
        longest = longest_sequence_that_fits(config, budget, **kwargs)
        if not longest:
            print(f"not even 1,024 tokens fit in {args.budget}")
        else:
            at = predict_memory(config, **{**kwargs, "batch_size": 1, "seq_len": longest, "label_tokens": None})
            host = at["activations_host"] + at["params_host"]
            print(f"longest sequence that fits in {args.budget} at batch 1: {longest:,} tokens"
                  + (f" (with {gib(host)} GiB of pinned host memory)" if host else ""))
            if longest > CHECKED_TOKENS:
                print(f"  beyond {CHECKED_TOKENS:,} tokens no GPU measurement has checked the prediction "
                      "(docs/memory-model.md): treat this as an estimate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
