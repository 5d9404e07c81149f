"""The patching job behind ``induction-nnsight patch``: settings in, results and chart files out.

A clean/corrupted pair (a text pair with a logit-difference, probability or loss metric, or
repeated random tokens whose first copy is corrupted), then up to three sites: every head's
output (with attribution patching against it), the residual stream after each layer at each
position, and one head's queries, keys or values.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from ..causal.ablation.estimators import DEFAULT_ESTIMATOR, DEFAULT_STEPS, ESTIMATORS, Estimator, head_estimate
from ..causal.ablation.search import compare
from ..causal.cost import Cost
from ..causal.metrics import metric_names, pearson
from ..causal.pairs import DEFAULT_CLEAN_TEXT, DEFAULT_CORRUPTED_TEXT
from ..causal.patching.engine import patch_heads, patch_qkv, patch_residual
from ..errors import InductionError
from ..figures.causal import attribution_scatter_figure
from ..models.layout import model_facts
from ..names import check_heads, head_name, parse_heads
from ..ndif.execution import DEFAULT_MAX_TOKENS, Execution
from ..scores.ranking import rank_heads
from .causal_options import SeededConfig
from .jobs import ScanConfig, check_causal_tokens, check_indices, model_for
from .options import int_list, no_option, option, positive, word_list
from .outputs import rounded, table
from .patch_pairs import pair_for
from .results import JobResult, optional
from .run_context import RunContext

__all__ = ["METRICS", "PAIRS", "SITES", "PatchConfig", "PatchJobResult", "run_patch"]

PAIRS = ("text", "repeated")
SITES = ("heads", "residual", "qkv")
METRICS = metric_names()  # the registered metrics of one value per row (causal/metrics.py)


@dataclass
class PatchConfig(SeededConfig):
    """Settings of ``induction-nnsight patch`` (model, tokens and NDIF settings as in :class:`ScanConfig`)."""

    pair: str = option(
        "text",
        help="text: --clean/--corrupted texts; repeated: random tokens whose first copy is corrupted "
        "(uses --batch, --seq-len ...)",
        choices=PAIRS,
    )
    clean: str = option(DEFAULT_CLEAN_TEXT, help="clean text")
    corrupted: str = option(DEFAULT_CORRUPTED_TEXT, help="corrupted text, as many tokens as the clean one")
    correct: str | None = option(None, help="token the clean text should predict", default_text="the induction guess")
    wrong: str | None = option(
        None,
        help="token to compare with; makes the metric the logit difference",
        default_text="the corrupted text's induction guess",
    )
    metric: str | None = option(
        None,
        help=f"text pairs: one of {', '.join(METRICS)} (default: logit_diff with a wrong token, else prob)",
        choices=METRICS,
    )
    top: int = no_option(ScanConfig.top)  # no table of top heads
    batch: int = 8
    seq_len: int = 10
    sites: list[str] = option(default_factory=lambda: list(SITES), help=f"any of {','.join(SITES)}", parse=word_list)
    head: str | None = option(None, help="head whose queries/keys/values are patched", default_text="best head patched")
    layers: list[int] | None = option(None, help="only these layers (heads and residual grids)", parse=int_list)
    positions: list[int] | None = option(None, help="only these positions (residual and q/k/v grids)", parse=int_list)
    max_tokens: int = option(DEFAULT_MAX_TOKENS, help="tokens per batched trace", parse=positive)
    attribution: str = option(
        DEFAULT_ESTIMATOR, help="head estimate beside the head grid (docs/estimate.md)", choices=ESTIMATORS
    )
    steps: int = option(DEFAULT_STEPS, help="integrated-gradient steps of --attribution ig", parse=positive)

    def validate(self) -> None:
        """Check what can be checked before a model is loaded."""
        if self.pair not in PAIRS:
            raise InductionError(f"--pair must be one of {', '.join(PAIRS)}, got {self.pair!r}")
        check_causal_tokens(self)
        unknown = [s for s in self.sites if s not in SITES]
        if unknown or not self.sites:
            raise InductionError(f"--sites takes a comma-separated subset of {', '.join(SITES)}, got {self.sites}")
        if self.metric is not None and self.metric not in METRICS:
            raise InductionError(f"--metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if self.seeds > 1 and self.pair != "repeated":
            raise InductionError("--seeds draws random tokens: pass --pair repeated, or drop --seeds")
        if self.head is not None and len(parse_heads(self.head, "--head")) != 1:
            raise InductionError("--head takes one head, such as L18H6")
        if "qkv" in self.sites and self.head is None and "heads" not in self.sites:
            raise InductionError("patching q/k/v needs a head: pass --head L18H6 (or add heads to --sites)")

    def validate_for(self, model) -> None:
        """Check the repeated tokens, ``--head`` and ``--layers`` against the model (loaded, or its weightless
        architecture; ``--positions`` is checked once the pair is tokenized)."""
        if self.pair == "repeated":
            super().validate_for(model)
        facts = model_facts(model)
        if self.head is not None:
            check_heads(parse_heads(self.head, "--head"), facts.n_layers, facts.n_heads, "--head")
        check_indices(self.layers, facts.n_layers, "--layers", "layer")


def _grid(result, **extra) -> dict:
    """A grid's JSON: values, recovery and its 95% interval over rows (null from a single row)."""
    return {
        "clean": rounded(result.clean),
        "corrupted": rounded(result.corrupted),
        "values": table(result.values),
        "recovery": table(result.recovery),
        "recovery_ci_low": table(result.ci_low),
        "recovery_ci_high": table(result.ci_high),
        "rows": result.rows,
        "columns": result.columns,
        "cost": result.cost.as_dict(),
        **extra,
    }


def _columns(columns, pair) -> list[str]:
    """Grid columns named by position and, for a text pair, the token there."""
    return [f"{c} {pair.labels[int(c)]!r}" if pair.labels and c != "all" else c for c in columns]


def _heads_site(model, pair, config: PatchConfig, facts, execution: Execution, subtitle) -> tuple[dict, dict]:
    """Every head's output patched, attribution patching beside it."""
    started = time.perf_counter()
    heads = patch_heads(model, pair, layers=config.layers, execution=execution)
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    estimator = Estimator(config.attribution, config.steps)
    found = head_estimate(
        model, pair.corrupted, pair.metric, "source", source=pair.clean, estimator=estimator, execution=execution
    )
    estimate = found.estimate
    attribution_seconds = time.perf_counter() - started
    change = heads.values - heads.corrupted
    r = pearson(estimate, change)
    agreement = compare(estimate, change, 10)
    best = (rank_heads(heads.recovery, 1) or [(0, 0)])[0]  # no recovery at all (clean == corrupted): L0H0
    results = {
        "heads": _grid(heads, seconds=round(seconds, 2), best=list(best)),
        "attribution": {
            "estimate": table(estimate),
            "recovery_estimate": table(estimate / (heads.clean - heads.corrupted)),
            "pearson_with_exhaustive": rounded(r),
            "seconds": round(attribution_seconds, 2),
            "estimator": found.estimator,
            "steps": found.steps,
            "spearman_with_exhaustive": rounded(agreement["spearman"]),
            "recall_top10": rounded(agreement["recall_top"]),
            "sign_agreement_top10": rounded(agreement["sign_agreement_top"]),
            "cost": found.cost.as_dict(),
        },
    }
    labels = [head_name(layer, h) for layer in range(facts.n_layers) for h in range(facts.n_heads)]
    files = {
        "patching_heads.json": heads.figure(
            title=f"Recovery when one head's clean output is patched in — {config.model}",
            subtitle=subtitle,
        ).to_json(),
        "patching_attribution.json": attribution_scatter_figure(
            change.flatten().tolist(),
            estimate.flatten().tolist(),
            labels,
            correlation=r,
            title=f"Attribution patching vs exhaustive head patching — {config.model}",
            subtitle=subtitle,
            axis_title=f"change in {pair.metric.label}",
        ).to_json(),
    }
    return results, files


def _residual_site(model, pair, config: PatchConfig, execution: Execution, subtitle) -> tuple[dict, dict]:
    """The residual stream after each layer, patched at one position at a time."""
    started = time.perf_counter()
    residual = patch_residual(model, pair, layers=config.layers, positions=config.positions, execution=execution)
    results = {"residual": _grid(residual, seconds=round(time.perf_counter() - started, 2))}
    files = {
        "patching_residual.json": residual.figure(
            x_labels=_columns(residual.columns, pair),
            subtitle=subtitle,
            title=(
                f"Recovery when the clean residual stream after a layer is patched in at one position — {config.model}"
            ),
        ).to_json()
    }
    return results, files


def _qkv_site(model, pair, config: PatchConfig, head, execution: Execution, subtitle) -> tuple[dict, dict]:
    """One head's queries, keys or values patched, at each position and at all at once."""
    layer, index = head
    started = time.perf_counter()
    qkv = patch_qkv(model, pair, layer, index, positions=config.positions, execution=execution)
    results = {"qkv": _grid(qkv, head=[layer, index], seconds=round(time.perf_counter() - started, 2))}
    files = {
        "patching_qkv.json": qkv.figure(
            x_labels=_columns(qkv.columns, pair),
            y_labels=["queries", "keys", "values"],
            x_title="position (token), or all at once",
            y_title=f"{head_name(layer, index)} input patched",
            title=f"Recovery when {head_name(layer, index)}'s clean queries, keys or values are patched in "
            f"— {config.model}",
            subtitle=subtitle,
        ).to_json()
    }
    return results, files


@dataclass(eq=False)
class PatchJobResult(JobResult):
    """What patching found (``patching_results.json``, in this order); a site not patched is left out.

    Attributes:
        model: The model's name or path.
        model_facts: Its layout facts, with ``name``.
        settings: The :class:`PatchConfig` as a dict, the intervals' method and the rows.
        pair: The clean/corrupted pair, in words.
        metric: The metric's label (with its unit).
        n_tokens_per_row: Tokens of each row.
        heads: Every head's output patched: the grid with ``clean``, ``corrupted``, ``recovery`` (and its
            interval) ``[n_layers][n_heads]`` and the ``best`` head.
        attribution: The head estimate beside the head grid.
        residual: The residual stream after each layer patched at each position.
        qkv: One head's queries, keys and values patched.
        cost: Every pass the job ran.
    """

    model: str
    model_facts: dict
    settings: dict
    pair: str
    metric: str
    n_tokens_per_row: int
    heads: dict | None = optional()
    attribution: dict | None = optional()
    residual: dict | None = optional()
    qkv: dict | None = optional()
    cost: dict | None = None


def run_patch(
    config: PatchConfig, model=None, progress: bool = True, context: RunContext | None = None
) -> tuple[PatchJobResult, dict[str, str]]:
    """Patching job: head-output, residual-stream and q/k/v grids, attribution patching.

    Args:
        config: The settings.
        model: An already loaded model (loaded from ``config.model`` when None).
        progress: Show progress bars over the job's traces.
        context: How the job runs (device, plan, request budgets, journal; None: ``RunContext()``).

    Returns:
        ``(result, files)``: the :class:`PatchJobResult` and ``patching_*.json`` chart texts
        plus ``patching_results.json``.
    """
    config.validate()
    context = context or RunContext()
    model = model_for(config, model, context)
    execution = context.execution(config, progress)
    facts = model_facts(model)
    config.validate_for(model)
    pair = pair_for(model, config)
    check_indices(config.positions, pair.clean.shape[1], "--positions", "position")
    results = PatchJobResult(
        model=config.model,
        model_facts={**asdict(facts), "name": config.model},
        settings={**asdict(config), **config.interval_settings(), "rows": int(pair.clean.shape[0])},
        pair=pair.description,
        metric=pair.metric.label,
        n_tokens_per_row=int(pair.clean.shape[1]),
    )
    files: dict[str, str] = {}
    title_tail = pair.description  # the subtitle of every chart
    if "heads" in config.sites:
        site_results, site_files = _heads_site(model, pair, config, facts, execution, title_tail)
        results.heads, results.attribution = site_results["heads"], site_results["attribution"]
        files.update(site_files)
    if "residual" in config.sites:
        site_results, site_files = _residual_site(model, pair, config, execution, title_tail)
        results.residual = site_results["residual"]
        files.update(site_files)
    if "qkv" in config.sites:
        head = parse_heads(config.head, "--head")[0] if config.head is not None else tuple(results.heads["best"])
        site_results, site_files = _qkv_site(model, pair, config, head, execution, title_tail)
        results.qkv = site_results["qkv"]
        files.update(site_files)
    results.cost = _total_cost(results)
    files["patching_results.json"] = results.to_json()
    return results, files


def _total_cost(results: PatchJobResult) -> dict:
    """Every pass the job ran: each site's grid and the head estimate beside the head grid."""
    grids = (results.heads, results.residual, results.qkv)
    parts = [grid["cost"] for grid in grids if grid is not None]
    parts += [results.attribution["cost"]] if results.attribution is not None else []
    total = sum((Cost(p["forward_passes"], p["backward_passes"], p["tokens"]) for p in parts), Cost())
    return total.as_dict()
