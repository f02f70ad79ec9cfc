"""The loss (HF Trainer: `compute_loss`, which calls the model with `labels=` and
`num_items_in_batch=`).

Two facts shape it:
  * Causal LM: the hidden state at position t predicts token t+1, so labels are shifted by one.
  * Accumulation: HF models return a *mean* over the micro-batch's label tokens. Averaging those
    means over k micro-batches weights a 3-token answer like a 60-token one, so `--batch-size 1
    --accum 4` would not equal `--batch-size 4`. We return the *sum* of token losses; the loop divides
    by the number of label tokens in the whole accumulation window (Trainer's `num_items_in_batch`).

With `label_only` the LM head runs only at positions whose label is not -100: the prompt (schema +
question, most of the tokens) never gets vocabulary-wide logits. How the head and its cross-entropy
are computed is a `head_loss` function chosen at set-up: `plain_head_loss` here, or
engine/features/chunked_loss.py's `chunked_head_loss` (--chunked-loss).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from data.tokenize import IGNORE_INDEX

HeadLoss = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]  # (head, hidden, targets) -> sum


def body_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(decoder stack that returns hidden states, LM head), through a peft wrapper if there is one."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


def plain_head_loss(head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sum of cross-entropies of head(hidden) [K, V] against targets [K] (-100 ignored), the logits
    upcast to fp32 for a stable log-softmax."""
    logits = head(hidden).float()
    return F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum")


def compute_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor], *, label_only: bool,
                 head_loss: HeadLoss = plain_head_loss) -> torch.Tensor:
    """Trainer.compute_loss: the *sum* of next-token cross-entropies over the label tokens of `batch`
    (an fp32 scalar). `label_only`: the LM head runs at label positions only, through `head_loss`;
    otherwise the model's own forward builds logits everywhere, as HF models do."""
    targets = batch["labels"][:, 1:]  # [B, T-1]: the token each position must predict
    # Padded rows come with an attention mask, packed rows with restarting position ids (data/batching.py).
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if batch.get(k) is not None}
    if label_only:
        body, head = body_and_head(model)
        hidden = body(**inputs).last_hidden_state
        is_label = targets != IGNORE_INDEX  # [B, T-1]
        return head_loss(head, hidden[:, :-1][is_label], targets[is_label])  # hidden: [N_labels, H]
    logits = model(**inputs).logits  # [B, T, V]
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(),
                           ignore_index=IGNORE_INDEX, reduction="sum")


def compute_loss_at_positions(model: torch.nn.Module, positions: torch.Tensor, targets: torch.Tensor, *,
                              input_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None,
                              head_loss: HeadLoss = plain_head_loss) -> torch.Tensor:
    """`compute_loss` with fixed shapes, for CUDA graphs (engine/features/cuda_graphs.py): the batch is
    right-padded and runs without an attention mask (causal attention never lets a real token see a
    later pad), and the LM head runs at `positions` [K] (flat indices into the [B * (T-1)] predicting
    positions), whose `targets` [K] are -100 where a slot is unused. Same sum as `compute_loss` on the
    same examples. `inputs_embeds` [B, T, H] replaces `input_ids` when the embedding rows were gathered
    on the host (--offload-embeddings)."""
    body, head = body_and_head(model)
    hidden = body(input_ids=input_ids, inputs_embeds=inputs_embeds).last_hidden_state  # [B, T, H]
    predicting = hidden[:, :-1].reshape(-1, hidden.shape[-1])  # [B * (T-1), H]
    return head_loss(head, predicting.index_select(0, positions), targets)


class CausalLMLoss(torch.nn.Module):
    """The model and its loss as one module whose forward returns the loss sum.

    This is the unit DistributedDataParallel wraps: DDP arms its gradient all-reduce in its own
    forward, so the whole computation (body, head, loss) must run inside one `forward` call."""

    def __init__(self, model: torch.nn.Module, *, label_only: bool, head_loss: HeadLoss = plain_head_loss):
        super().__init__()
        self.model, self.label_only, self.head_loss = model, label_only, head_loss

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None) -> torch.Tensor:
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids,
                 "labels": labels}
        return compute_loss(self.model, batch, label_only=self.label_only, head_loss=self.head_loss)
