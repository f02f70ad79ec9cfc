"""Random fixed-length token data for memory experiments: the book's `make_dummy_dataset` (seed 003).

    --data dummy:256      64 sequences of 256 random token ids, every position labelled

Memory depends on shapes, not on what the tokens say, so random ids of one fixed length give the
cleanest measurement: no padding, the same number of tokens in every micro-batch, and (since every
position carries a label, as in the book) the largest possible logits/loss buffers. The book draws
input ids and labels independently from [100, 30000); we do the same, capped at the vocabulary.
"""

from __future__ import annotations

import random

DUMMY_PREFIX = "dummy:"
DEFAULT_NUM_EXAMPLES = 64  # the book's dataset_size
BOOK_LOW_ID, BOOK_HIGH_ID = 100, 30000  # the book's np.random.randint(100, 30000, ...)


def parse_dummy_spec(spec: str) -> int | None:
    """"dummy:<seq_len>" -> seq_len; any other data spec -> None; a malformed dummy spec -> ValueError."""
    if not spec.startswith(DUMMY_PREFIX):
        return None
    value = spec[len(DUMMY_PREFIX):]
    if not value.isdigit() or int(value) < 2:
        raise ValueError(f"--data {spec!r}: expected dummy:<sequence length>, an integer >= 2 (e.g. dummy:256)")
    return int(value)


def dummy_examples(seq_len: int, num_examples: int = DEFAULT_NUM_EXAMPLES, vocab_size: int = 49152,
                   seed: int = 0) -> tuple[list[list[int]], list[list[int]]]:
    """(input_ids, labels): `num_examples` lists of `seq_len` random ids each, labels drawn independently
    (every position labelled), reproducible from `seed`."""
    if seq_len < 2:
        raise ValueError(f"dummy data needs seq_len >= 2, got {seq_len}")
    if num_examples < 1:
        raise ValueError(f"dummy data needs num_examples >= 1, got {num_examples}")
    if vocab_size < 2:
        raise ValueError(f"dummy data needs vocab_size >= 2, got {vocab_size}")
    # Ids in the book's range when the vocabulary allows it, else anywhere in the vocabulary (tiny models).
    low, high = (BOOK_LOW_ID, min(BOOK_HIGH_ID, vocab_size)) if vocab_size > BOOK_LOW_ID + 1 else (0, vocab_size)
    rng = random.Random(f"dummy:{seed}")  # string seeds are hashed stably across processes
    draw = lambda: [rng.randrange(low, high) for _ in range(seq_len)]  # noqa: E731
    input_ids = [draw() for _ in range(num_examples)]
    labels = [draw() for _ in range(num_examples)]
    return input_ids, labels
