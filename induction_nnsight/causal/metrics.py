"""Causal metrics: pure tensor functions of logits or losses.

They run inside a trace (so only their small results are saved, or sent back
from NDIF) and equally on plain tensors in tests. Every function keeps leading
dimensions, so one call scores many rows or many patched variants at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..errors import InductionError
from ..scores.losses import repeated_half_slice, token_losses


def repeated_half_loss(loss: torch.Tensor, seq_len: int, bos: bool) -> torch.Tensor:
    """Mean loss on the repeated copy of a repeated-token row.

    Args:
        loss: ``[..., pos - 1]`` losses by position (from :func:`token_losses`
            or :func:`~induction_nnsight.scores.scan.loss_by_position`).
        seq_len: Length of the repeated block.
        bos: Whether rows start with BOS.

    Returns:
        ``[...]`` mean loss over the ``seq_len - 1`` predictable tokens of the copy.
    """
    if seq_len < 2:
        raise InductionError(f"seq_len must be at least 2 for a repeated-half loss, got {seq_len}")
    return loss[..., repeated_half_slice(seq_len, bos)].mean(dim=-1)


def default_icl_positions(seq_len: int, bos: bool) -> tuple[int, int]:
    """Default (early, late) loss indices of the in-context-learning score on repeated tokens.

    Early is the middle token of the first copy, late the same token in the
    repeated copy: both predict the same token, once unseen and once seen, so the
    score measures what the context taught (Olsson et al. 2022 compare token 500
    with token 50 of natural text; on repeated tokens these two positions play
    that part).

    Returns:
        ``(early, late)`` indices into a ``[pos - 1]`` loss vector.
    """
    if seq_len < 2:
        raise InductionError(f"seq_len must be at least 2 for default ICL positions, got {seq_len}")
    b = int(bos)
    early = b + seq_len // 2 - 1
    return early, early + seq_len


def _mean_at(loss: torch.Tensor, positions: int | Sequence[int]) -> torch.Tensor:
    index = [positions] if isinstance(positions, int) else list(positions)
    n = loss.shape[-1]
    for i in index:
        if not -n <= i < n:
            raise InductionError(f"loss position {i} is outside 0..{n - 1}: pass positions inside the row")
    return loss[..., index].mean(dim=-1)


def icl_score(loss: torch.Tensor, early: int | Sequence[int], late: int | Sequence[int]) -> torch.Tensor:
    """In-context-learning score: loss late in the context minus loss early in it.

    Negative when the model predicts better with more context (Olsson et al. 2022).

    Args:
        loss: ``[..., pos - 1]`` losses by position.
        early: One index or several (averaged) into the last dimension.
        late: One index or several (averaged).

    Returns:
        ``[...]`` the score in nats.

    Example:
        >>> icl_score(torch.tensor([4.0, 3.0, 1.0, 0.5]), early=0, late=[2, 3]).item()
        -3.25
    """
    return _mean_at(loss, late) - _mean_at(loss, early)


def _gather_last(values: torch.Tensor, ids: torch.Tensor | int) -> torch.Tensor:
    ids = torch.as_tensor(ids, device=values.device).long()
    if ids.dim() == 0:
        return values[..., ids]
    return values.gather(-1, ids.reshape(*ids.shape, 1).expand(*values.shape[:-1], 1)).squeeze(-1)


def logit_diff(logits: torch.Tensor, correct: torch.Tensor | int, wrong: torch.Tensor | int) -> torch.Tensor:
    """Logit of the correct token minus logit of the wrong one.

    Args:
        logits: ``[..., vocab]`` (usually the last position's logits, ``[batch, vocab]``).
        correct: A token id, or ``[...]`` one id per row.
        wrong: Same form as ``correct``.

    Returns:
        ``[...]``.

    Example:
        >>> logit_diff(torch.tensor([[1.0, 3.0, 0.5]]), correct=1, wrong=2).tolist()
        [2.5]
    """
    return (_gather_last(logits, correct) - _gather_last(logits, wrong)).float()


def correct_prob(logits: torch.Tensor, correct: torch.Tensor | int) -> torch.Tensor:
    """Softmax probability of the correct token.

    Args:
        logits: ``[..., vocab]``.
        correct: A token id, or ``[...]`` one id per row.

    Returns:
        ``[...]`` probabilities in ``[0, 1]``.
    """
    return _gather_last(torch.softmax(logits.float(), dim=-1), correct)


def recovery(patched, corrupted, clean):
    """Recovery ratio ``(patched - corrupted) / (clean - corrupted)`` of any metric.

    1 means the patch restores the clean behaviour, 0 that it changes nothing.
    Works on floats and on broadcastable tensors alike.

    Example:
        >>> recovery(2.0, corrupted=1.0, clean=5.0)
        0.25
    """
    return (patched - corrupted) / (clean - corrupted)


class RowMetric:
    """A metric of each row's logits, applied inside a trace to many rows at once.

    Names:
        ``"loss"``: mean next-token loss over chosen loss indices (default: the
        repeated half); lower is better.
        ``"loss_by_position"``: the ``[pos - 1]`` loss vector of each row.
        ``"logit_diff"``: correct minus wrong logit at one position.
        ``"prob"``: the correct token's probability at one position.

    Calling it on ``logits [rows, pos, vocab]`` and ``tokens [rows, pos]`` gives
    ``[rows]`` (``[rows, pos - 1]`` for ``loss_by_position``). When ``rows`` is a
    multiple of the number of ``correct`` ids, the ids repeat across the groups
    of rows (one group per patched variant).
    """

    NAMES = ("loss", "loss_by_position", "logit_diff", "prob")

    def __init__(
        self,
        name: str = "loss",
        *,
        loss_positions: slice | Sequence[int] | None = None,
        position: int = -1,
        correct: torch.Tensor | None = None,
        wrong: torch.Tensor | None = None,
    ) -> None:
        if name not in self.NAMES:
            raise InductionError(f"unknown metric {name!r}: pass one of {', '.join(self.NAMES)}")
        if name in ("logit_diff", "prob") and correct is None:
            raise InductionError(f"metric {name} needs a correct token")
        if name == "logit_diff" and wrong is None:
            raise InductionError("metric logit_diff needs a wrong token: pass --wrong, or use --metric prob")
        self.name = name
        self.loss_positions = loss_positions
        self.position = position
        self.correct = None if correct is None else torch.as_tensor(correct).long().reshape(-1)
        self.wrong = None if wrong is None else torch.as_tensor(wrong).long().reshape(-1)

    @property
    def higher_is_better(self) -> bool:
        """False for losses, True for logit differences and probabilities."""
        return self.name in ("logit_diff", "prob")

    @property
    def label(self) -> str:
        """Human-readable name for chart axes."""
        return {
            "loss": "loss (nats)",
            "loss_by_position": "loss (nats)",
            "logit_diff": "logit difference",
            "prob": "correct-token probability",
        }[self.name]

    def _ids(self, ids: torch.Tensor, rows: int, device) -> torch.Tensor:
        if rows % ids.numel():
            raise InductionError(f"{ids.numel()} token ids do not divide {rows} rows")
        return ids.to(device).repeat(rows // ids.numel())

    def __call__(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        rows = logits.shape[0]
        if self.name in ("loss", "loss_by_position"):
            if self.name == "loss_by_position" or self.loss_positions is None:
                losses = token_losses(logits, tokens)
                if self.name == "loss_by_position":
                    return losses
                return losses.mean(dim=-1)
            index = self.loss_positions
            if isinstance(index, slice):
                index = list(range(*index.indices(tokens.shape[1] - 1)))
            index = torch.as_tensor(list(index), device=logits.device)
            picked = logits[:, index]  # [rows, n, vocab]: only the positions scored
            targets = tokens.to(logits.device)[:, index + 1]
            return F.cross_entropy(picked.transpose(1, 2).float(), targets, reduction="none").mean(dim=-1)
        last = logits[:, self.position]  # [rows, vocab]
        correct = self._ids(self.correct, rows, logits.device)
        if self.name == "prob":
            return correct_prob(last, correct)
        return logit_diff(last, correct, self._ids(self.wrong, rows, logits.device))


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two same-shape tables over the cells where both are finite."""
    a, b = a.flatten().double(), b.flatten().double()
    keep = torch.isfinite(a) & torch.isfinite(b)
    a, b = a[keep] - a[keep].mean(), b[keep] - b[keep].mean()
    denominator = (a.norm() * b.norm()).item()
    return float((a @ b).item() / denominator) if denominator > 0 else float("nan")
