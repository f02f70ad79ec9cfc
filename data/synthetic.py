"""Seeded synthetic data with the shape of our text-to-SQL examples, for speed benchmarks.

    --data synthetic:1024      1,024 such sequences (the benchmark's default)

A rendered example of the bundled benchmark is a long prompt (system message, schema DDL, question:
masked with -100) followed by a short answer (the SQL and its end-of-turn token: labelled). Speed and
memory depend on those lengths, not on what the tokens say, so random ids reproduce them without a
tokenizer (the GPU machine may not have one cached):

    prompt  120..260 tokens (inclusive), labels -100
    answer   20..70  tokens (inclusive), labels = the ids; the last answer token is `end_id`

Every length is drawn uniformly, independently per example, from a string-seeded `random.Random`
(hashed with SHA-512, so the data is the same in every process and Python run).
"""

from __future__ import annotations

import random

from data.tokenize import IGNORE_INDEX

SYNTHETIC_PREFIX = "synthetic:"
PROMPT_TOKENS = (120, 260)  # inclusive range of masked prompt tokens per example
ANSWER_TOKENS = (20, 70)  # inclusive range of labelled answer tokens per example (end token included)
FIRST_ORDINARY_ID = 100  # ids below are special tokens in SmolLM2's vocabulary (and harmless elsewhere)


def parse_synthetic_spec(spec: str) -> int | None:
    """"synthetic:<examples>" -> examples; any other data spec -> None; a malformed one -> ValueError."""
    if not spec.startswith(SYNTHETIC_PREFIX):
        return None
    value = spec[len(SYNTHETIC_PREFIX):]
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"--data {spec!r}: expected synthetic:<number of examples>, an integer >= 1 (e.g. synthetic:1024)")
    return int(value)


def synthetic_examples(num_examples: int, *, vocab_size: int, end_id: int, seed: int = 0,
                       prompt_tokens: tuple[int, int] = PROMPT_TOKENS,
                       answer_tokens: tuple[int, int] = ANSWER_TOKENS) -> tuple[list[list[int]], list[list[int]]]:
    """(input_ids, labels) of `num_examples` prompt + answer sequences (see the module docstring)."""
    if num_examples < 1:
        raise ValueError(f"synthetic data needs num_examples >= 1, got {num_examples}")
    if vocab_size <= FIRST_ORDINARY_ID:
        raise ValueError(f"synthetic data needs a vocabulary of more than {FIRST_ORDINARY_ID} ids, got {vocab_size}")
    if not 0 <= end_id < vocab_size:
        raise ValueError(f"end token id {end_id} is outside the vocabulary of {vocab_size}")
    for name, (low, high) in (("prompt", prompt_tokens), ("answer", answer_tokens)):
        if not 1 <= low <= high:
            raise ValueError(f"synthetic {name} length range must satisfy 1 <= low <= high, got {low}..{high}")
    rng = random.Random(f"synthetic-sql:{seed}")
    input_ids, labels = [], []
    for _ in range(num_examples):
        prompt_len, answer_len = rng.randint(*prompt_tokens), rng.randint(*answer_tokens)
        prompt = [rng.randrange(FIRST_ORDINARY_ID, vocab_size) for _ in range(prompt_len)]
        answer = [rng.randrange(FIRST_ORDINARY_ID, vocab_size) for _ in range(answer_len - 1)] + [end_id]
        input_ids.append(prompt + answer)
        labels.append([IGNORE_INDEX] * prompt_len + answer)
    return input_ids, labels
