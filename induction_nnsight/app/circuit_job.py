"""The circuit job behind ``induction-nnsight circuit``: settings in, results and chart files out.

Which earlier heads feed each induction head, through its keys, queries or values: path
patching (:func:`~induction_nnsight.causal.circuit.circuit`) and composition scores, the heads'
kinds (previous-token, induction) from one heads pass, a heatmap per path, a circuit graph and
a text summary. Its command-line options are declared on :class:`CircuitConfig`'s fields.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

from ..causal.circuit import CircuitMeasure, CircuitResult, circuit
from ..causal.head_weights import SENDER_NORMS
from ..causal.paths.patching import DEFAULT_EXACT_LOSSES, PATHS
from ..causal.paths.search import DEFAULT_FRACTION, DEFAULT_VERIFY, Verification
from ..errors import InductionError
from ..figures.circuit import circuit_graph_figure
from ..models.layout import model_facts
from ..names import check_heads, head_name, parse_heads
from ..ndif.execution import DEFAULT_MAX_TOKENS, Execution
from ..probes.tokens import repeated_tokens_probe
from ..scores.heads import head_scores
from .ablate_search import fraction
from .causal_options import CausalConfig, ablation_for, pooled_tokens
from .jobs import check_causal_tokens, model_for
from .options import count, exact_losses_arg, option, positive, word_tuple
from .outputs import rounded
from .report import effect_with_interval
from .results import JobResult
from .run_context import RunContext

__all__ = [
    "GRAPH_EDGES",
    "KIND_THRESHOLD",
    "CircuitConfig",
    "CircuitJobResult",
    "circuit_files",
    "run_circuit",
    "summary",
]

KIND_THRESHOLD = 0.4  # a head is previous-token / induction when its score reaches this (the built-in default)
GRAPH_EDGES = 3  # strongest sources drawn per target and path


@dataclass
class CircuitConfig(CausalConfig):
    """Settings of ``induction-nnsight circuit`` (model, tokens and NDIF settings as in
    :class:`~.jobs.ScanConfig`; the method, its rows and ``--seeds`` as in :class:`~.causal_options.CausalConfig`)."""

    batch: int = 4
    seq_len: int = 20
    top: int = option(5, help="top induction heads to explain", parse=positive)
    targets: str | None = option(None, help="explain these heads instead, e.g. L18H6,L17H3")
    freeze_norm: bool = option(False, help="keep the clean norm scale at the target's input (k, q, v paths)")
    paths: tuple[str, ...] = option(PATHS, help=f"any of {','.join(PATHS)}", parse=word_tuple)
    sender_norm: str = option(
        "recompute",
        help="post-norm models (Gemma 2/3, OLMo-2): a sender's removal reaches the residual through its own "
        "post-attention norm recomputed, or with the clean norm scale frozen (linear)",
        choices=SENDER_NORMS,
    )
    composition: bool = option(True, help="skip the composition scores from the weights")
    max_tokens: int = option(DEFAULT_MAX_TOKENS, help="tokens per batched trace", parse=positive)
    exact_losses: int | None = option(  # n: estimated except the n strongest; None: every one exact
        DEFAULT_EXACT_LOSSES,
        help="loss effects computed exactly for the N strongest edges per target and path, estimated for "
        "the rest (scores always exact); 'all': every loss effect exact (about 4x slower)",
        parse=exact_losses_arg,
        metavar="N|all",
    )
    search: str = option(
        "exhaustive",
        help="exhaustive: path-patch every edge; estimate: estimate every edge, path-patch only the --verify "
        "strongest per target and path (docs/estimate.md)",
        choices=("exhaustive", "estimate"),
    )
    verify: int = option(
        DEFAULT_VERIFY, help="edges path-patched exactly per target and path under --search estimate", parse=positive
    )
    verify_fraction: float | None = option(
        DEFAULT_FRACTION,
        help="under --search estimate, go on verifying in rounds (up to --verify more per target and path) while an "
        "edge's estimated drop is at least this fraction of the --verify-th largest exact drop verified ('none': "
        "stop after --verify)",
        parse=fraction,
        metavar="F|none",
    )
    verify_largest: int | None = option(
        None,
        help="under --search estimate, also path-patch the total edges of this many sources (default: --verify) whose "
        "removal is largest relative to the residual stream, whatever their estimate (a first-order estimate is "
        "least to be trusted there)",
        parse=count,
    )

    def validate(self) -> None:
        """Check what can be checked before a model is loaded."""
        check_causal_tokens(self)
        if self.top < 1:
            raise InductionError(f"--top must be at least 1, got {self.top}")
        self.validate_method()
        if self.sender_norm not in SENDER_NORMS:
            raise InductionError(f"--sender-norm must be one of {', '.join(SENDER_NORMS)}, got {self.sender_norm!r}")
        bad = [p for p in self.paths if p not in PATHS]
        if bad or not self.paths:
            raise InductionError(f"--paths takes any of {', '.join(PATHS)}, got {', '.join(self.paths) or 'none'}")
        if self.targets is not None:
            heads = parse_heads(self.targets, "--targets")
            if any(layer == 0 for layer, _ in heads):
                raise InductionError("a layer-0 head has no earlier head to feed it: pass --targets in layers 1 and up")
        if self.max_tokens < 1:
            raise InductionError(f"--max-tokens must be at least 1, got {self.max_tokens}")
        if self.exact_losses is not None and self.exact_losses < 0:
            raise InductionError(f"--exact-losses must be at least 0, got {self.exact_losses}")

    def validate_for(self, model) -> None:
        """Check the tokens and ``--targets`` against the model (loaded, or its weightless architecture)."""
        super().validate_for(model)
        if self.targets is not None:
            facts = model_facts(model)
            check_heads(parse_heads(self.targets, "--targets"), facts.n_layers, facts.n_heads, "--targets")


@dataclass(eq=False)
class CircuitJobResult(JobResult):
    """What the circuit job found (``circuit_results.json``, in this order).

    Attributes:
        model: The model's name or path.
        model_facts: Its layout facts, with ``name``.
        settings: The :class:`CircuitConfig` as a dict, with the intervals' method.
        targets: The induction heads explained, ``{"head", "layer", "head_index", "induction_score"}``.
        clean_repeated_half_loss: The unablated repeated-half loss (nats).
        loss_effects: How the loss effects were computed, in words.
        edges: Every ``source -> target`` edge per path, with its score and loss effects and intervals.
        composition: The composition scores from the weights.
        composition_note: What the composition scores are (or why there are none).
        head_kinds: The previous-token and induction heads of the heads pass.
        seconds: Time of the path patching.
        cost: Every pass the path patching ran.
        summary: The text the command prints.
    """

    model: str
    model_facts: dict
    settings: dict
    targets: list[dict]
    clean_repeated_half_loss: float | None
    loss_effects: str
    edges: list[dict]
    composition: list[dict]
    composition_note: str | None
    head_kinds: dict
    seconds: float
    cost: dict | None
    summary: str


def _kinds(
    model, tokens, config: CircuitConfig, execution: Execution
) -> tuple[dict[str, str], dict[str, tuple[float, float]]]:
    """Each head's kind and its (previous-token, induction) scores, from one heads pass."""
    probe = repeated_tokens_probe(tokens, config.seq_len, bos=config.bos)
    found = head_scores(
        model,
        probe,
        kinds=("previous_token", "induction"),
        loss=False,
        per_row=False,
        execution=execution,
    )
    prev, ind = found.mean("previous_token"), found.mean("induction")
    kinds, scores = {}, {}
    for layer in range(prev.shape[0]):
        for head in range(prev.shape[1]):
            name = head_name(layer, head)
            p, i = float(prev[layer, head]), float(ind[layer, head])
            scores[name] = (p, i)
            kinds[name] = "induction" if i >= KIND_THRESHOLD else "previous-token" if p >= KIND_THRESHOLD else "other"
    return kinds, scores


def _with_ci(value: float, ci, unit: str = "", q: float | None = None) -> str:
    """``-0.829 [-0.900, -0.750]``, followed by ``not distinguishable from 0`` when the interval contains 0
    or the edge's corrected q-value is above the false-discovery rate."""
    if ci is None:
        return f"{value:+.3f}{' ' + unit if unit else ''} (estimated)"
    return effect_with_interval(value, ci[0], ci[1], sign=True, unit=unit, q=q)


def summary(result: CircuitResult, paths, kinds: dict[str, str] | None = None, n: int = 3) -> str:
    """For each target, its strongest sources per path: score change and loss change (nats), each with
    its 95% interval over rows; an effect whose interval contains 0 is marked as not distinguishable from 0."""
    lines = []
    for target in result.targets:
        lines.append(f"{head_name(target)} (induction score {result.clean_scores[target]:.3f}):")
        for path in paths:
            parts = []
            for e in result.strongest(target, path, n):
                kind = f" [{kinds[head_name(e.source)]}]" if kinds and kinds.get(head_name(e.source)) != "other" else ""
                score = _with_ci(e.effect, e.effect_ci, q=e.effect_q)
                mark = "" if e.verified else " ~est"  # only estimated (--search estimate)
                loss = _with_ci(e.loss_effect, e.loss_ci, "nats", e.loss_q)
                parts.append(f"{head_name(e.source)}{kind} {score} ({loss}){mark}")
            lines.append(f"  {path:>5}: " + "; ".join(parts))
    if any(not e.verified for e in result.edges):
        lines.append("~est: estimated only, not path-patched (--search estimate)")
    if result.cost:
        c = result.cost
        lines.append(
            f"cost: {c['forward_passes']:,} forward + {c['backward_passes']:,} backward row passes, "
            f"{c['forward_equivalents']:,} forward equivalents ({c['exhaustive']['forward_equivalents']:,} "
            "to path-patch every edge exactly)"
        )
    return "\n".join(lines)


def circuit_files(
    result: CircuitResult, config: CircuitConfig, facts, kinds, scores, seconds: float
) -> tuple[CircuitJobResult, dict[str, str]]:
    """Results and chart files of a finished circuit run (pure: no model needed)."""
    names = [head_name(t) for t in result.targets]
    edges = [
        {
            "source": head_name(e.source),
            "target": head_name(e.target),
            "path": e.path,
            "effect": rounded(e.effect),
            "ci_low": rounded(e.effect_ci[0]) if e.effect_ci else None,
            "ci_high": rounded(e.effect_ci[1]) if e.effect_ci else None,
            "q": None if e.effect_q is None else rounded(e.effect_q),
            "loss_effect": rounded(e.loss_effect),
            "loss_ci_low": rounded(e.loss_ci[0]) if e.loss_ci else None,
            "loss_ci_high": rounded(e.loss_ci[1]) if e.loss_ci else None,
            "loss_q": None if e.loss_q is None else rounded(e.loss_q),
            "loss_exact": e.loss_exact,
            "verified": e.verified,
        }
        for e in result.edges
    ]
    composition = [
        {
            "source": head_name(r.source),
            "target": head_name(r.target),
            "path": r.path,
            "score": rounded(r.score),
            "baseline": rounded(r.baseline),
        }
        for r in result.composition
    ]
    results = CircuitJobResult(
        model=config.model,
        model_facts={**asdict(facts), "name": config.model},
        settings={
            **asdict(config),
            **config.interval_settings(),
            "paths": list(config.paths),
            "exact_losses": "all" if config.exact_losses is None else config.exact_losses,
        },
        targets=[
            {"head": n, "layer": t[0], "head_index": t[1], "induction_score": rounded(result.clean_scores[t])}
            for n, t in zip(names, result.targets)
        ],
        clean_repeated_half_loss=rounded(result.clean_loss),
        loss_effects="verified edges (verified true): exact scores and losses; the rest estimated (docs/estimate.md)"
        if config.search == "estimate"
        else "exact"
        if config.exact_losses is None
        else (
            f"exact for the {config.exact_losses} edges per target and path with the largest estimated loss "
            "effects and the largest score effects, estimated for the rest (loss_exact false): k, q, v from the "
            "target's new output on, total from the source's (scores exact)"
        ),
        edges=edges,
        composition=composition,
        composition_note=result.composition_note,
        head_kinds={
            "threshold": KIND_THRESHOLD,
            "previous_token": sorted(k for k, v in kinds.items() if v == "previous-token"),
            "induction": sorted(k for k, v in kinds.items() if v == "induction"),
        },
        seconds=round(seconds, 2),
        cost=result.cost,
        summary=summary(result, config.paths, kinds),
    )
    subtitle = f"{config.describe_tokens()}{config.describe_seeds()}, {config.describe_method()} ablation"
    named = replace(result, model=config.model, grid=result.grid or (facts.n_layers, facts.n_heads))  # for titles
    files = {f"circuit_{path}.json": named.figure(path, subtitle=subtitle).to_json() for path in config.paths}
    drawn = []
    for target in result.targets:
        for path in config.paths:
            drawn += [
                e
                for e in edges
                if e["target"] == head_name(target)
                and e["path"] == path
                and e["source"] in {head_name(x.source) for x in result.strongest(target, path, GRAPH_EDGES)}
            ]
    files["circuit_graph.json"] = circuit_graph_figure(
        facts.n_layers,
        facts.n_heads,
        kinds,
        scores,
        drawn,
        labelled=names,
        subtitle=subtitle,
        title=f"The induction circuit: the {GRAPH_EDGES} strongest sources of each target per path — {config.model}",
    ).to_json()
    files["circuit_results.json"] = results.to_json()
    return results, files


def run_circuit(
    config: CircuitConfig, model=None, progress: bool = True, context: RunContext | None = None
) -> tuple[CircuitJobResult, dict[str, str]]:
    """Circuit job: path patching and composition scores into the top (or given) induction heads.

    Args:
        config: The settings.
        model: An already loaded model (loaded from ``config.model`` when None).
        progress: Show progress bars over the job's traces.
        context: How the job runs (device, plan, request budgets, journal; None: ``RunContext()``).

    Returns:
        ``(result, files)``: the :class:`CircuitJobResult`; ``circuit_results.json``, ``circuit_<path>.json``
        per path and
        ``circuit_graph.json`` -> JSON text.
    """
    config.validate()
    context = context or RunContext()
    model = model_for(config, model, context)
    execution = context.execution(config, progress)
    facts = model_facts(model)
    config.validate_for(model)
    targets = None if config.targets is None else parse_heads(config.targets, "--targets")
    tokens = pooled_tokens(model, config)
    ablation = replace(
        ablation_for(model, config, tokens, freeze_norm=config.freeze_norm), sender_norm=config.sender_norm
    )
    # a plan reads stand-ins, so rounds chosen from them would be arbitrary: it plans the first round
    rounds = None if context.planned else config.verify_fraction
    started = time.perf_counter()
    result = circuit(
        model,
        tokens,
        config.seq_len,
        measure=CircuitMeasure(
            targets,
            config.top,
            config.paths,
            config.composition,
            config.exact_losses,
            config.search,
            Verification(config.verify, rounds, config.verify_largest),
        ),
        ablation=ablation,
        bos=config.bos,
        execution=execution,
    )
    seconds = time.perf_counter() - started
    kinds, scores = _kinds(model, tokens, config, execution)
    return circuit_files(result, config, facts, kinds, scores, seconds)
