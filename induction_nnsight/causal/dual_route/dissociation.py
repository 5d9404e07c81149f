"""The dissociation test of the dual route: mean-ablate the top k concept-copying heads, or the top k
token-copying heads, for k = 1..``max_k``, and see how much each hurts copying a list of real
multi-token words (meaning copying) and a list of random-token "words" (verbatim copying).

As in the paper's ``vocablist_ablation.py``: each head's output is replaced by its mean over text at
every position (the means: :func:`text_means`), the rows are word lists listed twice
(:func:`~induction_nnsight.causal.dual_route.prompts.list_prompts`), and what is read is the probability
of the copied word's first token at the last position. The rows are built afresh, not the copying rows
the heads were ranked on, so the heads are tested on prompts not used to choose them. Every head set of
every k runs as one variant, batched (:func:`~induction_nnsight.causal.variants.run_variants`); the drop
(unablated minus ablated probability) is kept per row, and each point carries a 95% t interval over rows
(:func:`~induction_nnsight.stats.mean_interval`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ...models.layout import model_facts
from ...ndif.execution import Execution
from ...stats import mean_interval
from ..head_outputs import head_edit, head_mask, reference_means
from ..variants import run_variants
from .prompts import ListPrompts

__all__ = ["ablated_probabilities", "dissociation", "text_means"]


def text_means(model, reference: torch.Tensor, *, execution: Execution | None = None) -> dict[int, torch.Tensor]:
    """Every head's mean output over reference rows of text, over all their positions but the first.

    Args:
        model: An nnsight ``TransformersModel``.
        reference: ``[n_ref, pos]`` rows of text (BOS first, which is left out of the mean).
        execution: How the traces run; None for the defaults.

    Returns:
        ``layer -> [n_heads, d_head]``.
    """
    by_position = reference_means(model, reference, execution=execution)  # layer -> [pos, head, d_head]
    return {layer: means[1:].mean(0) for layer, means in by_position.items()}


def ablated_probabilities(
    model,
    prompts: ListPrompts,
    head_sets: Sequence[Sequence[tuple[int, int]]],
    means: dict[int, torch.Tensor],
    *,
    execution: Execution | None = None,
) -> torch.Tensor:
    """Per-row probability of the answer at the last position with each set of heads mean-ablated.

    Args:
        model: An nnsight ``TransformersModel``.
        prompts: List rows of one length and their answers.
        head_sets: Sets of ``(layer, head)``; an empty set is the unablated model.
        means: ``layer -> [n_heads, d_head]`` what an ablated head outputs (:func:`text_means`).
        execution: How the traces run; None for the defaults.

    Returns:
        ``[len(head_sets), batch]``.
    """
    facts = model_facts(model)
    tokens, wanted = prompts.tokens, prompts.answer
    batch = tokens.shape[0]
    masks = torch.stack([head_mask(s, facts.n_layers, facts.n_heads) for s in head_sets])
    # [1, n_heads, d_head]: the same at every position, broadcast by the edit; only the layers that hold an
    # ablated head travel with the trace (all 126 layers' means, expanded, made a 405B request 72 MB)
    ablated = torch.nonzero(masks.any(dim=(0, 2))).flatten().tolist()
    at_every_position = {layer: means[layer][None] for layer in ablated}

    def metric(logits: torch.Tensor, _tokens: torch.Tensor) -> torch.Tensor:
        # [rows, batch]: row i's probability in column i % batch, so the mean over a variant's rows
        # (what run_variants keeps) is each row's own value divided by batch
        probs = torch.softmax(logits[:, -1].float(), dim=-1)
        rows = torch.arange(logits.shape[0], device=logits.device)
        p = probs.gather(1, wanted.to(logits.device).repeat(logits.shape[0] // batch)[:, None])  # [rows, 1]
        one_hot = (rows[:, None] % batch == torch.arange(batch, device=logits.device)[None, :]).float()
        return p * one_hot

    edit = head_edit(model, masks, "mean", means=at_every_position)
    return run_variants(model, tokens, len(head_sets), edit, metric, execution=execution) * batch


def _summary(values: torch.Tensor) -> dict:
    low, high = mean_interval(values)
    return {"mean": float(values.mean()), "ci_low": float(low), "ci_high": float(high)}


def head_sets(heads: dict[str, list[tuple[int, int]]], ks: Sequence[int]) -> list[list[tuple[int, int]]]:
    """The unablated model, then for each ranking (in order) its top ``k`` heads for each ``k``."""
    return [[], *(list(ranked[:k]) for ranked in heads.values() for k in ks)]


def dissociation(
    model,
    tasks: dict[str, list[ListPrompts]],
    heads: dict[str, list[tuple[int, int]]],
    ks: Sequence[int],
    means: dict[int, torch.Tensor],
    *,
    execution: Execution | None = None,
) -> dict:
    """How much mean-ablating the top k heads of each ranking lowers the probability of copying each task's word.

    Args:
        model: An nnsight ``TransformersModel``.
        tasks: ``{"meaning": [...], "verbatim": [...]}`` list rows (grouped by length) of real multi-token
            words and of random-token words.
        heads: ``{"concept": [...], "token": [...]}`` each ranking of heads, best first (at least
            ``max(ks)`` long).
        ks: The set sizes ablated.
        means: ``layer -> [n_heads, d_head]`` what an ablated head outputs (:func:`text_means`).
        execution: How the traces run; None for the defaults.

    Returns:
        A dict: ``ks``; ``baseline`` maps each task to the unablated probability (mean, 95% interval);
        ``curve`` maps each ranking, then each task, to one point per k (``k``, ``mean``, ``ci_low``,
        ``ci_high``: the drop, unablated minus ablated probability, its mean over rows and 95% t
        interval); ``drop`` the same at the largest k; ``difference`` maps each ranking to the drop on
        meaning minus the drop on verbatim copying at the largest k (positive: the heads matter more for
        meaning; the two tasks' rows are drawn independently and paired by index).
    """
    names, ks = list(heads), list(ks)
    sets = head_sets(heads, ks)
    out: dict = {"ks": ks, "baseline": {}, "curve": {n: {} for n in names}, "drop": {n: {} for n in names}}
    drops: dict[tuple[str, str], torch.Tensor] = {}
    for task, groups in tasks.items():
        n_rows = sum(len(g.index) for g in groups)
        probs = torch.zeros(len(sets), n_rows)
        for group in groups:
            probs[:, group.index] = ablated_probabilities(model, group, sets, means, execution=execution)
        out["baseline"][task] = _summary(probs[0])
        for i, name in enumerate(names):
            points = []
            for j, k in enumerate(ks):
                drop = probs[0] - probs[1 + i * len(ks) + j]  # [rows]
                points.append({"k": k, **_summary(drop)})
            drops[name, task] = drop
            out["curve"][name][task] = points
            out["drop"][name][task] = points[-1]
    out["difference"] = {}
    for name in names:
        meaning, verbatim = drops[name, "meaning"], drops[name, "verbatim"]
        n = min(len(meaning), len(verbatim))
        out["difference"][name] = _summary(meaning[:n] - verbatim[:n])
    return out
