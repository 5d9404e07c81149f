"""The token and probe checks: one definition of what a repeated-token grid must satisfy, in
itself (sizes, id range) and against a model (its vocabulary, context and BOS token).

Every job and generator refuses bad settings through these, so a mistake reads the same
everywhere: one line naming the option to fix.
"""

from __future__ import annotations

from ..errors import InductionError
from ..models.layout import model_facts

__all__ = ["check_rows_fit", "check_token_grid"]

REPEATED_HALF = 2
"""The shortest block with a repeated half to score (a loss after the first repeated token)."""


def check_token_grid(
    batch: int, seq_len: int | None, low: int | None = None, high: int | None = None, *, min_seq_len: int = 1
) -> None:
    """Refuse a token grid that cannot be drawn: ``batch`` rows of blocks of ``seq_len`` ids in ``[low, high)``.

    Args:
        batch: Rows (at least 1).
        seq_len: Block length (at least ``min_seq_len``); None: chosen later from the model.
        low: Smallest id (None: chosen later from the model).
        high: Ids drawn below this (None: chosen later).
        min_seq_len: 1, or :data:`REPEATED_HALF` where a repeated half is scored.

    Raises:
        InductionError: Naming ``--batch``, ``--seq-len`` or ``--low``/``--high``.

    Example:
        >>> check_token_grid(10, 50, 1000, 10000)
        >>> check_token_grid(10, 50, 5, 5)
        Traceback (most recent call last):
        ...
        induction_nnsight.errors.InductionError: token range [5, 5) is empty: pass 0 <= --low < --high
    """
    if batch < 1:
        raise InductionError(f"--batch must be at least 1, got {batch}")
    if seq_len is not None and seq_len < min_seq_len:
        why = " (a repeated half to score)" if min_seq_len == REPEATED_HALF else ""
        raise InductionError(f"--seq-len must be at least {min_seq_len}{why}, got {seq_len}")
    if low is not None and high is not None and not 0 <= low < high:
        raise InductionError(f"token range [{low}, {high}) is empty: pass 0 <= --low < --high")


def check_rows_fit(model, name: str, seq_len: int, *, bos: bool, n_repeats: int = 2) -> None:
    """Refuse rows ``[bos] + n_repeats x seq_len`` that ``model`` cannot read: past its context, or a BOS it lacks.

    Args:
        model: An nnsight model (its config's facts are read; nothing runs).
        name: The model as the user named it (for the message).
        seq_len: Block length.
        bos: Whether the rows start with the model's BOS token.
        n_repeats: Copies of the block per row.

    Raises:
        InductionError: Naming ``--seq-len`` (with the longest that fits) or ``--no-bos``.
    """
    facts = model_facts(model)
    length = int(bos) + n_repeats * seq_len
    if facts.n_ctx is not None and length > facts.n_ctx:
        raise InductionError(
            f"rows of {length} tokens exceed {name}'s context of {facts.n_ctx}: "
            f"pass --seq-len {(facts.n_ctx - int(bos)) // n_repeats} or less"
        )
    if bos and facts.bos_token_id is None:
        raise InductionError(f"{name} has no BOS token in its config or tokenizer: pass --no-bos")
