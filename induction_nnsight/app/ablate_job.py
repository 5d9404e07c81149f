"""The ablation job behind ``induction-nnsight ablate``: settings in, results and chart files out.

The baseline scan, an optional head set ablated together, the top-k induction heads against
k random heads, and the per-head sweep with its attribution estimate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ..causal.ablation.estimators import DEFAULT_ESTIMATOR, DEFAULT_STEPS, ESTIMATORS
from ..causal.ablation.sweep import (
    RandomDraws,
    ablate_heads,
    ablation_curve,
    ablation_rows,
    repeated_half_metric,
)
from ..causal.intervals import effect_interval
from ..causal.metrics import default_icl_positions, icl_score, repeated_half_loss
from ..errors import InductionError
from ..models.layout import model_facts
from ..names import check_heads, parse_heads
from ..ndif.execution import DEFAULT_MAX_TOKENS
from ..scores.scan import scan
from .ablate_search import SEARCHES, ablate_cost, attribution_figure, fraction, sweep_section
from .causal_options import CausalConfig, ablation_for, pooled_tokens
from .jobs import ScanConfig, check_causal_tokens, check_indices, model_for
from .options import int_list, no_option, option, positive
from .outputs import rounded, table
from .report import top_heads
from .results import JobResult, optional
from .run_context import RunContext

__all__ = ["AblateConfig", "AblateJobResult", "Losses", "TopVsRandom", "run_ablate"]


@dataclass
class AblateConfig(CausalConfig):
    """Settings of ``induction-nnsight ablate`` (model, tokens and NDIF settings as in :class:`ScanConfig`;
    the method, its rows and ``--seeds`` as in :class:`~.causal_options.CausalConfig`)."""

    top: int = no_option(ScanConfig.top)  # no table of top heads
    batch: int = 8
    seq_len: int = 30
    heads: str | None = option(None, help="also ablate this set of heads together, e.g. L18H6,L17H3")
    top_k: int = option(5, help="top induction heads in the curve", parse=positive)
    draws: int = option(5, help="random head sets per k", parse=positive)
    same_layers: bool = option(False, help="draw each random head from the layer of the matching top head")
    sweep: bool = option(True, help="skip the per-head sweep")
    layers: list[int] | None = option(None, help="sweep only these layers, e.g. 16,17,18", parse=int_list)
    icl_early: list[int] | None = option(
        None, help="loss positions averaged as 'early' in the ICL score", parse=int_list, default_text="mid first copy"
    )
    icl_late: list[int] | None = option(
        None,
        help="loss positions averaged as 'late'",
        parse=int_list,
        default_text="the same token in the repeat",
    )
    max_tokens: int = option(DEFAULT_MAX_TOKENS, help="tokens per batched trace", parse=positive)
    attribution: str = option(
        DEFAULT_ESTIMATOR, help="head estimate beside the sweep (docs/estimate.md)", choices=ESTIMATORS
    )
    steps: int = option(DEFAULT_STEPS, help="integrated-gradient steps of --attribution ig", parse=positive)
    search: str = option(
        "exhaustive",
        help="exhaustive: ablate every head; estimate: rank the heads by --attribution, ablate only the strongest",
        choices=SEARCHES,
    )
    verify: int = option(20, help="heads ablated exactly under --search estimate", parse=positive)
    verify_fraction: float | None = option(
        None,
        help="under --search estimate, go on verifying while the next head's |estimate| is at least this fraction "
        "of the smallest |effect| among the --verify strongest verified",
        parse=fraction,
    )

    def validate(self) -> None:
        """Check what can be checked before a model is loaded."""
        check_causal_tokens(self)
        self.validate_method()
        if self.attribution not in ESTIMATORS or self.search not in SEARCHES:
            raise InductionError(
                f"--attribution takes {', '.join(ESTIMATORS)} and --search {', '.join(SEARCHES)}: "
                f"got {self.attribution!r}, {self.search!r}"
            )
        if self.steps < 1 or self.verify < 1:
            raise InductionError("--steps and --verify must be at least 1")
        if self.top_k < 1 or self.draws < 1:
            raise InductionError("--top-k and --draws must be at least 1")
        if self.heads is not None:
            parse_heads(self.heads)
        if (self.icl_early is None) != (self.icl_late is None):
            raise InductionError("pass both --icl-early and --icl-late, or neither")

    def validate_for(self, model) -> None:
        """Check the settings against the model (loaded, or its weightless architecture), before any forward pass."""
        super().validate_for(model)
        facts = model_facts(model)
        if self.heads is not None:
            check_heads(parse_heads(self.heads), facts.n_layers, facts.n_heads)
        check_indices(self.layers, facts.n_layers, "--layers", "layer")
        total = facts.n_layers * facts.n_heads
        if not self.same_layers and self.top_k > total // 2:
            raise InductionError(
                f"cannot draw {self.top_k} random heads outside the top {self.top_k} of "
                f"{total}: pass --top-k {total // 2} or less"
            )


@dataclass
class Losses:
    """The loss by position of one run (``[pos - 1]``, nats) with its repeated-half mean and ICL score."""

    loss_by_position: list
    repeated_half_loss: float | None
    icl_score: float | None


@dataclass
class TopVsRandom:
    """The top ``k`` induction heads ablated together against ``k`` random heads (the repeated-half loss, nats;
    95% intervals over rows)."""

    k: int
    baseline: float | None
    top: float | None
    top_ci: list
    random_mean: float | None
    random_mean_ci: list
    random_std: float | None
    random_min: float | None
    random_max: float | None


@dataclass(eq=False)
class AblateJobResult(JobResult):
    """What the ablations found (``ablation_results.json``, in this order).

    Attributes:
        model: The model's name or path.
        model_facts: Its layout facts, with ``name``.
        settings: The :class:`AblateConfig` as a dict, with the intervals' method.
        metric: What the curve and sweep measure.
        icl_positions: ``{"early": [pos], "late": [pos]}`` of the ICL score.
        baseline: The unablated run's :class:`Losses`.
        top_induction_heads: The top ``--top-k`` heads by induction score.
        ablated: ``--heads`` ablated together: ``{"heads", **Losses, "repeated_half_loss_change"}`` (left out
            without ``--heads``).
        curve: The top-k against random-k curve, each k.
        top_vs_random: Its :class:`TopVsRandom` at ``k = --top-k``.
        sweep: The per-head sweep (left out under ``--no-sweep``).
        attribution: The head estimate beside the sweep (left out under ``--no-sweep``).
        cost: Every pass the job ran.
    """

    model: str
    model_facts: dict
    settings: dict
    metric: str
    icl_positions: dict
    baseline: Losses
    top_induction_heads: list[dict]
    ablated: dict | None = optional()
    curve: dict | None = None
    top_vs_random: TopVsRandom | None = None
    sweep: dict | None = optional()
    attribution: dict | None = optional()
    cost: dict | None = None


def _losses(loss: torch.Tensor, config: AblateConfig, early, late) -> Losses:
    """The loss vector with its repeated-half mean and ICL score."""
    return Losses(
        loss_by_position=table(loss),
        repeated_half_loss=rounded(repeated_half_loss(loss, config.seq_len, config.bos)),
        icl_score=rounded(icl_score(loss, early, late)),
    )


def _curve(curve, config: AblateConfig) -> tuple[dict, TopVsRandom]:
    """The top-k against random-k curve and its summary at k = ``top_k`` (95% intervals over rows)."""
    at_k = curve.random[:, -1]
    spread = config.draws > 1
    details = {
        "ks": curve.ks,
        "baseline": rounded(curve.baseline),
        "top": table(curve.top),
        "top_ci_low": table(curve.top_ci[0]),
        "top_ci_high": table(curve.top_ci[1]),
        "random_mean_ci_low": table(curve.random_ci[0]),
        "random_mean_ci_high": table(curve.random_ci[1]),
        "random": table(curve.random),
        "random_mean": table(curve.random.mean(dim=0)),
        "random_std": table(curve.random.std(dim=0) if spread else torch.zeros(len(curve.ks))),
        "random_heads": [[list(h) for h in draw] for draw in curve.random_heads],
        "random_from": "same layers" if config.same_layers else "all layers",
    }
    summary = TopVsRandom(
        k=config.top_k,
        baseline=rounded(curve.baseline),
        top=rounded(curve.top[-1]),
        top_ci=[rounded(curve.top_ci[0, -1]), rounded(curve.top_ci[1, -1])],
        random_mean=rounded(at_k.mean()),
        random_mean_ci=[rounded(curve.random_ci[0, -1]), rounded(curve.random_ci[1, -1])],
        random_std=rounded(at_k.std() if spread else 0.0),
        random_min=rounded(at_k.min()),
        random_max=rounded(at_k.max()),
    )
    return details, summary


def run_ablate(
    config: AblateConfig, model=None, progress: bool = True, context: RunContext | None = None
) -> tuple[AblateJobResult, dict[str, str]]:
    """Ablation job: per-head sweep, top-k against random-k curve, attribution, optional head set.

    Args:
        config: The settings.
        model: An already loaded model (loaded from ``config.model`` when None).
        progress: Show progress bars over the job's traces.
        context: How the job runs (device, plan, request budgets, journal; None: ``RunContext()``).

    Returns:
        ``(result, files)``: the :class:`AblateJobResult` and
        ``{"ablation_heads.json", "ablation_curve.json", "ablation_results.json"} -> text``
        (``ablation_heads.json`` only with the sweep).
    """
    config.validate()
    context = context or RunContext()
    model = model_for(config, model, context)
    execution = context.execution(config, progress)
    facts = model_facts(model)
    config.validate_for(model)
    tokens = pooled_tokens(model, config)
    ablation = ablation_for(model, config, tokens)
    metric = repeated_half_metric(config.seq_len, config.bos)
    early, late = (
        (config.icl_early, config.icl_late)
        if config.icl_early is not None
        else default_icl_positions(config.seq_len, config.bos)
    )
    base = scan(model, tokens, config.seq_len, execution=execution)
    ranked = top_heads(base.induction_scores, config.top_k)
    results = AblateJobResult(
        model=config.model,
        model_facts={**asdict(facts), "name": config.model},
        settings={**asdict(config), **config.interval_settings()},
        metric="mean loss on the repeated half (nats)",
        icl_positions={"early": early, "late": late},
        baseline=_losses(base.loss_by_position, config, early, late),
        top_induction_heads=ranked,
    )
    if config.heads is not None:
        heads = parse_heads(config.heads)
        loss = ablate_heads(model, tokens, heads, method=ablation, execution=execution)
        results.ablated = {"heads": [list(h) for h in heads], **asdict(_losses(loss, config, early, late))}
        rows = ablation_rows(model, tokens, [[], heads], metric, method=ablation, execution=execution)
        change, low, high = effect_interval(rows[1:], rows[0])  # the repeated-half loss, row by row
        results.ablated["repeated_half_loss_change"] = {
            "value": rounded(change[0]),
            "ci_low": rounded(low[0]),
            "ci_high": rounded(high[0]),
        }
    curve = ablation_curve(
        model,
        tokens,
        metric,
        [(h["layer"], h["head"]) for h in ranked],
        draws=RandomDraws(config.draws, config.same_layers, config.seed),
        method=ablation,
        execution=execution,
    )
    results.curve, results.top_vs_random = _curve(curve, config)
    subtitle = f"{config.describe_tokens()}{config.describe_seeds()}, {config.describe_method()} ablation"
    files = {
        "ablation_curve.json": curve.figure(
            title=f"Repeated-half loss, top-k induction heads vs k random heads ablated — {config.model}",
            subtitle=f"{subtitle}, {config.draws} random draws{' in the same layers' if config.same_layers else ''}",
            y_title="repeated-half loss (nats)",
        ).to_json()
    }
    if config.sweep:
        # the per-head sweep (or --search estimate) and the head estimate beside it (app/ablate_search.py)
        results.sweep, results.attribution, sweep = sweep_section(model, tokens, metric, ablation, config, execution)
        files["ablation_heads.json"] = sweep.figure(  # its top cells: the largest changes either way
            colorbar_title="Δ repeated-half loss (nats)",
            subtitle=subtitle,
            title=f"Change in repeated-half loss when one head is ablated — {config.model}",
        ).to_json()
        if config.search == "exhaustive":
            figure = attribution_figure(results.attribution, results.sweep, config.model, subtitle)
            files["ablation_attribution.json"] = figure.to_json()
    n_ref = 0 if ablation.method != "mean" else ablation.reference.shape[0]
    results.cost = ablate_cost(results, config, tuple(tokens.shape), n_ref, execution).as_dict()
    files["ablation_results.json"] = results.to_json()
    return results, files
