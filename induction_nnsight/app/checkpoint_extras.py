"""What else ``dynamics`` computes on each checkpoint while it is loaded, beside the heads pass: the
best induction head's strongest ``k``-path source (path patching) and in-context learning on a
natural text; each an ``(name, f)`` for
:func:`~induction_nnsight.dynamics.scoring.score_checkpoints`' ``also`` (the name keys the journal)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import torch

from ..causal.circuit import CircuitMeasure, circuit
from ..dynamics.phase import best_heads
from ..models.layout import model_facts
from ..names import head_name
from ..ndif.execution import Execution
from ..scores.icl import text_icl
from ..scores.ranking import rank_heads
from .outputs import rounded

__all__ = ["strongest_k_edge", "text_icl_scorer", "together", "with_k_edge"]

Scorer = tuple[str, Callable[[object, object, dict], dict]]


def strongest_k_edge(model, probe, target: tuple[int, int]) -> dict | None:
    """The earlier head whose removal from ``target``'s keys lowers its induction score most (path patching).

    Returns:
        ``{"source", "target", "effect", "ci_low", "ci_high", "loss_effect", "loss_ci_low", "loss_ci_high"}``
        (as in ``circuit_results.json``; the intervals null where the circuit gives none), or None for
        a target in layer 0 (nothing earlier feeds it).
    """
    if target[0] == 0:
        return None
    found = circuit(
        model,
        probe.tokens,
        probe.period,
        measure=CircuitMeasure(targets=[target], paths=("k",), composition=False),
        bos=probe.first_start == 1,
        execution=Execution(progress=False),
    )
    facts = model_facts(model)
    effects = found.table("k", facts.n_layers, facts.n_heads)[0].view(facts.n_layers, facts.n_heads)
    ranked = rank_heads(effects, 1, descending=False)  # the most negative effect first
    if not ranked:
        return None
    edge = next(e for e in found.edges if e.source == ranked[0])
    effect_ci = edge.effect_ci or (None, None)  # the circuit's bootstrap over rows (None where it has none)
    loss_ci = edge.loss_ci or (None, None)
    return {
        "source": head_name(edge.source),
        "target": head_name(target),
        "effect": rounded(edge.effect),
        "ci_low": None if effect_ci[0] is None else rounded(effect_ci[0]),
        "ci_high": None if effect_ci[1] is None else rounded(effect_ci[1]),
        "loss_effect": rounded(edge.loss_effect),
        "loss_ci_low": None if loss_ci[0] is None else rounded(loss_ci[0]),
        "loss_ci_high": None if loss_ci[1] is None else rounded(loss_ci[1]),
    }


def with_k_edge(model, probe, entry: dict) -> dict:
    """``{"strongest_k_edge": ...}`` of the best induction head of a scored checkpoint (while it is loaded)."""
    n_heads = len(entry["scores"]["induction"][0])
    scores = torch.tensor([[float("nan") if v is None else v for v in row] for row in entry["scores"]["induction"]])
    index = int(best_heads(scores[None])[1][0])  # the head dynamics_results.json reports
    return {"strongest_k_edge": strongest_k_edge(model, probe, (index // n_heads, index % n_heads))}


def together(scorers: list) -> tuple[str, Callable] | None:
    """One ``also`` for :func:`score_checkpoints` from several ``(name, f)`` (None entries skipped)."""
    chosen = [s for s in scorers if s is not None]
    if not chosen:
        return None

    def run_all(model, probe, entry: dict) -> dict:
        return {key: value for _, f in chosen for key, value in f(model, probe, entry).items()}

    return "+".join(name for name, _ in chosen), run_all


def text_icl_scorer(
    text: tuple[str, str], windows: tuple[int, int], positions: tuple[int, int], bos: bool, execution: Execution
) -> Scorer:
    """Each checkpoint's ``{"text_icl": ...}`` on ``text`` (``(text, source)``): the mean loss at both
    ``positions`` over ``windows`` and Olsson's score with its interval
    (:func:`~induction_nnsight.scores.icl.text_icl`)."""
    body, source = text
    digest = hashlib.sha256(json.dumps([body, windows, positions, bos]).encode()).hexdigest()[:16]
    early, late = positions

    def score(model, probe, entry: dict) -> dict:
        found = text_icl(model, body, windows, positions, bos=bos, execution=execution)
        mean = found.losses.mean(0)
        return {
            "text_icl": {
                "source": source,
                "loss_at_early": rounded(mean[early - 1]),
                "loss_at_late": rounded(mean[late - 1]),
                "olsson_icl_score": {key: rounded(value) for key, value in found.score.items()},
            }
        }

    return f"text_icl:{digest}", score
