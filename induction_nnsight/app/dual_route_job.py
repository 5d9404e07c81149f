"""``induction-nnsight dual-route``: token and concept induction heads, their copying scores and the
dissociation test; ``dual_route_results.json`` and four charts."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..causal.dual_route import (
    ENTITY_SOURCE,
    GRIDS,
    MEASURES,
    DualRouteProbe,
    DualRouteResult,
    RandomTokens,
    dual_route,
    entity_names,
    separator_id,
    tokenized_entities,
)
from ..causal.dual_route.prompts import FIRST_START, SPAN
from ..errors import InductionError
from ..figures.dual_route import dissociation_figure, dual_route_heatmap, dual_route_scatter
from ..models.layout import model_facts
from ..names import head_name
from ..scores.icl import default_text, read_text
from .jobs import ScanConfig, model_for
from .options import like, option, positive
from .outputs import cost_line, rounded, table, to_json
from .report import with_interval
from .run_context import RunContext, ndif_option

__all__ = ["DualRouteConfig", "DualRouteReport", "dual_route_results", "dual_route_summary", "run_dual_route"]

ATTENTION_UNIT = "value-weighted attention"
COPYING_UNITS = {
    "probability": "change of probability",
    "log_probability": "change of log-probability (nats)",
}
COPYING_READS = {
    "token_copying": "P(c[0]) at the patched position -2, random-token spans",
    "concept_copying": "P(c[1]) at the last position, entities",
}
RANDOM_TEXT_DEFAULT = "default"
RANDOM_TEXT_UNIFORM = "uniform"


@dataclass
class DualRouteConfig:
    """Settings of ``induction-nnsight dual-route``."""

    model: str = like(ScanConfig, "model")
    n_attention: int = option(
        256,
        help="prompts of each kind (entity, random span) for the attention scores",
        flag="--prompts",
        parse=positive,
    )
    n_copying: int = option(
        64,
        help="prompts of each kind for the copying scores (they rank the heads)",
        flag="--copying-prompts",
        parse=positive,
    )
    n_dissociation: int = option(
        32,
        help="fresh word-list rows of each task for the dissociation test",
        flag="--dissociation-prompts",
        parse=positive,
    )
    max_k: int = option(
        16, help="the dissociation ablates the top 1..K heads of each ranking", flag="--max-k", parse=positive
    )
    measure: str = option(
        "probability",
        help="what a copying score compares: the paper's change of probability, or of log-probability",
        choices=MEASURES,
    )
    random_text: str = option(
        RANDOM_TEXT_DEFAULT,
        help="text whose shuffled chunks are the random tokens: a UTF-8 file or directory, 'default' (the "
        "text the icl command reads, Python's help topics) or 'uniform' (uniform ids in [--low, --high))",
    )
    seed: int = like(ScanConfig, "seed")
    low: int = like(ScanConfig, "low")
    high: int = like(ScanConfig, "high")
    top: int = option(5, help="top heads listed per score", parse=positive)
    attn_implementation: str | None = like(ScanConfig, "attn_implementation")
    remote: bool = ndif_option("remote")
    ndif_host: str | None = ndif_option("ndif_host")
    timeout: float = ndif_option("timeout")

    def validate(self) -> None:
        """Check what can be checked before a model is loaded."""
        for name in ("n_attention", "n_copying", "n_dissociation", "max_k", "top"):
            if getattr(self, name) < 1:
                raise InductionError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.measure not in MEASURES:
            raise InductionError(f"--measure {self.measure!r}: pass one of {', '.join(MEASURES)}")
        if not 0 <= self.low < self.high:
            raise InductionError(f"--low {self.low} and --high {self.high}: pass 0 <= low < high")
        if not self.timeout > 0:
            raise InductionError(f"--timeout must be a positive number of seconds, got {self.timeout}")
        if self.random_text not in (RANDOM_TEXT_DEFAULT, RANDOM_TEXT_UNIFORM):
            self._text()  # a missing or unreadable path is refused before a model loads

    def _text(self) -> tuple[str, str]:
        try:
            return read_text(self.random_text)
        except InductionError as error:  # read_text names the icl command's flag
            raise InductionError(str(error).replace("--text", "--random-text", 1)) from error

    def probe(self) -> DualRouteProbe:
        """The :class:`~induction_nnsight.causal.dual_route.DualRouteProbe` these settings describe."""
        return DualRouteProbe(
            n_attention=self.n_attention,
            n_copying=self.n_copying,
            n_dissociation=self.n_dissociation,
            max_k=self.max_k,
            measure=self.measure,
            seed=self.seed,
            low=self.low,
            high=self.high,
            top=self.top,
        )

    def random_tokens(self, model) -> RandomTokens:
        """Where the random tokens come from: shuffled chunks of the text under the model's tokenizer,
        or uniform ids (``uniform``, or a model without a tokenizer)."""
        tokenizer = getattr(model, "tokenizer", None)
        if self.random_text == RANDOM_TEXT_UNIFORM or tokenizer is None:
            return RandomTokens.uniform(self.low, self.high)
        text, source = default_text() if self.random_text == RANDOM_TEXT_DEFAULT else self._text()
        facts = model_facts(model)
        special = (facts.bos_token_id, getattr(tokenizer, "unk_token_id", None))
        exclude = [separator_id(tokenizer, self.low)] + [i for i in special if i is not None]
        ids = tokenizer.encode(text, add_special_tokens=False)
        return RandomTokens.from_text(
            ids, low=self.low, high=self.high, vocab_size=facts.vocab_size, source=source, exclude=exclude
        )

    def describe(self) -> str:
        """Chart subtitle."""
        return (
            f"{self.n_attention} attention and {self.n_copying} copying prompts per kind, {SPAN} tokens before the "
            f"newline; copying as {COPYING_UNITS[self.measure]}; seed {self.seed}; 95% t intervals over prompts"
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


def _unit(grid: str, measure: str) -> str:
    return COPYING_UNITS[measure] if grid.endswith("copying") else ATTENTION_UNIT


@dataclass
class DualRouteReport:
    """The dual-route job's result: the probe's result and the settings it ran with.

    Attributes:
        result: What :func:`~induction_nnsight.causal.dual_route.dual_route` returned.
        config: The job's settings.
        facts: The model's facts (``model_facts`` as a dict, with its name).
    """

    result: DualRouteResult
    config: DualRouteConfig
    facts: dict

    def to_json(self) -> dict:
        """The results file's content: settings (the recipe's included), entities, every grid with its unit,
        interval and split-half reliability, the top heads, the dissociation test, the cost."""
        result, config = self.result, self.config
        measure = config.measure
        scores = {}
        for grid in GRIDS:
            entry = {"unit": _unit(grid, measure), **{k: table(v) for k, v in result.scores[grid].items()}}
            if grid.endswith("copying"):
                entry |= {"measure": measure, "reads": COPYING_READS[grid]}
            scores[grid] = entry
        return {
            "model": config.model,
            "model_facts": self.facts,
            "settings": {
                **asdict(config),
                "recipe": {
                    "tokens_before_newline": SPAN,
                    "entity_start": f"range({FIRST_START}, {SPAN} - |c| + 1)",
                    "copying_measure": measure,
                    "random_tokens": result.random_tokens,
                    "dissociation_ablation": result.dissociation.get("ablation"),
                },
            },
            "entities": {"source": ENTITY_SOURCE, **result.entities},
            "scores": scores,
            "top_heads": {grid: _heads(result, grid) for grid in GRIDS},
            # split-half reliability over the heads of each grid: how far its ranking would repeat on new prompts
            "split_half_reliability": {
                grid: rounded(result.reliability[grid]) for grid in GRIDS if grid in result.reliability
            },
            "dissociation": _rounded_tree(result.dissociation),
            "cost": result.cost.as_dict(),
        }


def dual_route_results(result: DualRouteResult, config: DualRouteConfig, facts: dict) -> dict:
    """The results file's content (:meth:`DualRouteReport.to_json`)."""
    return DualRouteReport(result, config, facts).to_json()


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
        ``dual_route_copying_scatter.json``, ``dual_route_<grid>.json`` and ``dual_route_dissociation.json``.
    """
    config.validate()
    context = context or RunContext()
    model = model_for(config, model, context)
    facts = model_facts(model)
    entities = tokenized_entities(model.tokenizer, entity_names(), vocab_size=facts.vocab_size)
    result = dual_route(
        model,
        entities,
        probe=config.probe(),
        tokens=config.random_tokens(model),
        execution=context.execution(config, progress),
    )
    results = DualRouteReport(result, config, {**asdict(facts), "name": config.model}).to_json()
    sub = config.describe()
    name = config.model
    unit = COPYING_UNITS[config.measure]
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
        axis_titles=(f"token copying ({unit} of c[0])", f"concept copying ({unit} of c[1])"),
        marked={"token": result.top["token_copying"][:3], "concept": result.top["concept_copying"][:3]},
    ).to_json()
    for grid in GRIDS:
        files[f"dual_route_{grid}.json"] = dual_route_heatmap(
            table(result.mean(grid)),
            title=f"{grid.replace('_', ' ').capitalize()} per head — {name}",
            colorbar_title=_unit(grid, config.measure),
            subtitle=sub,
            top=result.top[grid],
            signed=grid.endswith("copying"),
        ).to_json()
    files["dual_route_dissociation.json"] = dissociation_figure(
        results["dissociation"]["curve"],
        title=f"Mean-ablating the top k concept vs token copying heads — {name}",
        subtitle=f"{config.n_dissociation} fresh word-list rows per task; heads ranked on the copying prompts",
    ).to_json()
    return results, files


def dual_route_summary(results: dict) -> str:
    """The lines ``dual-route`` prints: each grid's top heads with their intervals and reliability, and the
    dissociation at the largest k."""
    lines = []
    reliability = results.get("split_half_reliability", {})
    for grid, heads in results["top_heads"].items():
        shown = ", ".join(
            f"{head_name(h['layer'], h['head'])} {with_interval(h['score'], *h['ci'], decimals=4)}" for h in heads
        )
        r = reliability.get(grid)
        lines.append(f"{grid}: {shown}" + (f" (split-half reliability {r:.2f})" if r is not None else ""))
    k = results["dissociation"]["ks"][-1]
    for kind, difference in results["dissociation"]["difference"].items():
        lines.append(
            f"mean-ablating the top {k} {kind} heads: drop on meaning minus drop on verbatim copying "
            + with_interval(difference["mean"], difference["ci_low"], difference["ci_high"], 4, sign=True)
        )
    if "cost" in results:
        lines.append(cost_line(results["cost"]))
    return "\n".join(lines)
