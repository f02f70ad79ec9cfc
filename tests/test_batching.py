"""collate: padding by position (pad == eos must not mask the learned end token); batch_order:
deterministic per (seed, epoch), a permutation, and length grouping that cuts padding while
batches of the bundled text-to-SQL data still span many databases."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch

from data.batching import MEGA_BATCH_FACTOR, batch_order, collate
from data.prompts import sql_messages
from data.tokenize import IGNORE_INDEX, tokenize_conversation
from models.bundled import bundled_model_dir


def padded_tokens(batches: list[list[int]], lengths: list[int]) -> int:
    return sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in batches)


def test_collate_shapes_and_pad_positions():
    examples = [
        {"input_ids": [5, 6, 7], "labels": [IGNORE_INDEX, 6, 7]},
        {"input_ids": [8, 9, 10, 11, 12], "labels": [IGNORE_INDEX, IGNORE_INDEX, 10, 11, 12]},
    ]
    batch = collate(examples, pad_token_id=0)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert all(t.dtype == torch.long and t.shape == (2, 5) for t in batch.values())
    assert batch["input_ids"].tolist() == [[5, 6, 7, 0, 0], [8, 9, 10, 11, 12]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 7, IGNORE_INDEX, IGNORE_INDEX],
                                        [IGNORE_INDEX, IGNORE_INDEX, 10, 11, 12]]
    assert collate(examples, pad_token_id=0, pad_to_multiple_of=8)["input_ids"].shape == (2, 8)
    assert collate(examples, pad_token_id=0, pad_to_multiple_of=5)["input_ids"].shape == (2, 5)


def test_collate_refuses_bad_input():
    with pytest.raises(ValueError, match="empty batch"):
        collate([], pad_token_id=0)
    with pytest.raises(ValueError, match="example 0 has 2 input_ids but 1 labels"):
        collate([{"input_ids": [1, 2], "labels": [2]}], pad_token_id=0)


def test_end_of_turn_label_survives_when_pad_is_eos():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(bundled_model_dir())
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == 2  # SmolLM2: <|im_end|> is both
    answers = ["SELECT count(*) FROM singer", "SELECT name FROM singer WHERE birth_year > 1990 ORDER BY name"]
    examples = []
    for answer in answers:
        input_ids, labels = tokenize_conversation(sql_messages("Question?", None, answer), tokenizer)
        examples.append({"input_ids": input_ids, "labels": labels})
    batch = collate(examples, pad_token_id=tokenizer.pad_token_id)
    short, width = len(examples[0]["input_ids"]), batch["input_ids"].shape[1]
    assert width == len(examples[1]["input_ids"]) > short
    # The short row: padded with id 2 after its own tokens; the pads are not learned...
    assert batch["input_ids"][0, short:].eq(2).all() and batch["labels"][0, short:].eq(IGNORE_INDEX).all()
    # ...but its <|im_end|> (also id 2, second to last before the template's newline) still is.
    for row, example in enumerate(examples):
        n = len(example["input_ids"])
        assert batch["labels"][row, n - 2].item() == batch["input_ids"][row, n - 2].item() == 2
        assert batch["labels"][row, :n].tolist() == example["labels"]
    # Masking by token id instead would have lost both learned end tokens.
    learned_ends = (batch["input_ids"] == 2) & (batch["labels"] == 2)
    assert learned_ends.sum().item() == 2


def test_batch_order_is_a_deterministic_permutation_per_seed_and_epoch():
    lengths = [random.Random(0).randint(20, 400) for _ in range(103)]
    for group in (False, True):
        order = batch_order(lengths, 8, seed=1, epoch=0, group_by_length=group)
        assert order == batch_order(lengths, 8, seed=1, epoch=0, group_by_length=group)
        assert order != batch_order(lengths, 8, seed=1, epoch=1, group_by_length=group)
        assert order != batch_order(lengths, 8, seed=2, epoch=0, group_by_length=group)
        assert sorted(i for batch in order for i in batch) == list(range(103))
        # 103 = 12 * 8 + 7: twelve full batches and the short one, kept.
        assert sorted(len(b) for b in order) == [7] + [8] * 12
    assert batch_order([], 4, seed=0, epoch=0, group_by_length=True) == []
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        batch_order(lengths, 0, seed=0, epoch=0, group_by_length=False)


def exact_sorted_windows(lengths: list[int], batch_size: int, seed: int) -> list[list[int]]:
    """The previous grouping: the same shuffled windows, sorted by exact length."""
    rng = random.Random(f"batch_order:{seed}:0")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = MEGA_BATCH_FACTOR * batch_size
    batches = []
    for w in range(0, len(order), window):
        by_length = sorted(order[w:w + window], key=lambda i: lengths[i], reverse=True)
        batches += [by_length[i:i + batch_size] for i in range(0, len(by_length), batch_size)]
    return batches


def padded_to_bucket(batches: list[list[int]], lengths: list[int]) -> int:
    """Pad tokens when every batch is padded to a multiple of 32 (as CUDA graphs pad it)."""
    return sum(len(b) * -(-max(lengths[i] for i in b) // 32) * 32 - sum(lengths[i] for i in b) for b in batches)


def test_length_grouping_cuts_padding_and_starts_with_the_longest_batch():
    rng = random.Random(0)
    lengths = [rng.randint(60, 400) for _ in range(2000)]
    plain = batch_order(lengths, 8, seed=3, epoch=0, group_by_length=False)
    grouped = batch_order(lengths, 8, seed=3, epoch=0, group_by_length=True)
    plain_pad, grouped_pad = padded_tokens(plain, lengths), padded_tokens(grouped, lengths)
    # Random batches of 8 lengths uniform on [60, 400] pad to ~362 (the expected maximum) for a
    # mean of 230: ~264k pad tokens for 2000 examples (270,875 here). Sorting windows of 400 by
    # length rounded up to 32 leaves rows of a batch within one or two 32-token buckets (28,539).
    assert (plain_pad, grouped_pad) == (270_875, 28_539)
    assert all(max(lengths[i] for i in b) - min(lengths[i] for i in b) < 64 for b in grouped)
    # Padded to the multiple of 32 CUDA graphs use, the buckets cost exactly what an exact sort costs.
    assert padded_to_bucket(grouped, lengths) == padded_to_bucket(exact_sorted_windows(lengths, 8, 3), lengths)
    assert max(lengths) in [lengths[i] for i in grouped[0]]
    # Grouped batches are still shuffled: not sorted by length across the epoch.
    widths = [max(lengths[i] for i in b) for b in grouped[1:]]
    assert widths != sorted(widths) and widths != sorted(widths, reverse=True)


def test_length_grouped_batches_of_the_bundled_data_span_many_databases():
    """In text-to-SQL the schema dominates the length, so length groups tend to be database groups:
    on every 4th bundled training example at batch 16, grouped batches still span ~14 databases
    (random order: ~15) while padding drops to a seventh of random order's."""
    from transformers import AutoTokenizer

    from data.formats import load_examples

    tokenizer = AutoTokenizer.from_pretrained(bundled_model_dir())
    examples = load_examples("bundled", "train")
    picked = range(0, len(examples), 4)
    rows = examples.select(picked)
    lengths = [len(tokenize_conversation(m, tokenizer)[0]) for m in rows["messages"]]
    db_ids = rows["db_id"]
    assert (len(lengths), sum(lengths)) == (2200, 834_993)

    def spread(batches: list[list[int]]) -> tuple[float, int]:
        full = [b for b in batches if len(b) == 16]
        return (sum(len({db_ids[i] for i in b}) for b in full) / len(full),
                max(max(Counter(db_ids[i] for i in b).values()) for b in full))

    plain = batch_order(lengths, 16, seed=0, epoch=0, group_by_length=False)
    grouped = batch_order(lengths, 16, seed=0, epoch=0, group_by_length=True)
    exact = exact_sorted_windows(lengths, 16, 0)
    assert (padded_tokens(plain, lengths), padded_tokens(grouped, lengths)) == (270_247, 38_223)
    (plain_dbs, plain_top), (grouped_dbs, grouped_top) = spread(plain), spread(grouped)
    assert round(plain_dbs, 2) == 15.39 and round(grouped_dbs, 2) == 13.82 > round(spread(exact)[0], 2) == 13.45
    assert grouped_top <= 7  # never more than 7 of a batch's 16 questions on one database
