"""What ``explain`` found, as one typed result: :class:`Explanation` (``explain_results.json``), built from
the stages' results by the ``*_section`` functions (plain dicts in, plain dicts out), and drawn as the
report page by :func:`report_html` (its sentences from :mod:`~induction_nnsight.app.explain_text`, the page
from :mod:`~induction_nnsight.figures.explain_html`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..figures.explain_html import explain_html
from ..names import head_name
from .explain_text import SECTIONS, sweep_resolved
from .results import JobResult, unwritten

__all__ = [
    "KINDS",
    "SECTION_FIGURES",
    "Explanation",
    "ablation_section",
    "attention_section",
    "circuit_section",
    "dual_route_section",
    "heads_section",
    "icl_section",
    "loss_section",
    "report_html",
]

KINDS = ("induction", "previous_token")
"""The head kinds the heads stage scores."""


@dataclass(eq=False)
class Explanation(JobResult):
    """What ``explain`` measured, every number the report states (:meth:`to_json`, ``explain_results.json``),
    and its charts: a :class:`~induction_nnsight.app.results.JobResult` like every job's.

    Attributes:
        model: The model's name or path.
        model_facts: Its layout facts (layers, heads, ...).
        settings: Every setting, the intervals' method and the correction in force.
        heads: ``{"threshold", "n_heads", "induction": [head], "previous_token": [head]}``, each head
            ``{"name", "layer", "head", "score", "ci", "clearly_above"}``.
        loss: ``{"first_half", "repeated_half", "drop", "by_position" [pos - 1]}`` (nats).
        ablation: ``{"top_vs_random", "top_heads", "random_draws", "method", "sweep": [row], "n_verified",
            "estimator"}``; each sweep row ``{"name", "delta", "ci_low", "ci_high", "q",
            "distinguishable_from_zero"}`` of a head ablated exactly.
        circuit: ``{"targets": [...], "edges": [verified edge], "composition": [...]}``.
        attention: ``{"heads": [name], "scores": {name: score}, "n_tokens", "repeat"}``.
        icl: ``{"ran", "score": {"mean", "ci_low", "ci_high"}, "early", "late", "loss_at_early", "loss_at_late",
            "n_windows", "length", "source"}``.
        dual_route: ``{"ran": bool, "reason"}`` and, where it ran, ``"top_heads"``, ``"difference"``,
            ``"copying_unit"`` and ``"ablated"`` (the heads ablated per kind).
        cost: ``{"stages": {stage: {"seconds", "forward_passes", "backward_passes", "tokens"}}, "total": ...}``.
        sentences: ``{section: [sentence]}`` (:func:`~induction_nnsight.app.explain_text.sentences`).
        figures: ``{name: Plotly JSON}`` (not in :meth:`to_json`).
        attention_html: The interactive attention view's page (not in :meth:`to_json`).
    """

    model: str
    model_facts: dict
    settings: dict
    heads: dict
    loss: dict
    ablation: dict
    circuit: dict
    attention: dict
    icl: dict
    dual_route: dict
    cost: dict
    sentences: dict = field(default_factory=dict)
    figures: dict[str, str] = unwritten(default_factory=dict)
    attention_html: str = unwritten("")


def _head(entry: dict) -> dict:
    return {"name": head_name(entry["layer"], entry["head"]), **entry}


def heads_section(results: dict) -> dict:
    kinds = results["kinds"]
    section = {
        "threshold": {k: kinds[k]["threshold"] for k in KINDS},
        "correction": results["settings"].get("correction"),
        "n_heads": results["model_facts"]["n_layers"] * results["model_facts"]["n_heads"],
        "rows": results["settings"]["batch"],
    }
    for kind in KINDS:
        section[kind] = [_head(h) for h in kinds[kind]["heads"]]
        section[f"best_{kind}"] = _head(kinds[kind]["top"][0])
    return section


def loss_section(heads: dict, ablate: dict) -> dict:
    """The two halves' mean losses (heads pass) and the loss by position (the ablations' baseline, same rows)."""
    first, repeated = heads["mean_loss_first_half"], heads["mean_loss_repeated_half"]
    drop = None if first is None or repeated is None else round(first - repeated, 6)
    return {
        "first_half": first,
        "repeated_half": repeated,
        "drop": drop,
        "by_position": ablate["baseline"]["loss_by_position"],
    }


def ablation_section(ablate: dict) -> dict:
    sweep = ablate["sweep"]
    verified = sweep["verified"]
    rows = [
        {"name": head_name(r["layer"], r["head"]), **r}
        for r in sweep["rows"]
        if verified[r["layer"]][r["head"]] and r["delta"] is not None
    ]
    rows.sort(key=lambda r: -abs(r["delta"]))
    return {
        "metric": ablate["metric"],
        "method": ablate["settings"]["method"],
        "top_vs_random": ablate["top_vs_random"],
        "top_heads": [head_name(h["layer"], h["head"]) for h in ablate["top_induction_heads"]],
        "random_draws": ablate["settings"]["draws"],
        "estimator": ablate["attribution"]["estimator"],
        "n_verified": len(rows),
        "n_resolved": sum(sweep_resolved(r) for r in rows),
        "sweep": rows,
    }


def circuit_section(circuit: dict) -> dict:
    edges = [e for e in circuit["edges"] if e["verified"]]
    return {
        "targets": circuit["targets"],
        "paths": circuit["settings"]["paths"],
        "clean_repeated_half_loss": circuit["clean_repeated_half_loss"],
        "edges": edges,
        "composition": circuit["composition"],
    }


SECTION_FIGURES = {
    "where": ("induction scores", "previous-token scores", "loss by position"),
    "effect": ("ablation curve", "per-head ablation"),
    "inputs": ("circuit graph",),
    "attention": ("ICL loss by token",),
    "routes": ("dual-route copying",),
}
"""The charts each section of the report shows, by :attr:`Explanation.figures` name."""


def attention_section(heads: list[str], scores: dict[str, float], n_tokens: int, repeat: int) -> dict:
    """The attention stage: the heads shown, each one's exact-token induction score on the prompt."""
    return {"heads": heads, "scores": scores, "n_tokens": n_tokens, "repeat": repeat}


def icl_section(icl: dict | None, reason: str | None = None) -> dict:
    """The ICL stage's score with its interval, the loss at both token indices, and the text, or why it did
    not run (``icl`` None)."""
    if icl is None:
        return {"ran": False, "reason": reason}
    early, late = icl["positions"]
    return {
        "ran": True,
        "score": icl["olsson_icl_score"],
        "early": early,
        "late": late,
        "loss_at_early": icl["loss_at_early"],
        "loss_at_late": icl["loss_at_late"],
        "n_windows": icl["n_windows"],
        "length": icl["settings"]["length"],
        "source": icl["source"],
    }


def dual_route_section(dual: dict | None, reason: str | None) -> dict:
    """The dual-route stage's top heads per grid and the dissociation, or why it did not run (``dual`` None)."""
    if dual is None:
        return {"ran": False, "reason": reason}
    return {
        "ran": True,
        "reason": None,
        "top_heads": {
            grid: [{"name": head_name(h["layer"], h["head"]), **h} for h in heads]
            for grid, heads in dual["top_heads"].items()
        },
        "difference": dual["dissociation"]["difference"],
        "copying_unit": dual["scores"]["token_copying"]["unit"],
        "ablated": dual["dissociation"]["ks"][-1],
    }


def report_html(explanation: Explanation, rerun: str = "") -> str:
    """``explain.html``: the sentences by section with their charts, the attention view, ``rerun`` (the
    command line that reruns it) and the settings."""
    sections, figures = [], explanation.figures
    for key, heading in SECTIONS.items():
        section = {
            "heading": heading,
            "sentences": explanation.sentences.get(key, []),
            "figures": [(name, figures[name]) for name in SECTION_FIGURES.get(key, ()) if name in figures],
        }
        if key == "attention" and explanation.attention_html:
            section["page"] = (
                f"Where {', '.join(explanation.attention['heads'])} attend on the prompt shown twice: hover a token",
                explanation.attention_html,
            )
        if key == "cost":
            section["text"] = rerun
            section["table"] = [(k, v) for k, v in explanation.settings.items()]
        sections.append(section)
    facts = explanation.model_facts
    subtitle = (
        f"{facts['architecture']}, {facts['n_layers']} layers x {facts['n_heads']} heads; every sentence is generated "
        "from a measured result, with its 95% interval where it has one; a claim whose interval includes zero or that "
        "does not survive the Benjamini-Hochberg correction is stated as not resolved."
    )
    return explain_html(f"How {explanation.model} does induction", sections, subtitle=subtitle)
