"""Clean/corrupted pairs for activation patching, each with the metric it is scored by.

A pair is two token batches of the same shape that differ where the behaviour
under study gets its information: patching activations of the clean run into
the corrupted run shows which activations carry it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InductionError
from ..probes.tokens import DEFAULT_HIGH, DEFAULT_LOW, repeated_tokens
from ..scores.losses import repeated_half_slice
from .metrics import CausalMetric, Loss, MetricFn, as_metric, make_metric

DEFAULT_CLEAN_TEXT = "The cat sat on the mat. The cat sat on the"
DEFAULT_CORRUPTED_TEXT = "The cat sat on the rug. The cat sat on the"


@dataclass
class Pair:
    """A clean/corrupted pair and its metric.

    Attributes:
        clean: ``[batch, pos]`` token ids.
        corrupted: ``[batch, pos]`` token ids.
        metric: What patching tries to recover (a plain callable ``(logits, tokens) -> [batch]`` too:
            :func:`~induction_nnsight.causal.metrics.as_metric` wraps it where the pair is run).
        description: One line for titles and results (empty for a pair built by hand).
        labels: ``[pos]`` token strings for chart axes (None for random tokens).
    """

    clean: torch.Tensor
    corrupted: torch.Tensor
    metric: CausalMetric | MetricFn
    description: str = ""
    labels: list[str] | None = None


# repeated_tokens' arguments on purpose: the clean rows are its rows.
def repeated_pair(
    batch: int,
    seq_len: int,
    *,
    seed: int = 0,
    low: int = DEFAULT_LOW,
    high: int = DEFAULT_HIGH,
    bos_token_id: int | None = None,
    vocab_size: int | None = None,
) -> Pair:
    """Repeated random tokens and the same rows with the repeat broken.

    Clean rows are ``[bos] A A``. Corrupted rows are ``[bos] A' A``: the first
    copy is replaced by other random tokens (each differs from the clean token at
    its position), so the corrupted second half repeats nothing, while both rows
    predict the same second-half tokens. The metric is the loss on that second
    half (lower is better).

    Returns:
        A :class:`Pair` of ``[batch, bos + 2 * seq_len]`` rows.
    """
    if seq_len < 2:
        raise InductionError(f"seq_len must be at least 2 for a repeated pair, got {seq_len}")
    clean = repeated_tokens(
        batch, seq_len, seed=seed, low=low, high=high, bos_token_id=bos_token_id, vocab_size=vocab_size
    )
    b = int(bos_token_id is not None)
    first = clean[:, b : b + seq_len]
    generator = torch.Generator().manual_seed(seed + 1_000_003)
    shift = torch.randint(1, max(2, high - low), first.shape, generator=generator)
    corrupted = clean.clone()
    corrupted[:, b : b + seq_len] = low + (first - low + shift) % (high - low)
    metric = Loss(loss_positions=repeated_half_slice(seq_len, b == 1))
    return Pair(clean, corrupted, metric, f"{batch} x repeated {seq_len} random tokens, first copy corrupted")


def _single_token(tokenizer, text: str, what: str) -> int:
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        raise InductionError(f"{what} {text!r} is {len(ids)} tokens, not one: pass a single-token {what}")
    return ids[0]


def _induction_guess(tokenizer, ids: list[int], start: int) -> int | None:
    """The token that followed the last token's latest earlier occurrence (None when it has none).

    ``"Tom"`` and ``" Tom"`` count as the same word.
    """
    last = ids[-1]
    earlier = [i for i in range(start, len(ids) - 1) if ids[i] == last]
    if not earlier:
        word = tokenizer.decode([last]).strip()
        earlier = [i for i in range(start, len(ids) - 1) if tokenizer.decode([ids[i]]).strip() == word]
    return ids[earlier[-1] + 1] if earlier else None


def text_pair(
    tokenizer,
    clean: str = DEFAULT_CLEAN_TEXT,
    corrupted: str = DEFAULT_CORRUPTED_TEXT,
    *,
    correct: str | None = None,
    wrong: str | None = None,
    metric: str | CausalMetric | MetricFn | None = None,
    bos_token_id: int | None = None,
) -> Pair:
    """A pair of texts of equal token length, scored at the last position.

    Args:
        tokenizer: The model's tokenizer.
        clean: Clean text, e.g. ``"The cat sat on the mat. The cat sat on the"``
            or ``"Tom went to the store. Tom"``.
        corrupted: Corrupted text with the same number of tokens, e.g. ``"... rug. ..."``
            or ``"Tom went to the store. Sarah"``.
        correct: The token the clean text should predict next; by default the
            induction guess: the token that followed the last token's earlier
            occurrence (``" mat"``, ``" went"``).
        wrong: A token to compare with (logit difference); by default the
            corrupted text's induction guess when it differs (``" rug"``), else none.
        metric: ``"logit_diff"`` (default when ``wrong`` is given), ``"prob"``
            (default otherwise), ``"loss"`` over every position, or any registered name
            (:func:`~induction_nnsight.causal.metrics.make_metric` passes it ``correct`` and ``wrong``
            ids, ``[1]`` each); or a metric object or plain callable, used as it is.
        bos_token_id: Prepended to both texts when given.

    Returns:
        A :class:`Pair` of ``[1, pos]`` rows.

    Raises:
        InductionError: On unequal token lengths or multi-token answers.
    """
    head = [] if bos_token_id is None else [bos_token_id]
    clean_ids = head + tokenizer.encode(clean, add_special_tokens=False)
    corrupted_ids = head + tokenizer.encode(corrupted, add_special_tokens=False)
    if len(clean_ids) != len(corrupted_ids):
        raise InductionError(
            f"the clean text is {len(clean_ids)} tokens and the corrupted text {len(corrupted_ids)}: "
            "pass texts of the same token length (swap a word for a word of as many tokens)"
        )
    if correct is None:
        correct_id = _induction_guess(tokenizer, clean_ids, len(head))
        if correct_id is None:
            raise InductionError("the clean text's last token does not occur earlier: pass --correct")
    else:
        correct_id = _single_token(tokenizer, correct, "correct token")
    if wrong is not None:
        wrong_id = _single_token(tokenizer, wrong, "wrong token")
    else:  # the corrupted text's own induction guess, when it names another token
        wrong_id = _induction_guess(tokenizer, corrupted_ids, len(head)) if correct is None else None
        wrong_id = None if wrong_id == correct_id else wrong_id
    if metric is None or isinstance(metric, str):
        name = metric or ("logit_diff" if wrong_id is not None else "prob")
        wrong_ids = None if wrong_id is None else torch.tensor([wrong_id])
        row_metric = make_metric(name, correct=torch.tensor([correct_id]), wrong=wrong_ids)
    else:
        row_metric = as_metric(metric)
    labels = [tokenizer.decode([i]) for i in clean_ids]
    answer = tokenizer.decode([correct_id]) + ("" if wrong_id is None else f" vs {tokenizer.decode([wrong_id])}")
    return Pair(
        torch.tensor([clean_ids]),
        torch.tensor([corrupted_ids]),
        row_metric,
        f"{clean!r} / {corrupted!r} -> {answer!r}",
        labels,
    )
