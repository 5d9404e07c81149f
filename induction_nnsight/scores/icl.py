"""In-context learning on natural text: loss by token index and Olsson et al.'s ICL score.

Olsson et al. (2022) define the in-context-learning score as the loss at token 500 of a context
minus the loss at token 50, averaged over contexts: negative when later tokens, with more context
behind them, are predicted better. Here a text is cut into consecutive windows of ``length`` tokens,
each starting with BOS; the loss at token index ``t`` is the loss of predicting token ``t`` from
tokens ``0..t-1``. With no text given, the prose that ships with Python itself is used: the help
topics of the language reference (``pydoc_data.topics``), present wherever Python is.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

import nnsight
import torch
from tqdm.auto import tqdm

from ..errors import InductionError
from ..models.layout import model_facts
from ..ndif.backend import remote_backend
from ..ndif.execution import Execution, as_execution
from ..stats import mean_interval, rows_to_resolve
from .losses import token_losses

__all__ = [
    "OLSSON_TOKENS",
    "default_text",
    "icl_scores",
    "loss_by_token",
    "olsson_icl",
    "read_text",
    "TextIcl",
    "text_icl",
    "text_windows",
]

TEXT_SUFFIXES = (".txt", ".md", ".rst")
"""The files a ``--text`` directory contributes (read in sorted order)."""


def default_text() -> tuple[str, str]:
    """Natural text present on every machine: the Python language reference's help topics.

    Returns:
        ``(text, source)``: the topics joined in sorted order, and where they come from.
    """
    from pydoc_data import topics

    names = sorted(topics.topics)
    version = ".".join(map(str, sys.version_info[:3]))
    source = f"pydoc_data.topics of Python {version} (the language reference's {len(names)} help topics)"
    return "\n\n".join(topics.topics[name] for name in names), source


def read_text(path: str | Path) -> tuple[str, str]:
    """A text file, or every ``.txt``/``.md``/``.rst`` file of a directory (sorted, joined).

    Raises:
        InductionError: When the path does not exist, holds no such file, or is not UTF-8 text.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
        if not files:
            raise InductionError(f"--text {path}: the directory holds no {'/'.join(TEXT_SUFFIXES)} file")
    elif path.is_file():
        files = [path]
    else:
        raise InductionError(f"--text {path}: no such file or directory: pass a text file or a directory of them")
    try:
        text = "\n\n".join(p.read_text(encoding="utf-8") for p in files)
    except UnicodeDecodeError as error:
        raise InductionError(f"--text {path}: not UTF-8 text ({error.reason}): pass plain text files") from error
    return text, f"{path} ({len(files)} file{'s' if len(files) != 1 else ''})"


def text_windows(ids: list[int], n_windows: int, length: int, bos: int | None, seed: int = 0) -> torch.Tensor:
    """Windows of a tokenized text sampled across all of it, each ``length`` tokens (BOS first, when given).

    The text is cut into consecutive slots of ``length`` tokens (less the BOS); ``n_windows`` distinct
    slots are drawn at random (seeded) and kept in text order, so the windows come from the whole
    text, not from its beginning, and never overlap.

    Raises:
        InductionError: When the text is too short for ``n_windows`` windows, naming how many fit.

    Returns:
        ``LongTensor[n_windows, length]``.
    """
    body = length - (bos is not None)
    fit = len(ids) // max(1, body)
    if fit < n_windows:
        raise InductionError(
            f"the text has {len(ids)} tokens: {fit} windows of {length} fit, not {n_windows}: "
            f"pass --windows {max(fit, 1)} or less, a shorter --length, or a longer text"
        )
    slots = torch.randperm(fit, generator=torch.Generator().manual_seed(seed))[:n_windows].sort().values
    rows = torch.tensor(ids[: fit * body]).reshape(fit, body)[slots]
    if bos is not None:
        rows = torch.cat([torch.full((n_windows, 1), bos), rows], dim=1)
    return rows


def loss_by_token(
    model, windows: torch.Tensor, *, rows_per_trace: int = 4, execution: Execution | None = None
) -> torch.Tensor:
    """Every window's loss at every token index, a few windows per trace.

    Returns:
        ``[n_windows, length - 1]``: entry ``[w, t - 1]`` is the loss at token index ``t``.
    """
    run = as_execution(execution)
    parts = []
    starts = range(0, windows.shape[0], rows_per_trace)
    for start in tqdm(starts, desc="windows", disable=not run.progress or len(starts) < 2, file=sys.stderr):
        rows = windows[start : start + rows_per_trace]
        with torch.no_grad(), model.trace(rows, backend=remote_backend(model, run.remote)):
            saved = nnsight.save(token_losses(model.output.logits, rows).detach())
        parts.append(saved.cpu().float())
    return torch.cat(parts)


OLSSON_TOKENS = (50, 500)
"""Olsson et al.'s in-context-learning score: loss at token 500 minus loss at token 50."""


def olsson_icl(loss: torch.Tensor) -> tuple[float | None, str]:
    """Olsson's score of one loss-by-position vector and a note saying how it was read, or None with the
    reason when the rows are shorter than 500 tokens.

    Args:
        loss: ``[pos - 1]`` mean loss by position (index ``t - 1`` predicts token ``t``, counted from 1).
    """
    early, late = OLSSON_TOKENS
    if len(loss) < late:
        return None, f"rows of {len(loss) + 1} tokens: Olsson's score needs {late}"
    return float(_late_minus_early(loss[None], early, late)[0]), f"loss at token {late} minus loss at token {early}"


def _late_minus_early(losses: torch.Tensor, early: int, late: int) -> torch.Tensor:
    """``[n_windows]`` loss at token ``late`` minus at token ``early`` (1-based token indices)."""
    return losses[:, late - 1] - losses[:, early - 1]


def icl_scores(losses: torch.Tensor, early: int, late: int) -> dict[str, float]:
    """Olsson's score: loss at token ``late`` minus loss at token ``early``, mean over windows and 95% interval.

    Args:
        losses: ``[n_windows, length - 1]`` from :func:`loss_by_token`.
        early: Token index (1-based: the first predicted token is index 1).
        late: Token index after ``early``.

    Raises:
        InductionError: When a position lies outside the windows.
    """
    n = losses.shape[1]
    if not 1 <= early < late <= n:
        raise InductionError(
            f"ICL positions {early} and {late}: pass 1 <= --early < --late <= {n} (the window's last token index)"
        )
    per_window = _late_minus_early(losses, early, late)  # [n_windows]
    low, high = mean_interval(per_window)  # the t interval over windows
    mean, sd = float(per_window.mean()), float(per_window.double().std()) if len(per_window) > 1 else float("nan")
    return {
        "mean": mean,
        "ci_low": float(low),
        "ci_high": float(high),
        "sd": sd,  # window to window
        "windows_to_resolve": rows_to_resolve(mean, sd),  # if the effect is as large as measured
    }


class TextIcl(NamedTuple):
    """What :func:`text_icl` found.

    Attributes:
        losses: ``[n_windows, length - 1]`` from :func:`loss_by_token`.
        score: ``{"mean", "ci_low", "ci_high"}`` from :func:`icl_scores`.
        n_tokens: How many tokens the whole text has.
    """

    losses: torch.Tensor
    score: dict[str, float]
    n_tokens: int


def text_icl(
    model,
    text: str,
    windows: tuple[int, int],
    positions: tuple[int, int] = OLSSON_TOKENS,
    *,
    bos: bool = True,
    seed: int = 0,
    execution: Execution | None = None,
) -> TextIcl:
    """``model``'s loss by token index on windows of ``text``, and the in-context-learning score there.

    Args:
        model: An nnsight ``TransformersModel`` with a tokenizer.
        text: Natural text (:func:`default_text`, :func:`read_text`).
        windows: ``(n_windows, length)``: how many windows, of how many tokens (BOS included).
        positions: ``(early, late)`` token indices of the score (Olsson's: 50 and 500).
        bos: Start each window with the model's BOS token.
        seed: Seed of the windows' places in the text (:func:`text_windows`).
        execution: How the traces run (``remote``, ``progress``); None for the defaults.

    Returns:
        A :class:`TextIcl`.

    Raises:
        InductionError: When the model has no tokenizer, the windows exceed its context, the text
            is too short or a position lies outside the windows, in one line naming the fix.
    """
    (n_windows, length), (early, late) = windows, positions
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise InductionError("the model has no tokenizer to read the text with: save one beside its weights")
    facts = model_facts(model)
    if facts.n_ctx is not None and length > facts.n_ctx:
        raise InductionError(
            f"windows of {length} tokens exceed the model's context of {facts.n_ctx}: pass a smaller --length "
            "(or --late)"
        )
    ids = tokenizer.encode(text, add_special_tokens=False)
    rows = text_windows(ids, n_windows, length, facts.bos_token_id if bos else None, seed)
    losses = loss_by_token(model, rows, execution=execution)  # [n_windows, length - 1]
    return TextIcl(losses, icl_scores(losses, early, late), len(ids))
