"""LM head + cross-entropy over vocabulary chunks, recomputed in backward (--chunked-loss).

The plain label-only loss builds the logits of K label positions over the whole vocabulary, upcasts
them to fp32 and keeps fp32 log-probabilities for backward. For Llama-3.2-1B (V = 128,256) and K = 4
answers x 70 tokens = 280 that is 280 x 128,256 x 4 B = 137 MiB per fp32 copy, and backward holds
three such copies at once (the saved log-probabilities, their gradient, the logits' gradient) plus the
bf16 logits' gradient: ~0.5 GiB for a scalar.

Here the vocabulary is walked in chunks of CHUNK_ROWS rows of the head's weight [V, H]:
  forward:  logits_c = hidden @ W_c^T  [K, C] in fp32; a running log-sum-exp over chunks, and the
            target's logit picked from the chunk that holds it; loss = sum over valid rows of
            (logsumexp - target logit). Saved for backward: hidden [K, H] and the log-sum-exp [K].
  backward: the chunk's logits again, p = softmax = exp(logits_c - lse), minus 1 at the target,
            times the incoming gradient; grad_hidden += p @ W_c (fp32 accumulator [K, H]).
Peak extra memory: a few [K, C] fp32 tiles (C = 4,096: 4.4 MiB at K = 280) instead of [K, V] copies.
Cost: the head's matmul runs twice (forward and the recompute): 2 x H x V FLOPs per row of K, 0.5 GFLOP on Llama.

The weight may live in pinned host memory (--offload-embeddings, engine/features/offload.py): each chunk is
then copied to the device just before its matmul (two passes over the whole matrix per micro-batch,
forward and backward). Inside a CUDA graph the copies are recorded like kernels: the pinned source
never moves. The head must be frozen (LoRA/QLoRA): no gradient is computed for W.
"""

from __future__ import annotations

import torch

from data.tokenize import IGNORE_INDEX

CHUNK_ROWS = 4096  # rows of W per chunk: Llama-3.2-1B 16 MiB of bf16 weight, SmolLM2 4.5 MiB


def _weight_chunk(weight: torch.Tensor, start: int, device: torch.device) -> torch.Tensor:
    """Rows start..start+CHUNK_ROWS of W on `device`: a view if W is there, a copy if W is on the host
    (non_blocking: from pinned memory the copy is queued on the stream, the host does not wait)."""
    rows = weight[start:start + CHUNK_ROWS]
    return rows if rows.device == device else rows.to(device, non_blocking=True)


class ChunkedHeadCrossEntropy(torch.autograd.Function):
    """Sum over rows k with targets[k] != -100 of -log softmax(hidden[k] @ W^T)[targets[k]]."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # hidden [K, H] compute dtype; weight [V, H] frozen; targets [K] token ids or -100
        device, rows = hidden.device, hidden.shape[0]
        valid = targets != IGNORE_INDEX
        target_ids = torch.where(valid, targets, 0)
        lse = torch.full((rows,), float("-inf"), dtype=torch.float32, device=device)
        target_logit = torch.zeros(rows, dtype=torch.float32, device=device)
        for start in range(0, weight.shape[0], CHUNK_ROWS):
            logits = (hidden @ _weight_chunk(weight, start, device).T).float()  # [K, C]: as head(hidden).float()
            lse = torch.logaddexp(lse, torch.logsumexp(logits, dim=1))
            in_chunk = (target_ids >= start) & (target_ids < start + logits.shape[1])
            column = torch.where(in_chunk, target_ids - start, 0).unsqueeze(1)  # [K, 1]
            target_logit += torch.where(in_chunk, logits.gather(1, column).squeeze(1), 0.0)
        ctx.save_for_backward(hidden, target_ids, valid, lse)
        ctx.weight = weight  # frozen: nothing can modify it in place before backward
        return torch.where(valid, lse - target_logit, 0.0).sum()

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        hidden, target_ids, valid, lse = ctx.saved_tensors
        weight, device = ctx.weight, hidden.device
        row_scale = (valid.float() * grad_loss).unsqueeze(1)  # [K, 1]: 0 where ignored
        grad_hidden = torch.zeros(hidden.shape, dtype=torch.float32, device=device)  # [K, H]
        for start in range(0, weight.shape[0], CHUNK_ROWS):
            chunk = _weight_chunk(weight, start, device)  # [C, H]
            logits = (hidden @ chunk.T).float()
            grad_logits = torch.exp(logits - lse.unsqueeze(1))  # softmax over the whole vocabulary
            in_chunk = (target_ids >= start) & (target_ids < start + chunk.shape[0])
            column = torch.where(in_chunk, target_ids - start, 0).unsqueeze(1)
            grad_logits.scatter_add_(1, column, -in_chunk.float().unsqueeze(1))  # minus one-hot target
            grad_logits *= row_scale
            # As autograd would: the fp32 gradient is cast to the logits' dtype before the head's matmul.
            grad_hidden += grad_logits.to(hidden.dtype) @ chunk
        return grad_hidden.to(hidden.dtype), None, None


def chunked_head_loss(head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sum of cross-entropies of `head(hidden)` [K, V] against `targets` [K] (-100 ignored), in chunks:
    engine.loss.plain_head_loss's drop-in (a `HeadLoss`), chosen at set-up by --chunked-loss."""
    weight = head.weight
    if getattr(head, "bias", None) is not None or weight.requires_grad:
        raise ValueError("--chunked-loss needs a frozen LM head without bias (LoRA/QLoRA, head not adapted)")
    return ChunkedHeadCrossEntropy.apply(hidden, weight, targets)
