"""``induction-nnsight dual-route``: token and concept induction heads, their copying scores and the
dissociation test; ``dual_route_results.json`` and four charts."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..causal.dual_route import GRIDS, DualRouteProbe, DualRouteResult, dual_route
from ..errors import InductionError
from ..figures.dual_route import dissociation_figure, dual_route_heatmap, dual_route_scatter
from ..models.layout import model_facts
from ..names import head_name
from ..probes.entities import ENTITY_SOURCE, entity_names, tokenized_entities
from .jobs import ScanConfig, model_for
from .options import like, option, positive
from .outputs import cost_line, rounded, table, to_json
from .report import with_interval
from .run_context import RunContext, ndif_option

__all__ = ["DualRouteConfig", "dual_route_results", "dual_route_summary", "run_dual_route"]

UNITS = {
    "token_attention": "value-weighted attention",
    "concept_attention": "value-weighted attention",
    "entity_first_attention": "value-weighted attention",
    "token_copying": "change of log-probability (nats)",
    "concept_copying": "change of log-probability (nats)",
}


@dataclass
class DualRouteConfig:
    """Settings of ``induction-nnsight dual-route``."""

    model: str = like(ScanConfig, "model")
    n_attention: int = option(
        32, help="prompts of each kind (entity, random span) for the attention scores", flag="--prompts", parse=positive
    )
    n_copying: int = option(
        8,
        help="prompts of each kind for the copying scores and the dissociation test",
        flag="--copying-prompts",
        parse=positive,
    )
    n_random: int = option(
        10, help="random tokens before the span, repeated after the newline", flag="--random-len", parse=positive
    )
    seed: int = like(ScanConfig, "seed")
    low: int = like(ScanConfig, "low")
    high: int = like(ScanConfig, "high")
    top: int = option(
        5, help="top heads listed per score, and ablated per kind in the dissociation test", parse=positive
    )
    attn_implementation: str | None = like(ScanConfig, "attn_implementation")
    remote: bool = ndif_option("remote")
    ndif_host: str | None = ndif_option("ndif_host")
    timeout: float = ndif_option("timeout")

    def validate(self) -> None:
        """Check what can be checked before a model is loaded."""
        for name in ("n_attention", "n_copying", "n_random", "top"):
            if getattr(self, name) < 1:
                raise InductionError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.low < self.high:
            raise InductionError(f"--low {self.low} and --high {self.high}: pass 0 <= low < high")
        if not self.timeout > 0:
            raise InductionError(f"--timeout must be a positive number of seconds, got {self.timeout}")

    def probe(self) -> DualRouteProbe:
        """The :class:`~induction_nnsight.causal.dual_route.DualRouteProbe` these settings describe."""
        return DualRouteProbe(
            n_attention=self.n_attention,
            n_copying=self.n_copying,
            n_random=self.n_random,
            seed=self.seed,
            low=self.low,
            high=self.high,
            top=self.top,
        )

    def describe(self) -> str:
        """Chart subtitle."""
        return (
            f"{self.n_attention} attention and {self.n_copying} copying prompts per kind, random tokens in "
            f"[{self.low}, {self.high}), seed {self.seed}; 95% bootstrap intervals over prompts"
        )


def _heads(result: DualRouteResult, grid: str) -> list[dict]:
    s = result.scores[grid]
    return [
        {
            "layer": layer,
            "head": head,
            "score": rounded(s["mean"][layer, head]),
            "ci": [rounded(s["ci_low"][layer, head]), rounded(s["ci_high"][layer, head])],
        }
        for layer, head in result.top[grid]
    ]


def _rounded_tree(value):
    if isinstance(value, dict):
        return {k: _rounded_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded_tree(v) for v in value]
    return rounded(value) if isinstance(value, float) else value


def dual_route_results(result: DualRouteResult, config: DualRouteConfig, facts: dict) -> dict:
    """The results file's content: settings, entities, every grid with its interval, the top heads, the
    dissociation test."""
    return {
        "model": config.model,
        "model_facts": facts,
        "settings": asdict(config),
        "entities": {"source": ENTITY_SOURCE, **result.entities},
        "scores": {
            grid: {"unit": UNITS[grid], **{k: table(v) for k, v in result.scores[grid].items()}} for grid in GRIDS
        },
        "top_heads": {grid: _heads(result, grid) for grid in GRIDS},
        # split-half reliability over the heads of each grid: how far its ranking would repeat on new prompts
        "split_half_reliability": {
            grid: rounded(result.reliability[grid]) for grid in GRIDS if grid in result.reliability
        },
        "dissociation": _rounded_tree(result.dissociation),
        "cost": result.cost.as_dict(),
    }


def run_dual_route(
    config: DualRouteConfig, model=None, progress: bool = True, context: RunContext | None = None
) -> tuple[dict, dict[str, str]]:
    """Run the dual-route job.

    Args:
        config: The settings.
        model: An already loaded model (loaded from ``config.model`` when None).
        progress: Show progress bars over the job's traces.
        context: How the job runs (device, plan, request budgets, journal; None: ``RunContext()``).

    Returns:
        ``(results, files)``: ``dual_route_results.json``, ``dual_route_scatter.json`` (attention),
        ``dual_route_copying_scatter.json``, ``dual_route_heatmaps_<grid>.json`` and
        ``dual_route_dissociation.json``.
    """
    config.validate()
    context = context or RunContext()
    model = model_for(config, model, context)
    facts = model_facts(model)
    entities = tokenized_entities(model.tokenizer, entity_names(), vocab_size=facts.vocab_size)
    result = dual_route(model, entities, probe=config.probe(), execution=context.execution(config, progress))
    results = dual_route_results(result, config, {**asdict(facts), "name": config.model})
    sub = config.describe()
    name = config.model
    files = {"dual_route_results.json": to_json(results)}
    files["dual_route_scatter.json"] = dual_route_scatter(
        table(result.mean("token_attention")),
        table(result.mean("concept_attention")),
        title=f"Token vs concept induction attention per head — {name}",
        subtitle=sub,
        marked={"token": result.top["token_attention"][:3], "concept": result.top["concept_attention"][:3]},
    ).to_json()
    files["dual_route_copying_scatter.json"] = dual_route_scatter(
        table(result.mean("token_copying")),
        table(result.mean("concept_copying")),
        title=f"Token vs concept copying per head — {name}",
        subtitle=sub,
        axis_titles=("token copying (rise of log P, nats)", "concept copying (rise of log P, nats)"),
        marked={"token": result.top["token_copying"][:3], "concept": result.top["concept_copying"][:3]},
    ).to_json()
    for grid in GRIDS:
        files[f"dual_route_{grid}.json"] = dual_route_heatmap(
            table(result.mean(grid)),
            title=f"{grid.replace('_', ' ').capitalize()} per head — {name}",
            colorbar_title=UNITS[grid],
            subtitle=sub,
            top=result.top[grid],
            signed=grid.endswith("copying"),
        ).to_json()
    files["dual_route_dissociation.json"] = dissociation_figure(
        results["dissociation"]["drop"],
        title=f"Ablating the top concept vs token copying heads — {name}",
        subtitle=f"top {config.top} heads of each kind zero-ablated; {config.n_copying} prompts per span kind",
    ).to_json()
    return results, files


def dual_route_summary(results: dict) -> str:
    """The lines ``dual-route`` prints: each grid's top heads with their intervals, and the dissociation."""
    lines = []
    for grid, heads in results["top_heads"].items():
        shown = ", ".join(
            f"{head_name(h['layer'], h['head'])} {with_interval(h['score'], *h['ci'], decimals=4)}" for h in heads
        )
        lines.append(f"{grid}: {shown}")
    for kind, difference in results["dissociation"]["difference"].items():
        lines.append(
            f"ablating the top {kind} heads: drop on entities minus drop on random spans "
            + with_interval(difference["mean"], difference["ci_low"], difference["ci_high"], 4, sign=True)
        )
    if "cost" in results:
        lines.append(cost_line(results["cost"]))
    return "\n".join(lines)
