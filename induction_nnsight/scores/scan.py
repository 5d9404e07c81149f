"""The scan: the heads pass with two outputs, the loss by position and the induction score.

Each function opens one ``model.trace``; every reduction happens inside it, so
what is saved (and, with ``execution=Execution(remote=True)``, downloaded from NDIF) is a loss vector
and an ``[n_layers, n_heads]`` table, never logits or attention patterns. The
induction score is the registry's ``induction`` score, so ``scan`` and ``heads``
give the same numbers by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import nnsight
import plotly.graph_objects as go
import torch

from ..figures.heads import loss_by_position_figure
from ..figures.tables import HTML_ROWS, Displayable, Summary, plain, titled
from ..models.attention import attention_calls, attention_modules, attention_pattern
from ..models.layout import model_facts
from ..ndif.backend import remote_backend
from ..ndif.execution import Execution, as_execution
from ..ndif.settings import on_ndif
from ..probes.tokens import Probe, repeated_tokens_probe
from .heads import head_scores, kind_heatmap
from .losses import half_losses
from .ranking import ranked_rows


@dataclass(repr=False)
class ScanResult(Displayable):
    """What one scan pass returns; shows itself as its top heads (``repr``, HTML) and draws
    ``figures()`` ``induction_scores`` (the main one) and ``loss_by_position``.

    Attributes:
        loss_by_position: ``[pos - 1]`` mean next-token loss at each position.
        induction_scores: ``[n_layers, n_heads]`` diagonal-offset induction scores.
        model: The model's name or path.
        seq_len: Length of the repeated block.
        bos: Whether the rows start with BOS (None: rows of another shape than two copies).
    """

    loss_by_position: torch.Tensor
    induction_scores: torch.Tensor
    model: str | None = None
    seq_len: int | None = None
    bos: bool | None = None

    FIGURES = ("induction_scores", "loss_by_position")

    def _summary(self) -> Summary:
        layers, heads = self.induction_scores.shape
        numbers = []
        if self.seq_len is not None and self.bos is not None and self.seq_len > 1:
            first, repeated = half_losses(self.loss_by_position, self.seq_len, self.bos)
            numbers = [("first-half loss", float(first)), ("repeated-half loss", float(repeated))]
        return Summary(
            "ScanResult",
            self.model,
            f"{layers} layers x {heads} heads",
            ["head", "induction score"],
            ranked_rows(self.induction_scores, HTML_ROWS),
            numbers,
        )

    def _figure(self, name: str, **options) -> go.Figure:
        if name == "loss_by_position":
            marked = self.bos is not None
            return loss_by_position_figure(
                plain(self.loss_by_position),
                self.seq_len if marked else None,
                bool(self.bos),
                **{"title": titled("Mean loss by position", self.model), **options},
            )
        return kind_heatmap("induction", self.induction_scores, self.model, **options)


def _probe(tokens: torch.Tensor, seq_len: int | None) -> Probe:
    return repeated_tokens_probe(tokens, seq_len)


def _heads_pass(model, probe: Probe, execution: Execution | None, **options):
    """``head_scores`` averaged over rows inside the trace, run as ``execution`` says."""
    return head_scores(model, probe, per_row=False, execution=execution, **options)


def loss_by_position(model, tokens: torch.Tensor, *, execution: Execution | None = None) -> torch.Tensor:
    """Mean next-token loss at each position, computed inside the trace.

    Args:
        model: An nnsight ``TransformersModel`` / ``LanguageModel``.
        tokens: ``[batch, pos]`` token ids.
        execution: How the trace runs (:class:`~induction_nnsight.ndif.execution.Execution`:
            ``remote`` for NDIF, ``pattern_budget``); None for the defaults.

    Returns:
        ``[pos - 1]``: entry ``i`` is the loss of predicting token ``i + 1``.
    """
    return _heads_pass(model, _probe(tokens, None), execution, kinds=()).loss_by_position


def induction_scores(model, tokens: torch.Tensor, seq_len: int, *, execution: Execution | None = None) -> torch.Tensor:
    """Every head's diagonal-offset induction score, reduced inside the trace.

    Args:
        model: An nnsight ``TransformersModel`` / ``LanguageModel``.
        tokens: ``[batch, bos + 2 * seq_len]`` repeated tokens (see
            :func:`~induction_nnsight.probes.tokens.repeated_tokens`).
        seq_len: Length of the repeated block.
        execution: How the trace runs (:class:`~induction_nnsight.ndif.execution.Execution`:
            ``remote`` for NDIF, ``pattern_budget``); None for the defaults.

    Returns:
        ``[n_layers, n_heads]`` scores in ``[0, 1]``.
    """
    return _heads_pass(model, _probe(tokens, seq_len), execution, kinds=("induction",), loss=False).mean("induction")


def scan(model, tokens: torch.Tensor, seq_len: int, *, execution: Execution | None = None) -> ScanResult:
    """Loss by position and induction scores from one forward pass: the heads pass with these two outputs.

    Args:
        model: An nnsight ``TransformersModel`` / ``LanguageModel``.
        tokens: ``[batch, bos + 2 * seq_len]`` repeated tokens.
        seq_len: Length of the repeated block.
        execution: How the trace runs (:class:`~induction_nnsight.ndif.execution.Execution`:
            ``remote`` for NDIF, ``pattern_budget``); None for the defaults.

    Returns:
        A :class:`ScanResult` with ``loss_by_position [pos - 1]`` and
        ``induction_scores [n_layers, n_heads]``.
    """
    result = _heads_pass(model, _probe(tokens, seq_len), execution, kinds=("induction",))
    bos = {2 * seq_len: False, 2 * seq_len + 1: True}.get(tokens.shape[1])
    return ScanResult(result.loss_by_position, result.mean("induction"), model_facts(model).name, seq_len, bos)


def heads_attention(
    model, tokens: torch.Tensor, heads: list[tuple[int, int]], *, execution: Execution | None = None
) -> torch.Tensor:
    """Several heads' attention patterns on one row of tokens, from one trace.

    Each layer's :func:`~induction_nnsight.models.attention.attention_pattern` is read once, in
    forward order, and only the chosen heads' rows are saved.

    Args:
        model: An nnsight ``TransformersModel`` / ``LanguageModel``.
        tokens: ``[1, pos]`` token ids.
        heads: ``(layer, head)`` pairs, in the order wanted.
        execution: How the trace runs (:class:`~induction_nnsight.ndif.execution.Execution`:
            ``remote`` for NDIF, ``pattern_budget``); None for the defaults.

    Returns:
        ``[len(heads), query, key]`` attention probabilities.
    """
    remote = as_execution(execution).remote
    modules = attention_modules(model)
    eager = model_facts(model).attn_implementation == "eager" and not on_ndif(remote)
    layers = sorted({layer for layer, _ in heads})
    calls = attention_calls(model)
    chosen = {layer: sorted({h for at, h in heads if at == layer}) for layer in layers}
    order = [(layer, head) for layer in layers for head in chosen[layer]]  # the saved rows, in layer order
    with torch.no_grad(), model.trace(tokens, backend=remote_backend(model, remote)):
        parts = [attention_pattern(modules[layer], eager, calls[layer])[0, chosen[layer]] for layer in layers]
        saved = nnsight.save(torch.cat(parts))  # one tensor: the only value a remote run sends back
    return saved.detach().cpu().float()[[order.index(h) for h in heads]]


def head_attention(
    model, tokens: torch.Tensor, layer: int, head: int, *, execution: Execution | None = None
) -> torch.Tensor:
    """One head's attention pattern on one row of tokens (:func:`heads_attention` for one head).

    Args:
        model: An nnsight ``TransformersModel`` / ``LanguageModel``.
        tokens: ``[1, pos]`` token ids.
        layer: Layer index.
        head: Query-head index.
        execution: How the trace runs (:class:`~induction_nnsight.ndif.execution.Execution`:
            ``remote`` for NDIF, ``pattern_budget``); None for the defaults.

    Returns:
        ``[query, key]`` attention probabilities.
    """
    return heads_attention(model, tokens, [(layer, head)], execution=execution)[0]
