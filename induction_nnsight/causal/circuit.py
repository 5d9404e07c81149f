"""The induction circuit: which earlier heads feed each induction head, and through which path.

:func:`circuit` picks the targets (the top induction heads, or the ones given), path-patches
every head of every earlier layer into each on the ``k``, ``q`` and ``v`` paths and in total
(:mod:`~induction_nnsight.causal.paths.patching`), and adds the composition scores of the same
pairs from the weights (:mod:`~induction_nnsight.causal.composition`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import plotly.graph_objects as go
import torch

from ..errors import InductionError
from ..figures.circuit import circuit_heatmap_figure, mark_verified
from ..figures.style import ANNOTATED
from ..figures.tables import Displayable, Summary, plain, titled
from ..models.layout import model_facts
from ..names import head_name
from ..ndif.execution import Execution, as_execution
from ..ndif.settings import on_ndif
from ..scores.ranking import RANK_DECIMALS, rank_heads
from ..scores.scan import induction_scores
from .composition import COMPOSITION_PATHS, CompositionRow, composition_scores
from .head_outputs import check_heads
from .intervals import edge_intervals
from .paths.patching import DEFAULT_EXACT_LOSSES, PATHS, Ablation, all_earlier, path_patching, path_variants
from .paths.search import Verification, circuit_costs, path_search

Head = tuple[int, int]


@dataclass(frozen=True)
class CircuitMeasure:
    """What :func:`circuit` measures: which targets, on which paths, how exactly.

    Attributes:
        targets: Heads to explain (None: the ``top`` induction heads outside layer 0).
        top: How many targets when ``targets`` is None.
        paths: Any of ``"k"``, ``"q"``, ``"v"``, ``"total"``.
        composition: Also compute Q/K/V composition scores from the weights.
        exact_losses: ``n`` (default 8): the loss effects are estimated and computed exactly only
            for the ``n`` strongest edges per target and path by estimated loss effect and by score
            effect (see :func:`~induction_nnsight.causal.paths.patching.path_patching`); every score
            stays exact. None: every loss effect exact (about 4x slower).
        search: ``"exhaustive"`` (every edge path-patched) or ``"estimate"``: every edge estimated,
            only the ``verify`` strongest per target and path path-patched
            (:mod:`~induction_nnsight.causal.paths.search`; ``exact_losses`` unused).
        verify: Edges verified per target and path under ``search="estimate"`` (exactly that many), or a
            :class:`~induction_nnsight.causal.paths.search.Verification` that may go on in rounds (the
            default: ``circuit --search estimate``'s).
    """

    targets: Sequence[Head] | None = None
    top: int = 5
    paths: Sequence[str] = PATHS
    composition: bool = True
    exact_losses: int | None = DEFAULT_EXACT_LOSSES
    search: str = "exhaustive"
    verify: int | Verification = Verification()


@dataclass(frozen=True)
class Edge:
    """One path-patching edge.

    Attributes:
        source: The earlier head whose direct contribution was removed.
        target: The induction head.
        path: ``"k"``, ``"q"``, ``"v"`` or ``"total"``.
        effect: Change of the target's induction score (patched minus clean).
        loss_effect: Change of the mean repeated-half loss (nats, patched minus clean).
        loss_exact: False where ``loss_effect`` is an estimate (``CircuitMeasure(exact_losses=n)``).
        effect_ci: 95% interval ``(low, high)`` of ``effect``, a bootstrap over rows (None where the
            edge was only estimated).
        loss_ci: 95% interval of ``loss_effect`` (None where estimated).
        verified: False where the edge was only estimated (``CircuitMeasure(search="estimate")``).
        effect_q: ``effect``'s p-value adjusted by Benjamini-Hochberg over every edge path-patched
            (None where estimated): distinguishable from 0 where at most :data:`~induction_nnsight.stats.ALPHA`.
        loss_q: The same for ``loss_effect``.
    """

    source: Head
    target: Head
    path: str
    effect: float
    loss_effect: float
    loss_exact: bool = True
    effect_ci: tuple[float, float] | None = None
    loss_ci: tuple[float, float] | None = None
    verified: bool = True
    effect_q: float | None = None
    loss_q: float | None = None


@dataclass(repr=False)
class CircuitResult(Displayable):
    """What :func:`circuit` found; shows each target with its strongest source per path and draws one
    heatmap per path (``figures()``: ``"k"``, ``"q"``, ``"v"``, ``"total"``, those measured).

    Attributes:
        targets: The induction heads examined, in rank order.
        clean_scores: ``target -> clean induction score`` (from the same batched traces).
        clean_loss: Mean repeated-half loss of the clean rows.
        edges: Every (source, target, path) edge.
        composition: Q/K/V composition scores of the same pairs (empty when not computed).
        composition_note: Why composition scores are missing, if they are.
        grid: ``(n_layers, n_heads)`` of the model (None: read from the edges).
        model: The model's name or path.
    """

    targets: list[Head]
    clean_scores: dict[Head, float]
    clean_loss: float
    edges: list[Edge]
    composition: list[CompositionRow] = field(default_factory=list)
    composition_note: str | None = None
    grid: tuple[int, int] | None = None
    model: str | None = None
    cost: dict | None = None

    def table(self, path: str, n_layers: int, n_heads: int, loss: bool = False) -> torch.Tensor:
        """``[n_targets, n_layers * n_heads]`` effects on ``path`` (NaN where no edge)."""
        out = torch.full((len(self.targets), n_layers * n_heads), float("nan"))
        index = {t: i for i, t in enumerate(self.targets)}
        for e in self.edges:
            if e.path == path:
                out[index[e.target], e.source[0] * n_heads + e.source[1]] = e.loss_effect if loss else e.effect
        return out

    def strongest(self, target: Head, path: str, n: int = 3) -> list[Edge]:
        """The ``n`` strongest edges into ``target`` on ``path``: those that lower its induction score
        most (on ``v``, which cannot move a pattern, those that raise the repeated-half loss most)."""
        edges = [e for e in self.edges if e.target == target and e.path == path]
        # the one ranking rule (scores.ranking): rounded values, near-ties by (layer, head)
        if path == "v":
            return sorted(edges, key=lambda e: (-round(e.loss_effect, RANK_DECIMALS), e.source))[:n]
        return sorted(edges, key=lambda e: (round(e.effect, RANK_DECIMALS), e.source))[:n]

    def _figure_names(self) -> list[str]:
        return [p for p in PATHS if any(e.path == p for e in self.edges)]

    def _summary(self) -> Summary:
        paths = self._figure_names()
        rows = [
            [
                head_name(t),
                self.clean_scores[t],
                *(
                    " ".join(
                        f"{head_name(e.source)} {e.loss_effect if p == 'v' else e.effect:+.3f}"
                        for e in self.strongest(t, p, 1)
                    )
                    for p in paths
                ),
            ]
            for t in self.targets
        ]
        n = len(self.targets)
        return Summary(
            "CircuitResult",
            self.model,
            f"{n} target{'s' * (n != 1)}, {len(self.edges)} edges",
            ["target", "induction score", *(f"strongest {p} source" for p in paths)],
            rows,
            [("clean repeated-half loss", float(self.clean_loss))],
            rows_title="targets",
        )

    def _figure(self, name: str, **options) -> go.Figure:
        n_layers, n_heads = self.grid or (
            max(t[0] for t in self.targets) + 1,
            max((e.source[1] for e in self.edges), default=0) + 1,
        )
        sources = [
            head_name(layer, head) for layer in range(max(t[0] for t in self.targets)) for head in range(n_heads)
        ]
        grid = self.table(name, n_layers, n_heads, loss=name == "v")[:, : len(sources)].T  # [source, target]
        what = "repeated-half loss (nats)" if name == "v" else "induction score"
        where = "everywhere" if name == "total" else f"from its {name} input only"
        title = titled(f"Path {name}: change of each target's {what} when a source head is removed {where}", self.model)
        # the strongest edges, as strongest() ranks them: the largest drop in score (rise in loss on v)
        top = rank_heads(grid, ANNOTATED, descending=name == "v")
        figure = circuit_heatmap_figure(
            plain(grid),
            sources,
            [head_name(t) for t in self.targets],
            **{"title": title, "colorbar_title": f"Δ {what}", "top": top, **options},
        )
        return mark_verified(figure, [e for e in self.edges if e.path == name], head_name)


def top_induction_heads(
    model, tokens: torch.Tensor, seq_len: int, top: int, *, execution: Execution | None = None
) -> list[Head]:
    """The ``top`` heads by induction score outside layer 0 (a layer-0 head has no earlier source)."""
    scores = induction_scores(model, tokens, seq_len, execution=execution).clone()
    scores[0] = float("nan")
    return rank_heads(scores, top)


def circuit(
    model,
    tokens: torch.Tensor,
    seq_len: int,
    *,
    measure: CircuitMeasure | None = None,
    ablation: Ablation | None = None,
    bos: bool = True,
    execution: Execution | None = None,
) -> CircuitResult:
    """Path-patch every earlier head into each target induction head, and score their composition.

    Args:
        model: An nnsight ``TransformersModel``.
        tokens: ``[batch, pos]`` rows ``[bos] r_1..r_T r_1..r_T``.
        seq_len: ``T``.
        measure: Which targets, paths and how exactly (:class:`CircuitMeasure`; None: the
            top 5 induction heads, every path, composition scores, 8 exact losses per target and path).
        ablation: How a source head is removed
            (:class:`~induction_nnsight.causal.paths.patching.Ablation`; None: zero).
        bos: Whether rows start with BOS.
        execution: How the traces run (:class:`~induction_nnsight.ndif.execution.Execution`:
            ``remote``, ``max_tokens``, ``progress``); None for the defaults.

    Returns:
        A :class:`CircuitResult`.

    Raises:
        InductionError: On a target in layer 0 or outside the model, or an unknown path.
    """
    facts = model_facts(model)
    measure, run = measure or CircuitMeasure(), as_execution(execution)
    paths, targets = measure.paths, measure.targets
    bad = [p for p in paths if p not in PATHS]
    if bad or not paths:
        raise InductionError(f"unknown path(s) {bad}: pass any of {', '.join(PATHS)}")
    if targets is None:
        targets = top_induction_heads(model, tokens, seq_len, measure.top, execution=run)
    targets = list(dict.fromkeys(tuple(t) for t in targets))
    check_heads(targets, facts.n_layers, facts.n_heads, "--targets")
    if any(t[0] == 0 for t in targets):
        raise InductionError("a layer-0 head has no earlier head to feed it: pass --targets in layers 1 and up")
    sources = {t: all_earlier(t, facts.n_heads) for t in targets}
    variants = path_variants(targets, list(paths), sources)
    if measure.search == "estimate":
        result, verified, spent = path_search(
            model, tokens, seq_len, variants, ablation=ablation, bos=bos, verify=measure.verify, execution=run
        )
    else:
        result = path_patching(
            model,
            tokens,
            seq_len,
            variants,
            ablation=ablation,
            bos=bos,
            exact_losses=measure.exact_losses,
            execution=run,
        )
        verified, spent = torch.ones(len(variants), dtype=torch.bool), None
    score_ci, loss_ci, score_q, loss_q = edge_intervals(result)
    edges = [
        Edge(
            v.source,
            v.target,
            v.path,
            float(s - result.clean_scores[v.target]),
            float(loss - result.clean_loss),
            bool(exact),
            score_ci[i],
            loss_ci[i],
            bool(checked),
            score_q[i],
            loss_q[i],
        )
        for i, (v, s, loss, exact, checked) in enumerate(
            zip(variants[1:], result.scores[1:], result.losses[1:], result.exact[1:], verified[1:])
        )
    ]
    out = CircuitResult(
        targets, result.clean_scores, result.clean_loss, edges, grid=(facts.n_layers, facts.n_heads), model=facts.name
    )
    reference = (ablation or Ablation()).reference
    out.cost = circuit_costs(variants, facts.n_layers, tuple(tokens.shape), reference, measure, spent, result.exact)
    if measure.composition:
        if on_ndif(run.remote):
            out.composition_note = "composition scores need local weights; not computed for an NDIF run"
        else:
            pairs = [(s, t) for t in targets for s in sources[t]]
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # d_head x d_model matrices: one thread is faster (7x on 2 busy cores)
            try:
                out.composition = composition_scores(model, pairs, COMPOSITION_PATHS)
            finally:
                torch.set_num_threads(threads)
    return out
