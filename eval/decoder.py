"""Fast greedy decoding for evaluation: dense weights, a static KV cache and, on a GPU, a CUDA graph.

Evaluation only reads the model, so the three things that make decoding a QLoRA model slow can go:
  dense weights    each 4-bit matrix is dequantised once, to the very compute-dtype values the 4-bit
                   layer computes with, instead of at every call; q|k|v and gate|up become one matmul
                   each, their LoRA adapters computed beside it in fp32 as peft's LoRA layer does (or
                   fused into it, or folded into W as `PeftModel.merge_and_unload` does: _Linear says
                   what each costs);
  a static cache   K and V live in buffers allocated once for the whole evaluation, (B, kv_heads, S, d)
                   per layer, written in place at a slot index (transformers: `StaticCache`), so no
                   tensor grows and every decode step has the same shapes;
  a CUDA graph     the whole decode step (forward, argmax, stop test, bookkeeping) is captured once and
                   replayed, so one step costs one launch instead of ~28 per layer
                   (transformers: `generate(cache_implementation="static")` + torch.compile).
The forward is written out for the Llama family (Llama, SmolLM2, Qwen2, Mistral without a sliding
window): RMSNorm in fp32, rotary embeddings from the model's own `rotary_emb` (so rope scaling is
the model's), grouped-query attention through SDPA, SwiGLU MLP. `supported(model)` says whether a
model fits; anything else decodes through the plain loop in eval/generate.py.

Rows are left-padded as in eval/generate.py: a prompt's first real token is position 0, padding
slots are never attended to, and each row stops on its own stop token (later tokens are padding).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

SUPPORTED_TYPES = ("llama", "qwen2", "mistral")


# ----------------------------------------------------------------------------- dense weights

def _lora_delta(module: nn.Module) -> torch.Tensor | None:
    """sum over active adapters of scaling * B @ A, in fp32 (None when the layer has no LoRA)."""
    if not hasattr(module, "lora_A") or getattr(module, "merged", False):
        return None
    delta = None
    for name in module.active_adapters:
        if name not in module.lora_A:
            continue
        if getattr(module, "use_dora", {}).get(name, False):
            raise NotImplementedError("DoRA adapters are not merged here")
        a = module.lora_A[name].weight.float()
        b = module.lora_B[name].weight.float()
        term = (b @ a) * module.scaling[name]
        delta = term if delta is None else delta + term
    return delta


def dense_linear(module: nn.Module, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight, bias) of a linear layer as one dense matrix in `dtype`: an nn.Linear, a bitsandbytes
    Linear4bit (dequantised), or a peft LoRA layer over either (the adapter merged in fp32)."""
    weight, bias = _base_weight(module)
    dense = weight.float()
    delta = _lora_delta(module)
    if delta is not None:
        dense = dense + delta.to(dense.device)
    return dense.to(dtype), (bias.to(dtype) if bias is not None else None)


def _decoder_model(model: nn.Module) -> nn.Module:
    """The *ForCausalLM under a PeftModel wrapper (or the model itself)."""
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def supported(model: nn.Module) -> str | None:
    """None when `model` fits the Llama-family forward below, else why not (one line)."""
    inner = _decoder_model(model)
    config = getattr(inner, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_TYPES:
        return f"model type {model_type!r} (the static decoder knows {', '.join(SUPPORTED_TYPES)})"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"activation {config.hidden_act!r}"
    if getattr(config, "use_sliding_window", False) or (model_type == "mistral" and config.sliding_window):
        return "sliding-window attention"
    body = getattr(inner, "model", None)
    if body is None or not hasattr(body, "layers") or not hasattr(body, "rotary_emb"):
        return "no decoder layers / rotary embedding where the Llama family has them"
    for module in inner.modules():
        if getattr(module, "use_dora", None) and any(module.use_dora.values()):
            return "DoRA adapters"
    return None


# ----------------------------------------------------------------------------- the forward

def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # As LlamaRMSNorm, statistics in fp32 and the result rounded to the input dtype before the weight,
    # in one fused kernel on CUDA (the written-out formula is six).
    return weight * F.rms_norm(x, x.shape[-1:], eps=eps)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    # x cos + rotate_half(x) sin, where rotate_half(x) = (-x2, x1) is the roll (x2, x1) with the sign
    # moved into sin: the same products and sums as transformers' apply_rotary_pos_emb, in 4 kernels.
    return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * sin_signed


def _common_prefix_length(prompts: Sequence[Sequence[int]], cap: int) -> int:
    first, length = prompts[0], max(cap, 0)
    for prompt in prompts[1:]:
        length = next((i for i in range(length) if prompt[i] != first[i]), length)
    return length


def _base_weight(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight, bias) of the layer under any LoRA, dequantised if 4-bit, in its own dtype."""
    base = getattr(module, "base_layer", module)
    weight = base.weight
    if getattr(weight, "quant_state", None) is not None:  # bitsandbytes Params4bit
        import bitsandbytes as bnb

        dense = bnb.functional.dequantize_4bit(weight.data, weight.quant_state)
    else:
        dense = weight.detach()
    return dense, (base.bias.detach() if getattr(base, "bias", None) is not None else None)


def _lora_factors(module: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    """[(A, B, scaling)] of the active, unmerged adapters of a peft LoRA layer ([] otherwise)."""
    if not hasattr(module, "lora_A") or getattr(module, "merged", False):
        return []
    return [(module.lora_A[n].weight.detach(), module.lora_B[n].weight.detach(), float(module.scaling[n]))
            for n in module.active_adapters if n in module.lora_A]


# How each static decoder name of eval.generate's --decoder computes unmerged adapters (_Linear).
LORA_OF_DECODER = {"static": "fp32", "static-split": "split", "static-fused": "fused"}
# Rows of a call above which lora="split" leaves the fp32 path: a prefill's (rows x out) fp32 product
# costs more memory traffic than the base matmul's output itself; a decode step's is tiny, and there
# the fp32 path's four kernels are fewer than the split path's dozen small ones.
SPLIT_MIN_ROWS = 1024


def _split(t: torch.Tensor, parts: int, dtype: torch.dtype = torch.bfloat16) -> list[torch.Tensor]:
    """fp32 t as a sum of `parts` bf16 tensors, largest first: with 8 significant bits each, three carry
    all of fp32's 24 (bf16 has fp32's exponent range; fp16's would flush the small parts)."""
    out, rest = [t.to(dtype)], t.float()
    for _ in range(parts - 1):
        rest = rest - out[-1].float()
        out.append(rest.to(dtype))
    return out


def _mm_fp32(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x @ w.T with bf16 operands and the result kept in fp32 (cuBLAS accumulates in fp32 either way;
    a CPU has no such kernel, and there the fp32 product of the same bf16 values is the same sum)."""
    if x.is_cuda:
        return torch.mm(x, w.t(), out_dtype=torch.float32)
    return torch.mm(x.float(), w.float().t())


class _Linear:
    """Linear layers side by side (q|k|v, gate|up) as one dense matmul of the dequantised weights, with
    their LoRA adapters beside it, x W^T + s (x A^T) B^T, in one of four ways:
      lora="fp32"   as peft's LoRA layer (`lora.Linear`, what peft wraps our hand-quantised layers in)
                    computes it: x and the adapters in fp32, their product added to the base output in
                    fp32 and the sum rounded once (three small kernels more). peft's `lora.bnb.Linear4bit`,
                    used for models loaded with transformers' BitsAndBytesConfig, rounds the adapter
                    output to bf16 before the add instead;
      lora="split"  "fp32" to fp32's precision from bf16 matmuls, where its M x N fp32 product would
                    be large (calls of more than SPLIT_MIN_ROWS rows: a prefill; "fp32" elsewhere and in
                    fp16): A as three bf16 parts (24 significant bits, all of fp32's), so x A^T is one
                    bf16 matmul with an fp32 result and no product rounded; x A^T and s B as three parts
                    each; one addmm of the six part products above 2^-24 into the base output, which
                    adds y in fp32 and rounds once, as peft does;
      lora="fused"  in two kernels: the A rows ride under W in the same matmul, and the B term is added
                    into the output in place (y += (x A^T)(s B)^T), all in the compute dtype;
      merge=True    folded into W (one matmul), as `PeftModel.merge_and_unload` does. In bf16 the small
                    delta s B A is then rounded into W, which changed 14 of 328 greedy answers on the
                    bundled held-out split (EX 0.848 -> 0.835, H200, 2026-12-02).
    A decode step is a few hundred small kernels, so kernels, not FLOPs, set its time."""

    def __init__(self, modules: Sequence[nn.Module], dtype: torch.dtype, merge: bool = False,
                 lora: str = "fp32"):
        weights, biases, blocks = [], [], []  # blocks: (row offset, A, B, scaling)
        offset = 0
        for module in modules:
            weight, bias = _base_weight(module)
            factors = _lora_factors(module)
            if merge and factors:
                weight, factors = dense_linear(module, torch.float32)[0], []
            weights.append(weight.to(dtype))
            biases.append(bias if bias is not None else torch.zeros(weight.shape[0], device=weight.device))
            blocks += [(offset, a, b, scale) for a, b, scale in factors]
            offset += weight.shape[0]
        self.out_features = offset
        has_bias = any(getattr(getattr(m, "base_layer", m), "bias", None) is not None for m in modules)
        self.lora_a = self.lora_b = self.split = None
        self.fused = lora == "fused"
        if blocks:
            a = torch.cat([a for _, a, _, _ in blocks]).float()
            # B with its scaling folded in (exact for the usual power-of-two alpha / r), one block per
            # adapter: rows of its layer, columns of its rank.
            b_full = torch.zeros(offset, a.shape[0], device=a.device, dtype=torch.float32)
            column = 0
            for row, a_block, b, scale in blocks:
                b_full[row:row + b.shape[0], column:column + a_block.shape[0]] = b.float() * scale
                column += a_block.shape[0]
            if self.fused:
                weights.append(a.to(dtype))
                biases.append(torch.zeros(a.shape[0], device=a.device))
                self.lora_b = b_full.to(dtype)
            else:
                self.lora_a, self.lora_b = a, b_full
                if lora == "split" and dtype == torch.bfloat16:  # fp16 and fp32 take the fp32 path
                    b1, b2, b3 = _split(b_full, 3)
                    self.split = (torch.cat(_split(a, 3)), torch.cat((b1, b2, b1, b3, b2, b1), 1))
        self.weight = torch.cat(weights)
        self.bias = torch.cat(biases).to(dtype) if has_bias else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias)
        if self.lora_b is None:
            return y
        if self.split is not None and x.numel() > SPLIT_MIN_ROWS * x.shape[-1]:
            a_parts, b_parts = self.split
            rank = a_parts.shape[0] // 3
            xa = _mm_fp32(x.reshape(-1, x.shape[-1]), a_parts).view(-1, 3, rank).sum(1)  # x A^T, fp32
            x1, x2, x3 = _split(xa, 3)
            # x1 b1 + x1 b2 + x2 b1 + x1 b3 + x2 b2 + x3 b1: every term above 2^-24 of the product
            y.view(-1, y.shape[-1]).addmm_(torch.cat((x1, x1, x2, x1, x2, x3), 1), b_parts.t())
            return y
        if not self.fused:  # peft's order: the adapters in fp32, added to the base output in fp32, rounded once
            delta = F.linear(F.linear(x.float(), self.lora_a), self.lora_b)
            return y.add_(delta)  # bf16 += fp32 computes in fp32 and rounds once, in one kernel
        flat = y.view(-1, y.shape[-1])
        base = flat[:, :self.out_features]
        base.addmm_(flat[:, self.out_features:], self.lora_b.t())  # a view: cuBLAS writes y's rows in place
        return base.unflatten(0, x.shape[:-1])


class _Layer:
    def __init__(self, layer: nn.Module, dtype: torch.dtype, merge: bool, lora: str):
        attn, mlp = layer.self_attn, layer.mlp
        # q, k and v in one matmul, gate and up in one: fewer, larger kernels per step.
        self.qkv = _Linear([attn.q_proj, attn.k_proj, attn.v_proj], dtype, merge, lora)
        self.o = _Linear([attn.o_proj], dtype, merge, lora)
        self.gate_up = _Linear([mlp.gate_proj, mlp.up_proj], dtype, merge, lora)
        self.down = _Linear([mlp.down_proj], dtype, merge, lora)
        self.norm1 = layer.input_layernorm.weight.detach().to(dtype)
        self.norm2 = layer.post_attention_layernorm.weight.detach().to(dtype)
        self.eps = layer.input_layernorm.variance_epsilon


class StaticDecoder:
    """Greedy decoding of batches of up to `batch_size` prompts, prompt + new tokens <= `max_len`.

    Built once per evaluation from the model as it is (a PeftModel over 4-bit weights included); the
    model itself is not changed. `graphs` captures the decode step in a CUDA graph (CUDA only);
    `merge` folds LoRA into the weights (default: in fp32 only), `lora` says how unmerged adapters are
    computed ("split", the default: as peft, a prefill's from bf16 matmuls; "fp32" as peft; "fused" into
    the base matmul); _Linear says what each costs."""

    def __init__(self, model: nn.Module, *, batch_size: int, max_len: int, pad_token_id: int,
                 stop_ids: Sequence[int], graphs: bool | None = None, merge: bool | None = None,
                 lora: str = "split"):
        if lora not in LORA_OF_DECODER.values():
            raise ValueError(f"lora must be one of {sorted(LORA_OF_DECODER.values())}, not {lora!r}")
        why = supported(model)
        if why is not None:
            raise ValueError(f"the static decoder does not support this model: {why}")
        inner = _decoder_model(model)
        config, body = inner.config, inner.model
        device = body.embed_tokens.weight.device
        dtype = body.embed_tokens.weight.dtype  # the compute dtype (4-bit layers compute in it too)
        self.device, self.dtype = device, dtype
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.intermediate = config.intermediate_size
        # Cache length a multiple of 16: SDPA's memory-efficient kernel wants the mask rows aligned
        # to 16 elements and would pad (copy) the mask in every layer otherwise.
        max_len = -(-max_len // 16) * 16
        self.batch_size, self.max_len = batch_size, max_len
        with torch.no_grad():
            self.embed = body.embed_tokens.weight.detach().to(dtype)
            # fp32 keeps a merged delta to 1e-7 of W, and one matmul is cheaper than three on a CPU
            merge = dtype == torch.float32 if merge is None else merge
            self.layers = [_Layer(layer, dtype, merge, lora) for layer in body.layers]
            self.norm = body.norm.weight.detach().to(dtype)
            self.norm_eps = body.norm.variance_epsilon
            head = inner.get_output_embeddings()
            tied = head is None or head.weight is body.embed_tokens.weight
            self.lm_head = self.embed if tied else dense_linear(head, dtype)[0]
            # cos/sin for every position once, from the model's own rotary module (its rope scaling).
            positions = torch.arange(max_len, device=device)[None]
            cos, sin = body.rotary_emb(self.embed[:1][None], positions)
            half = self.head_dim // 2
            self.cos = cos[0].to(dtype)  # (S, d)
            self.sin = torch.cat((-sin[0, :, :half], sin[0, :, half:]), dim=-1).to(dtype)  # signed: see _rotate
        shape = (batch_size, self.kv_heads, max_len, self.head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in self.layers]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in self.layers]
        self.slots = torch.arange(max_len, device=device)
        self.graphs = device.type == "cuda" if graphs is None else graphs
        self._graph: torch.cuda.CUDAGraph | None = None
        b = batch_size
        self.valid = torch.zeros((b, max_len), dtype=torch.bool, device=device)  # slots to attend to
        self.finished = torch.zeros(b, dtype=torch.bool, device=device)
        self.out = torch.full((b, max_len), pad_token_id, dtype=torch.long, device=device)
        self.ids = torch.zeros((b, 1), dtype=torch.long, device=device)  # the token fed next
        self.pos = torch.zeros((b, 1), dtype=torch.long, device=device)  # its position
        self.slot = torch.zeros(1, dtype=torch.long, device=device)  # its cache slot
        self.count = torch.zeros(1, dtype=torch.long, device=device)  # tokens generated so far
        self.pad_token_id, self.stop_ids = pad_token_id, list(stop_ids)
        self.pad = torch.tensor(pad_token_id, device=device)
        self.stop = torch.tensor(self.stop_ids or [-1], dtype=torch.long, device=device)

    # ---- one forward over T new tokens per row, written at cache slots `slot` .. `slot`+T-1
    def _forward(self, ids: torch.Tensor, positions: torch.Tensor, slot: torch.Tensor,
                 allowed: torch.Tensor, rows: int | None = None) -> torch.Tensor:
        """Logits (B, vocab) in fp32 of each row's last token. allowed: (B, 1, T, S) attention mask;
        rows: use the first `rows` cache rows only (the shared prefix is computed in row 0)."""
        batch, width = ids.shape
        x = F.embedding(ids, self.embed)
        cos, sin = self.cos[positions][:, :, None], self.sin[positions][:, :, None]  # (B, T, 1, d)
        slots = slot + torch.arange(width, device=ids.device)
        q_size, kv_size = self.heads * self.head_dim, self.kv_heads * self.head_dim
        group = self.heads // self.kv_heads
        # The mask as SDPA's additive bias, built once for all layers (a boolean mask is converted in
        # every call); its rows (g, T) g-major, as the query rows below.
        mask = allowed.repeat(1, 1, group, 1) if group > 1 else allowed
        bias = torch.zeros(mask.shape, dtype=self.dtype, device=ids.device).masked_fill_(~mask, float("-inf"))
        for layer, keys, values in zip(self.layers, self.keys, self.values):
            keys, values = keys[:rows], values[:rows]  # views: index_copy_ writes the cache itself
            h = _rms_norm(x, layer.norm1, layer.eps)
            qkv = layer.qkv(h)
            # q and k rotated together, in (B, T, heads, d) layout: one set of kernels for both.
            qk = _rotate(qkv[..., :q_size + kv_size].view(batch, width, self.heads + self.kv_heads,
                                                            self.head_dim), cos, sin)
            v = qkv[..., q_size + kv_size:].view(batch, width, self.kv_heads, self.head_dim)
            keys.index_copy_(2, slots, qk[:, :, self.heads:].transpose(1, 2))
            values.index_copy_(2, slots, v.transpose(1, 2))
            # Grouped-query attention without copying K/V per query head: the g query heads that
            # share a KV head become g*T query rows of that head (SDPA's enable_gqa falls back to the
            # math kernel with a mask, which expands K and V g times at every step).
            q = qk[:, :, :self.heads].view(batch, width, self.kv_heads, group, self.head_dim)
            q = q.permute(0, 2, 3, 1, 4).reshape(batch, self.kv_heads, group * width, self.head_dim)
            a = F.scaled_dot_product_attention(q, keys, values, attn_mask=bias)
            a = a.view(batch, self.heads, width, self.head_dim)
            x = x + layer.o(a.transpose(1, 2).reshape(batch, width, q_size))
            h = _rms_norm(x, layer.norm2, layer.eps)
            gate_up = layer.gate_up(h)
            x = x + layer.down(F.silu(gate_up[..., :self.intermediate]) * gate_up[..., self.intermediate:])
        x = _rms_norm(x[:, -1], self.norm, self.norm_eps)
        return F.linear(x, self.lm_head).float()

    # ---- the decode step, on static buffers so that it can be captured
    def _step(self) -> None:
        self.valid.index_fill_(1, self.slot, True)  # the new token sees itself
        logits = self._forward(self.ids, self.pos, self.slot, self.valid[:, None, None, :])
        nxt = torch.where(self.finished, self.pad, logits.argmax(-1))
        self.out.index_copy_(1, self.count, nxt[:, None])
        self.finished |= torch.isin(nxt, self.stop)
        self.ids.copy_(nxt[:, None])
        self.pos += 1
        self.slot += 1
        self.count += 1

    def _replay(self) -> None:
        if not self.graphs:
            return self._step()
        if self._graph is None:  # capture once, after warm-up on a side stream (CUDA's rule)
            saved = [t.clone() for t in self._state()]
            stream = torch.cuda.Stream(device=self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                for _ in range(2):
                    self._step()
            torch.cuda.current_stream(self.device).wait_stream(stream)
            for t, s in zip(self._state(), saved):
                t.copy_(s)
            self._graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self._graph):
                self._step()
            for t, s in zip(self._state(), saved):  # capture ran the step once: undo it
                t.copy_(s)
        self._graph.replay()

    def _state(self) -> list[torch.Tensor]:
        # Everything _step writes except the cache, whose overwritten slots are rewritten anyway.
        return [self.valid, self.finished, self.out, self.ids, self.pos, self.slot, self.count]

    def decode(self, prompts: Sequence[Sequence[int]], *, max_new_tokens: int,
               on_finished: Callable[[int], None] | None = None) -> list[list[int]]:
        """Greedy continuations of one batch (call under torch.inference_mode()); each ends at and
        includes its first stop token. on_finished(n) is told how many more rows have stopped."""
        rows = len(prompts)
        longest = max(len(p) for p in prompts)
        if rows > self.batch_size or longest + max_new_tokens > self.max_len:
            raise ValueError(f"batch {rows}x{longest}+{max_new_tokens} exceeds the decoder's "
                             f"{self.batch_size}x{self.max_len}")
        # A short batch is filled with copies of its first prompt: the captured shapes never change.
        filled = list(prompts) + [prompts[0]] * (self.batch_size - rows)
        # The prompts' common prefix (system prompt, instruction, often the whole schema) is computed
        # once and its keys/values copied to every row; each row keeps at least one token of its own.
        shared = _common_prefix_length(filled, cap=min(len(p) for p in filled) - 1)
        width = max(len(p) for p in filled) - shared
        ids = torch.full((self.batch_size, width), self.pad_token_id, dtype=torch.long)
        real = torch.zeros((self.batch_size, width), dtype=torch.bool)
        for row, prompt in enumerate(filled):  # suffixes left-padded to end at slot shared+width-1
            ids[row, width - len(prompt) + shared:] = torch.tensor(list(prompt[shared:]), dtype=torch.long)
            real[row, width - len(prompt) + shared:] = True
        ids, real = ids.to(self.device), real.to(self.device)
        positions = shared + (real.long().cumsum(-1) - 1).clamp(min=0)

        self.valid.zero_()
        if shared:
            prefix = torch.tensor([list(filled[0][:shared])], dtype=torch.long, device=self.device)
            causal = self.slots[None, :] <= self.slots[:shared, None]  # (P, S)
            self._forward(prefix, self.slots[None, :shared], self.slots[:1], causal[None, None], rows=1)
            for keys, values in zip(self.keys, self.values):
                keys[1:, :, :shared] = keys[:1, :, :shared]
                values[1:, :, :shared] = values[:1, :, :shared]
            self.valid[:, :shared] = True
        self.valid[:, shared:shared + width] = real
        # Suffix prefill: causal over real tokens; a padding position attends to itself only (never
        # to nothing, which would give NaN that later layers carry into the cache).
        here = self.slots[shared:shared + width, None]  # (T, 1): the slot of each suffix column
        allowed = (self.valid[:, None, :] & (self.slots[None, :] <= here)[None]) | (self.slots[None, :] == here)[None]
        slot0 = self.slots[shared:shared + 1]
        logits = self._forward(ids, positions, slot0, allowed[:, None])
        first = logits.argmax(-1)
        self.out.fill_(self.pad_token_id)
        self.out[:, 0] = first
        self.finished.copy_(torch.isin(first, self.stop))
        self.finished[rows:] = True  # filler rows never hold the batch back
        self.ids.copy_(first[:, None])
        self.pos.copy_(positions[:, -1:] + 1)
        self.slot.fill_(shared + width)
        self.count.fill_(1)

        done = int(self.finished[:rows].sum())
        if on_finished is not None and done:
            on_finished(done)
        steps = 1
        while steps < max_new_tokens:
            # Check the stop condition every few steps: each check waits for the GPU.
            burst = min(8, max_new_tokens - steps)
            for _ in range(burst):
                self._replay()
            steps += burst
            now = int(self.finished[:rows].sum())
            if on_finished is not None and now > done:
                on_finished(now - done)
            done = now
            if done == rows:
                break
        if on_finished is not None and done < rows:
            on_finished(rows - done)  # cut at max_new_tokens

        stop = set(self.stop_ids)
        results = []
        for row in self.out[:rows, :steps].tolist():
            cut = next((i for i, t in enumerate(row) if t in stop), None)
            results.append(row if cut is None else row[: cut + 1])
        return results
