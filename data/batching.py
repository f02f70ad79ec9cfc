"""Batches: the tokenised training set (TrainData), which examples go together (batch_order), how
they become tensors (collate), and packing several examples into one row (pack_examples)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from data.tokenize import IGNORE_INDEX

MEGA_BATCH_FACTOR = 50  # length grouping sorts within windows of 50 batches: shuffled, yet similar lengths
# Length grouping sorts by length rounded up to 32 tokens, the multiple CUDA graphs pad to: examples of one
# bucket cost the same there, so they are left in random order (more databases per batch, no extra compute).
LENGTH_BUCKET = 32


@dataclass
class TrainData:
    """Tokenised examples as plain lists (fast to index), plus the pad id for collation."""

    input_ids: list[list[int]]
    labels: list[list[int]]
    pad_token_id: int
    position_ids: list[list[int]] | None = None  # packed rows only: positions restart at each example

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]

    def label_tokens(self, i: int) -> int:
        """Targets of example i that enter the loss: labels[1:] (position 0 predicts nothing) not -100."""
        return sum(1 for t in self.labels[i][1:] if t != IGNORE_INDEX)

    def micro_batch(self, indices: list[int], device: torch.device) -> dict[str, torch.Tensor]:
        rows = [{"input_ids": self.input_ids[i], "labels": self.labels[i],
                 **({"position_ids": self.position_ids[i]} if self.position_ids else {})} for i in indices]
        batch = collate(rows, pad_token_id=self.pad_token_id)
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}

    def fold_token_ids(self, vocab_size: int) -> "TrainData":
        """Random-init presets with a vocabulary smaller than the bundled tokenizer's (polyglot-ko: 30,080
        < 49,152) cannot embed every id. Their weights are random, so ids are folded modulo the
        vocabulary: shapes, memory and speed are those of the real model; the text is not."""
        fold = lambda ids: [i % vocab_size if i != IGNORE_INDEX else i for i in ids]  # noqa: E731
        return TrainData([fold(x) for x in self.input_ids], [fold(y) for y in self.labels], self.pad_token_id,
                         self.position_ids)


def collate(examples: list[dict], pad_token_id: int, pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example (rounded up to pad_to_multiple_of): LongTensors [B, T].

    Labels are padded by position, never derived from token ids: with pad == eos (SmolLM2's
    <|im_end|>, Phi-3) `labels[input_ids == pad_id] = -100` would also mask the end-of-turn token
    the model must learn, and it would never learn to stop (seed 002's warning)."""
    if not examples:
        raise ValueError("cannot collate an empty batch")
    lengths = [len(e["input_ids"]) for e in examples]
    for i, e in enumerate(examples):
        if len(e["labels"]) != lengths[i]:
            raise ValueError(f"example {i} has {lengths[i]} input_ids but {len(e['labels'])} labels")
    width = max(lengths)
    if pad_to_multiple_of:
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of

    input_ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    for row, (example, n) in enumerate(zip(examples, lengths)):
        input_ids[row, :n] = torch.as_tensor(example["input_ids"], dtype=torch.long)
        attention_mask[row, :n] = 1
        labels[row, :n] = torch.as_tensor(example["labels"], dtype=torch.long)
    if "position_ids" not in examples[0]:
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
    # Packed rows go without an attention mask: the restarting positions tell transformers where each
    # example begins (it builds a block-diagonal causal mask from them), and right padding needs no
    # mask under causal attention (no real token sees a later pad). The padding is its own segment.
    position_ids = torch.arange(width).repeat(len(examples), 1)
    for row, (example, n) in enumerate(zip(examples, lengths)):
        position_ids[row, :n] = torch.as_tensor(example["position_ids"], dtype=torch.long)
    return {"input_ids": input_ids, "position_ids": position_ids, "labels": labels}


def pack_examples(data: TrainData, max_length: int, *, seed: int) -> TrainData:
    """Concatenate examples into rows of at most `max_length` tokens (TRL's `packing`, seed 002), so a
    batch carries almost no padding. Which examples share a row is fixed once per run: shuffled (seed),
    then first-fit, so rows mix databases and lengths. Per row:
      position_ids  restart at 0 at each example, which is how the model keeps the examples apart;
      labels        each example's own, except its first position, -100: that label would be the target
                    of the previous example's last token, a prediction across the boundary.
    The label-token count (the loss normaliser) is that of the examples alone: an example's first
    label never counts (TrainData.label_tokens skips position 0), packed or not."""
    order = list(range(len(data.input_ids)))
    random.Random(f"pack:{seed}").shuffle(order)
    rows: list[list[int]] = []
    free: list[int] = []  # tokens left in each row
    for i in order:
        n = len(data.input_ids[i])
        if n > max_length:
            raise ValueError(f"example {i} has {n} tokens, more than the packing length {max_length}")
        row = next((r for r, room in enumerate(free) if room >= n), None)
        if row is None:
            rows.append([])
            free.append(max_length)
            row = len(rows) - 1
        rows[row].append(i)
        free[row] -= n
    input_ids, labels, position_ids = [], [], []
    for members in rows:
        input_ids.append([t for i in members for t in data.input_ids[i]])
        labels.append([IGNORE_INDEX if k == 0 else t for i in members for k, t in enumerate(data.labels[i])])
        position_ids.append([k for i in members for k in range(len(data.input_ids[i]))])
    return TrainData(input_ids, labels, data.pad_token_id, position_ids)


def _length_grouped_batches(order: list[int], lengths: list[int], batch_size: int) -> list[list[int]]:
    """HF's LengthGroupedSampler: the shuffled order cut into windows of MEGA_BATCH_FACTOR batches,
    each sorted by length (longest first) and cut into batches; here the sort key is the length
    rounded up to LENGTH_BUCKET tokens, and the sort is stable, so within a bucket the shuffled order
    decides. In text-to-SQL the schema dominates the length, so an exact sort puts one database's
    questions side by side; within a bucket they mix with other databases' (the bundled train split at
    batch 16: 13.8 databases per batch, random order 15.4, an exact sort 13.5)."""
    window = MEGA_BATCH_FACTOR * batch_size
    batches = []
    for w in range(0, len(order), window):
        by_length = sorted(order[w : w + window], key=lambda i: -(-lengths[i] // LENGTH_BUCKET), reverse=True)
        batches += [by_length[i : i + batch_size] for i in range(0, len(by_length), batch_size)]
    return batches


def batch_order(
    lengths: list[int], batch_size: int, *, seed: int, epoch: int, group_by_length: bool
) -> list[list[int]]:
    """Index batches for one epoch, a function of (seed, epoch) alone, so a resumed run recomputes
    the same order and skips exactly the batches it already trained on.

    group_by_length: batches of similar lengths, so less padding (_length_grouped_batches), in
    shuffled order. The batch holding the longest example goes first, so the step with the peak
    memory comes at the start of the run, not hours into it. The one short batch (len % batch_size)
    is kept."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    # A string seed is hashed with SHA-512 by `random`: stable across processes and Python runs.
    rng = random.Random(f"batch_order:{seed}:{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if not group_by_length:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]

    batches = _length_grouped_batches(order, lengths, batch_size)
    rng.shuffle(batches)
    if not batches:
        return []
    longest = max(range(len(batches)), key=lambda b: max(lengths[i] for i in batches[b]))
    batches.insert(0, batches.pop(longest))
    return batches
