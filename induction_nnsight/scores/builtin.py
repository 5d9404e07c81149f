"""The built-in head scores, one declaration each (see :mod:`~induction_nnsight.scores.declaration`).

:data:`BUILTIN_SCORES` is the fixed set; the registry (:mod:`~induction_nnsight.scores.registry`)
loads them on its first use, and :func:`~induction_nnsight.scores.registry.score_names` lists them
first.
"""

from __future__ import annotations

import torch

from .copying import copying_logit_boost, ov_copying_score
from .declaration import HeadScore, LogitInputs
from .reductions import (
    counted_mass,
    diagonal_partial,
    first_token_partial,
    induction_token_rows,
    key_mass,
    masked_partial,
)
from .views import ProbeRows

__all__ = ["BUILTIN_SCORES"]


def _copying(inputs: LogitInputs) -> torch.Tensor:
    """:func:`~induction_nnsight.scores.copying.copying_logit_boost` of one layer: ``[batch, head, chunk]``
    (made once per chunk: ``anti_induction`` reads the same)."""
    return inputs.once(
        "copying_boost",
        lambda: copying_logit_boost(
            inputs.pattern,
            inputs.head_input,
            inputs.w_out,
            inputs.unembed,
            inputs.unembed_mean,
            inputs.tokens,
            inputs.center,
            inputs.final_scale,
        ),
    )


def _anti_induction(inputs: LogitInputs) -> torch.Tensor:
    """Induction attention times the suppression of the attended token: ``[batch, head, chunk]``.

    ``-(a * boost)``: ``a`` the head's attention on the keys right after earlier copies of the query's
    token (the induction targets), ``boost`` its :func:`_copying` logit boost of the token it attends to
    most. Positive for a head that attends like an induction head and lowers the logit of what it
    attends to; an induction head that copies scores below zero.
    """
    boost = _copying(inputs)
    targets = inputs.once(  # [batch, chunk, key], the same in every layer
        "induction_targets",
        lambda: induction_token_rows(inputs.tokens, inputs.positions, inputs.pattern.shape[-1]),
        every_layer=True,
    )
    attention = (inputs.pattern.float() * targets[:, None]).sum(-1)  # [batch, head, chunk]
    return -attention * boost


def _induction_partial(rows: torch.Tensor, view: ProbeRows, query_mask: torch.Tensor | None = None):
    """:func:`~induction_nnsight.scores.reductions.masked_partial` on the induction keys; the mass is made
    once per chunk for ``induction_exact`` and ``prefix_matching``, which differ only in the queries counted."""
    return counted_mass(*view.once_for(rows, "induction_mass", lambda: key_mass(rows, view.induction)), query_mask)


BUILTIN_SCORES = (
    HeadScore(
        "previous_token",
        "attention from each token to the one before it",
        "pattern",
        partial=lambda rows, view: diagonal_partial(rows, view.positions, -1),
    ),
    HeadScore(
        "duplicate_token",
        "attention to earlier positions holding the same token",
        "pattern",
        partial=lambda rows, view: masked_partial(rows, view.duplicate),
    ),
    HeadScore(
        "induction",
        "mean attention on the diagonal at offset 1 - seq_len (clean repeats)",
        "pattern",
        partial=lambda rows, view: diagonal_partial(rows, view.positions, 1 - view.period),
        needs_period=True,
        queries=lambda view: view.positions >= view.period - 1,  # those with a key on the stripe
    ),
    HeadScore(
        "induction_exact",
        "attention to the position after each earlier copy of the current token (any text)",
        "pattern",
        partial=lambda rows, view: _induction_partial(rows, view),
    ),
    HeadScore(
        "prefix_matching",
        "the same token-match attention, over queries in the repeated copies (Olsson et al.)",
        "pattern",
        partial=lambda rows, view: _induction_partial(rows, view, view.repeat_queries),
    ),
    HeadScore(
        "bos",
        "attention to the first token (an attention sink)",
        "pattern",
        partial=lambda rows, view: first_token_partial(rows, view.positions),
    ),
    HeadScore(
        "copying",
        "how much the head's output raises the logit of the token it attends to "
        "(logits, before the final norm's scaling)",
        "logits",
        _copying,
        value_range=(None, None),
        unit="logits",
        queries=lambda view: view.repeat_queries,  # averaged over the repeated copies
        inputs=("pattern", "head_input", "w_out", "tokens", "center", "unembed", "final_scale", "unembed_mean"),
    ),
    HeadScore(
        "anti_induction",
        "induction attention with a negative copying score: attention on the token after an earlier copy "
        "of the current token, times how much the head lowers that token's logit",
        "logits",
        _anti_induction,
        value_range=(None, None),
        unit="logits",
        threshold=0.5,
        queries=lambda view: view.repeat_queries,
        inputs=(
            "pattern",
            "positions",
            "head_input",
            "w_out",
            "tokens",
            "center",
            "unembed",
            "final_scale",
            "unembed_mean",
        ),
    ),
    HeadScore(
        "copying_ov",
        "OV-circuit eigenvalue score: sum of eigenvalues over sum of their absolute values",
        "weights",
        ov_copying_score,
        value_range=(-1.0, 1.0),
        unit="eigenvalue ratio",
    ),
)
"""Every built-in score, in the order the heads pass reports them."""
