"""The dissociation test of the dual route: ablate the top concept heads, then the top token heads, and
compare how much each hurts copying a multi-token entity and copying random tokens.

On the clean copying rows (``[BOS] f r c / r c[0]``) the model should predict ``c[1]``: the rest of a
real entity (concept copying) or the next random token (verbatim copying). Each head set is
zero-ablated at its output (:func:`~induction_nnsight.causal.head_outputs.head_edit`), all sets batched
in few traces (:func:`~induction_nnsight.causal.variants.run_variants`); the drop of the probability of
``c[1]`` is kept per row, so its interval is a bootstrap over prompts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..models.layout import model_facts
from ..ndif.execution import Execution
from ..probes.dual_route import CopyingPrompts
from ..stats import mean_interval
from .head_outputs import head_edit, head_mask
from .variants import run_variants

__all__ = ["ablated_probabilities", "dissociation"]


def ablated_probabilities(
    model,
    prompts: CopyingPrompts,
    head_sets: Sequence[Sequence[tuple[int, int]]],
    *,
    execution: Execution | None = None,
) -> torch.Tensor:
    """Per-row probability of ``c[1]`` at the last position with each set of heads zero-ablated.

    Args:
        model: An nnsight ``TransformersModel``.
        prompts: Clean rows (``prompts.clean``) and their entities.
        head_sets: Sets of ``(layer, head)``; an empty set is the unablated model.
        execution: How the traces run; None for the defaults.

    Returns:
        ``[len(head_sets), batch]``.
    """
    facts = model_facts(model)
    tokens, wanted = prompts.clean, prompts.entities[:, 1]
    batch = tokens.shape[0]
    masks = torch.stack([head_mask(s, facts.n_layers, facts.n_heads) for s in head_sets])

    def metric(logits: torch.Tensor, _tokens: torch.Tensor) -> torch.Tensor:
        # [rows, batch]: row i's probability in column i % batch, so the mean over a variant's rows
        # (what run_variants keeps) is each row's own value divided by batch
        probs = torch.softmax(logits[:, -1].float(), dim=-1)
        rows = torch.arange(logits.shape[0], device=logits.device)
        p = probs.gather(1, wanted.to(logits.device).repeat(logits.shape[0] // batch)[:, None])  # [rows, 1]
        one_hot = (rows[:, None] % batch == torch.arange(batch, device=logits.device)[None, :]).float()
        return p * one_hot

    edit = head_edit(model, masks, "zero")
    return run_variants(model, tokens, len(head_sets), edit, metric, execution=execution) * batch


def _summary(drops: torch.Tensor) -> dict:
    low, high = mean_interval(drops)
    return {"mean": float(drops.mean()), "ci_low": float(low), "ci_high": float(high)}


def dissociation(
    model,
    prompts: dict[str, CopyingPrompts],
    heads: dict[str, list[tuple[int, int]]],
    *,
    execution: Execution | None = None,
) -> dict:
    """How much ablating each set of heads lowers the probability of copying each kind of span.

    Args:
        model: An nnsight ``TransformersModel``.
        prompts: ``{"entity": ..., "random": ...}`` clean copying rows of real entities and of
            random-token spans.
        heads: ``{"concept": [...], "token": [...]}`` the head sets to ablate.
        execution: How the traces run; None for the defaults.

    Returns:
        A dict: ``baseline`` maps each span kind to the unablated probability of ``c[1]``;
        ``drop`` maps each head set, then each span kind, to the unablated minus the ablated
        probability (``mean``, ``ci_low``, ``ci_high``: mean over prompts and 95% interval);
        ``difference`` maps each head set to the drop on entities minus the drop on random tokens
        (the same three fields; positive: the set matters more for concepts).
    """
    names = list(heads)
    out: dict = {"baseline": {}, "drop": {name: {} for name in names}, "difference": {}}
    drops = {}
    for span, rows in prompts.items():
        probs = ablated_probabilities(model, rows, [[], *heads.values()], execution=execution)  # [1 + sets, batch]
        out["baseline"][span] = float(probs[0].mean())
        for i, name in enumerate(names):
            drops[name, span] = probs[0] - probs[1 + i]  # [batch]
            out["drop"][name][span] = _summary(drops[name, span])
    for name in names:
        entity, random = drops[name, "entity"], drops[name, "random"]
        n = min(len(entity), len(random))  # the two prompt sets are drawn independently: pair by index
        out["difference"][name] = _summary(entity[:n] - random[:n])
    return out
