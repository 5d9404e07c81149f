"""Causal metrics: pure tensor functions of logits or losses, and the metric objects sweeps take.

They run inside a trace (so only their small results are saved, or sent back
from NDIF) and equally on plain tensors in tests. Every function keeps leading
dimensions, so one call scores many rows or many patched variants at once.

What a sweep measures follows the :class:`CausalMetric` protocol (a call giving one value per
row, a ``name``, a ``label`` with its unit, ``higher_is_better``). The built-in ones are the
small classes below, registered by name in :data:`METRICS` (the CLI's ``--metric`` choices
come from there); :func:`as_metric` makes one of a plain callable.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

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


@runtime_checkable
class CausalMetric(Protocol):
    """What every causal sweep measures: one number per row of a run's logits.

    A metric is called inside the trace (so use tensor operations only, no ``.item()``) on the
    edited rows, and only its small result leaves the trace.

    Attributes:
        name: An identifier (a key of :data:`METRICS` for a registered metric).
        label: What the numbers are, with their unit, for chart axes and results
            (e.g. ``"loss (nats)"``).
        higher_is_better: True when a larger value means more of the behaviour (a logit
            difference, a probability), False for losses.

    Calling it on ``logits [batch, pos, vocab]`` and ``tokens [batch, pos]`` returns
    ``[batch]``, one value per row. ``batch`` is the number of target rows times the number of
    variants in the trace (the rows repeat once per variant).
    """

    name: str
    label: str
    higher_is_better: bool

    def __call__(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor: ...


MetricFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

METRICS: dict[str, Callable[..., CausalMetric]] = {}
"""The registered metrics, by name: each a factory (usually the metric's class) taking its options
as keywords. The CLI's ``--metric`` choices are read from here."""


def register_metric(factory):
    """Register a metric class (or factory with a ``name`` attribute) under its ``name``; use it as a
    class decorator. Returns ``factory``.

    Raises:
        InductionError: When another metric has that name.
    """
    name = factory.name
    if METRICS.get(name, factory) is not factory:
        raise InductionError(f"a metric named {name!r} is already registered: pick another name")
    METRICS[name] = factory
    return factory


def metric_names(per_row: bool = True) -> tuple[str, ...]:
    """Names of the registered metrics (``per_row``: those giving one value per row, as sweeps need)."""
    return tuple(n for n, f in METRICS.items() if not (per_row and getattr(f, "per_position", False)))


def make_metric(name: str, **options) -> CausalMetric:
    """The registered metric ``name`` made with ``options``; options its factory does not take are
    ignored (a text pair offers its tokens to every metric).

    Example:
        >>> make_metric("prob", correct=torch.tensor([2]), wrong=None).label
        'correct-token probability'
    """
    factory = METRICS.get(name)
    if factory is None:
        raise InductionError(f"unknown metric {name!r}: pass one of {', '.join(METRICS)}")
    parameters = inspect.signature(factory).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        options = {k: v for k, v in options.items() if k in parameters}
    return factory(**options)


@dataclass(frozen=True, eq=False)
class FunctionMetric:
    """A plain callable ``fn(logits, tokens) -> [batch]`` with the fields of :class:`CausalMetric`."""

    fn: MetricFn
    name: str
    label: str
    higher_is_better: bool = False

    def __call__(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.fn(logits, tokens)


def as_metric(
    metric: CausalMetric | MetricFn,
    *,
    name: str | None = None,
    label: str | None = None,
    higher_is_better: bool | None = None,
) -> CausalMetric:
    """``metric`` as a :class:`CausalMetric`: one already is returned as it is (unless a field is
    given), a plain callable ``fn(logits [batch, pos, vocab], tokens [batch, pos]) -> [batch]`` is
    wrapped. Its name defaults to ``fn.__name__``, its label to the name, ``higher_is_better`` to
    False (a loss, like the default metric).

    Example:
        >>> m = as_metric(lambda logits, tokens: logits[:, -1, 0], label="logit of token 0", higher_is_better=True)
        >>> m.name, m.label, m(torch.ones(2, 3, 4), torch.zeros(2, 3)).tolist()
        ('metric', 'logit of token 0', [1.0, 1.0])
    """
    fields = {"name": name, "label": label, "higher_is_better": higher_is_better}
    if isinstance(metric, CausalMetric) and all(v is None for v in fields.values()):
        return metric
    if not callable(metric):
        raise InductionError(f"a metric is a callable (logits, tokens) -> [batch], got {type(metric).__name__}")
    base = getattr(metric, "__name__", "metric")
    name = name or getattr(metric, "name", None) or ("metric" if base == "<lambda>" else base)
    label = label or getattr(metric, "label", None) or name
    if higher_is_better is None:
        higher_is_better = bool(getattr(metric, "higher_is_better", False))
    return FunctionMetric(metric, name, label, higher_is_better)


def _scored_losses(logits: torch.Tensor, tokens: torch.Tensor, positions: slice | Sequence[int]) -> torch.Tensor:
    """``[batch]`` mean next-token loss over the loss indices ``positions``, from their logits only."""
    index = positions
    if isinstance(index, slice):
        index = list(range(*index.indices(tokens.shape[1] - 1)))
    index = torch.as_tensor(list(index), device=logits.device)
    picked = logits[:, index]  # [batch, n, vocab]: only the positions scored
    targets = tokens.to(logits.device)[:, index + 1]  # [batch, n]
    return F.cross_entropy(picked.transpose(1, 2).float(), targets, reduction="none").mean(dim=-1)


@register_metric
@dataclass(frozen=True, eq=False)
class Loss:
    """Mean next-token loss over chosen loss indices (None: every one); lower is better.

    ``loss_positions`` index the ``[pos - 1]`` loss vector (the repeated half:
    :func:`~induction_nnsight.scores.losses.repeated_half_slice`).
    """

    loss_positions: slice | Sequence[int] | None = None
    name: ClassVar[str] = "loss"
    label: ClassVar[str] = "loss (nats)"
    higher_is_better: ClassVar[bool] = False

    def __call__(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        if self.loss_positions is None:
            return token_losses(logits, tokens).mean(dim=-1)
        return _scored_losses(logits, tokens, self.loss_positions)


@register_metric
@dataclass(frozen=True, eq=False)
class LossByPosition:
    """The ``[batch, pos - 1]`` loss vector of each row. Not one value per row: it is for
    :func:`~induction_nnsight.causal.ablation.sweep.ablate_heads`, not for sweeps or the CLI's ``--metric``."""

    name: ClassVar[str] = "loss_by_position"
    label: ClassVar[str] = "loss (nats)"
    higher_is_better: ClassVar[bool] = False
    per_position: ClassVar[bool] = True

    def __call__(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return token_losses(logits, tokens)


def _ids(ids: torch.Tensor, rows: int, device) -> torch.Tensor:
    """``[rows]`` the ids repeated over the groups of rows (one group per variant)."""
    if rows % ids.numel():
        raise InductionError(f"{ids.numel()} token ids do not divide {rows} rows")
    return ids.to(device).repeat(rows // ids.numel())


def _token_ids(ids, what: str) -> torch.Tensor:
    if ids is None:
        raise InductionError(what)
    return torch.as_tensor(ids).long().reshape(-1)


@register_metric
@dataclass(frozen=True, eq=False)
class LogitDiff:
    """Correct minus wrong logit at one position (default the last); higher is better.

    ``correct`` and ``wrong`` are one token id each or one per row; when the rows are a multiple of
    the ids, the ids repeat across the groups of rows (one group per patched variant).
    """

    correct: torch.Tensor | None = None
    wrong: torch.Tensor | None = None
    position: int = -1
    name: ClassVar[str] = "logit_diff"
    label: ClassVar[str] = "logit difference"
    higher_is_better: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "correct", _token_ids(self.correct, "metric logit_diff needs a correct token"))
        need = "metric logit_diff needs a wrong token: pass --wrong, or use --metric prob"
        object.__setattr__(self, "wrong", _token_ids(self.wrong, need))

    def __call__(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        rows, last = logits.shape[0], logits[:, self.position]  # [batch, vocab]
        return logit_diff(last, _ids(self.correct, rows, logits.device), _ids(self.wrong, rows, logits.device))


@register_metric
@dataclass(frozen=True, eq=False)
class Prob:
    """The correct token's probability at one position (default the last); higher is better."""

    correct: torch.Tensor | None = None
    position: int = -1
    name: ClassVar[str] = "prob"
    label: ClassVar[str] = "correct-token probability"
    higher_is_better: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "correct", _token_ids(self.correct, "metric prob needs a correct token"))

    def __call__(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        rows, last = logits.shape[0], logits[:, self.position]  # [batch, vocab]
        return correct_prob(last, _ids(self.correct, rows, logits.device))


class RowMetric:
    """A built-in metric by name: ``RowMetric(name, **options)`` is :func:`make_metric` (kept for
    code written before the :class:`CausalMetric` protocol; it returns the metric's own class).

    Names (:data:`NAMES`, the registered ones): ``"loss"`` (:class:`Loss`), ``"loss_by_position"``
    (:class:`LossByPosition`), ``"logit_diff"`` (:class:`LogitDiff`), ``"prob"`` (:class:`Prob`).
    """

    NAMES = tuple(METRICS)

    def __new__(cls, name: str = "loss", **options) -> CausalMetric:  # type: ignore[misc]
        return make_metric(name, **options)


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two same-shape tables over the cells where both are finite."""
    a, b = a.flatten().double(), b.flatten().double()
    keep = torch.isfinite(a) & torch.isfinite(b)
    a, b = a[keep] - a[keep].mean(), b[keep] - b[keep].mean()
    denominator = (a.norm() * b.norm()).item()
    return float((a @ b).item() / denominator) if denominator > 0 else float("nan")
