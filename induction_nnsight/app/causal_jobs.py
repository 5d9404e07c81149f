"""Causal-validation jobs: typed settings in, results and chart files out.

``run_ablate`` and ``run_patch`` back ``induction-nnsight ablate`` and
``induction-nnsight patch``; scripts and notebooks may call them directly.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch

from ..causal.ablation import METHODS, ablate_heads, ablation_curve, ablation_sweep, repeated_half_metric
from ..causal.attribution import head_attribution
from .causal_charts import ablation_curve_figure, attribution_scatter_figure
from .charts import heatmap_figure
from ..errors import InductionError
from ..causal.head_outputs import check_heads, parse_heads
from .jobs import ScanConfig, model_for, remote_settings, scan_tokens
from ..causal.metrics import RowMetric, default_icl_positions, icl_score, pearson, repeated_half_loss
from ..models.layout import model_facts
from .outputs import to_json
from ..causal.pairs import DEFAULT_CLEAN_TEXT, DEFAULT_CORRUPTED_TEXT, repeated_pair, text_pair
from ..causal.patching import patch_heads, patch_qkv, patch_residual
from ..scores.ranking import rank_heads
from .report import top_heads
from ..scores.scan import scan
from ..probes.tokens import repeated_tokens
from ..causal.variants import DEFAULT_MAX_TOKENS

PAIRS = ("text", "repeated")
SITES = ("heads", "residual", "qkv")


def _r(value: float) -> float | None:
    value = float(value)
    return None if value != value else round(value, 6)


def _table(values: torch.Tensor) -> list:
    return [_table(v) for v in values] if values.dim() else _r(values)


def _check_indices(values: list[int] | None, size: int, option: str, what: str) -> None:
    """Refuse ``values`` outside ``0..size-1``, naming ``option``."""
    bad = [v for v in values or [] if not 0 <= v < size]
    if bad:
        raise InductionError(f"{what} {bad[0]} is outside 0..{size - 1}: pass {option} within that range")


def _check_causal_tokens(config: ScanConfig) -> None:
    config.validate_tokens()
    if config.seq_len < 2:
        raise InductionError(f"--seq-len must be at least 2 here, got {config.seq_len}")


@dataclass
class AblateConfig(ScanConfig):
    """Settings of ``induction-nnsight ablate`` (model, tokens and NDIF settings as in :class:`ScanConfig`)."""

    batch: int = 4
    seq_len: int = 30
    method: str = "zero"
    heads: str | None = None
    top_k: int = 5
    draws: int = 5
    same_layers: bool = False
    sweep: bool = True
    layers: list[int] | None = None
    icl_early: list[int] | None = None
    icl_late: list[int] | None = None
    max_tokens: int = DEFAULT_MAX_TOKENS

    def validate(self) -> None:
        """Check what can be checked before a model is loaded."""
        _check_causal_tokens(self)
        if self.method not in METHODS:
            raise InductionError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.top_k < 1 or self.draws < 1:
            raise InductionError("--top-k and --draws must be at least 1")
        if self.heads is not None:
            parse_heads(self.heads)
        if (self.icl_early is None) != (self.icl_late is None):
            raise InductionError("pass both --icl-early and --icl-late, or neither")


def run_ablate(config: AblateConfig, model=None, progress: bool = True) -> tuple[dict, dict[str, str]]:
    """Ablation job: per-head sweep, top-k against random-k curve, attribution, optional head set.

    Returns:
        ``(results, files)``: machine-readable results and
        ``{"ablation_heads.json", "ablation_curve.json", "ablation_results.json"} -> text``
        (``ablation_heads.json`` only with the sweep).
    """
    config.validate()
    model = model_for(config, model)
    remote = remote_settings(config) or False
    facts = model_facts(model)
    if config.heads is not None:
        check_heads(parse_heads(config.heads), facts.n_layers, facts.n_heads)
    _check_indices(config.layers, facts.n_layers, "--layers", "layer")
    if not config.same_layers and config.top_k > facts.n_layers * facts.n_heads // 2:
        raise InductionError(f"cannot draw {config.top_k} random heads outside the top {config.top_k} of "
                             f"{facts.n_layers * facts.n_heads}: pass --top-k {facts.n_layers * facts.n_heads // 2} "
                             "or less")
    tokens = scan_tokens(model, config)
    source = None
    if config.method == "mean":
        source = repeated_tokens(config.batch, config.seq_len, seed=config.seed + 1, low=config.low,
                                    high=config.high, bos_token_id=facts.bos_token_id if config.bos else None)
    metric = repeated_half_metric(config.seq_len, config.bos)
    early, late = ((config.icl_early, config.icl_late) if config.icl_early is not None
                   else default_icl_positions(config.seq_len, config.bos))
    base = scan(model, tokens, config.seq_len, remote=remote)
    ranked = top_heads(base.induction_scores, config.top_k)
    results: dict = {
        "model": config.model,
        "model_facts": {**asdict(facts), "name": config.model},
        "settings": asdict(config),
        "metric": "mean loss on the repeated half (nats)",
        "icl_positions": {"early": early, "late": late},
        "baseline": {
            "loss_by_position": _table(base.loss_by_position),
            "repeated_half_loss": _r(repeated_half_loss(base.loss_by_position, config.seq_len, config.bos)),
            "icl_score": _r(icl_score(base.loss_by_position, early, late)),
        },
        "top_induction_heads": ranked,
    }
    if config.heads is not None:
        heads = parse_heads(config.heads)
        loss = ablate_heads(model, tokens, heads, method=config.method, source=source, remote=remote)
        results["ablated"] = {
            "heads": [list(h) for h in heads],
            "loss_by_position": _table(loss),
            "repeated_half_loss": _r(repeated_half_loss(loss, config.seq_len, config.bos)),
            "icl_score": _r(icl_score(loss, early, late)),
        }
    curve = ablation_curve(model, tokens, metric, [(h["layer"], h["head"]) for h in ranked], n_draws=config.draws,
                           same_layers=config.same_layers, method=config.method, source=source,
                           seed=config.seed, max_tokens=config.max_tokens, remote=remote, progress=progress)
    at_k = curve.random[:, -1]
    results["curve"] = {
        "ks": curve.ks, "baseline": _r(curve.baseline), "top": _table(curve.top), "random": _table(curve.random),
        "random_mean": _table(curve.random.mean(dim=0)),
        "random_std": _table(curve.random.std(dim=0) if config.draws > 1 else torch.zeros(len(curve.ks))),
        "random_heads": [[list(h) for h in draw] for draw in curve.random_heads],
        "random_from": "same layers" if config.same_layers else "all layers",
    }
    results["top_vs_random"] = {
        "k": config.top_k, "baseline": _r(curve.baseline), "top": _r(curve.top[-1]),
        "random_mean": _r(at_k.mean()), "random_std": _r(at_k.std() if config.draws > 1 else 0.0),
        "random_min": _r(at_k.min()), "random_max": _r(at_k.max()),
    }
    title_tail = f"{config.batch} x repeated {config.seq_len} tokens ({config.model})"
    files = {
        "ablation_curve.json": ablation_curve_figure(
            curve.ks, curve.top.tolist(), curve.random.tolist(), curve.baseline,
            title=f"Repeated-half loss, top-k induction heads vs random heads {config.method}-ablated, {title_tail}",
        ).to_json(),
    }
    if config.sweep:
        started = time.perf_counter()
        sweep = ablation_sweep(model, tokens, metric, method=config.method, source=source,
                               layers=config.layers, max_tokens=config.max_tokens, remote=remote,
                               progress=progress)
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        estimate = head_attribution(model, tokens, metric, config.method, source=source, remote=remote)
        attribution_seconds = time.perf_counter() - started
        results["sweep"] = {
            "baseline": _r(sweep.baseline), "values": _table(sweep.values), "delta": _table(sweep.delta),
            "seconds": round(seconds, 2),
            "rows": [{"layer": layer, "head": head, "delta": _r(sweep.delta[layer, head])}
                     for layer, head in rank_heads(sweep.delta)],
        }
        results["attribution"] = {
            "estimate": _table(estimate), "seconds": round(attribution_seconds, 2),
            "pearson_with_sweep": _r(pearson(estimate, sweep.delta)),
        }
        files["ablation_heads.json"] = heatmap_figure(
            sweep.delta.tolist(), value_range=(None, None),
            title=f"Change in repeated-half loss when one head is {config.method}-ablated, {title_tail}",
            colorbar_title="Δ loss (nats)",
        ).to_json()
    files["ablation_results.json"] = to_json(results)
    return results, files


@dataclass
class PatchConfig(ScanConfig):
    """Settings of ``induction-nnsight patch`` (model, tokens and NDIF settings as in :class:`ScanConfig`)."""

    pair: str = "text"
    clean: str = DEFAULT_CLEAN_TEXT
    corrupted: str = DEFAULT_CORRUPTED_TEXT
    correct: str | None = None
    wrong: str | None = None
    metric: str | None = None
    batch: int = 2
    seq_len: int = 10
    sites: list[str] = field(default_factory=lambda: list(SITES))
    head: str | None = None
    layers: list[int] | None = None
    positions: list[int] | None = None
    max_tokens: int = DEFAULT_MAX_TOKENS

    def validate(self) -> None:
        """Check what can be checked before a model is loaded."""
        if self.pair not in PAIRS:
            raise InductionError(f"--pair must be one of {', '.join(PAIRS)}, got {self.pair!r}")
        _check_causal_tokens(self)
        unknown = [s for s in self.sites if s not in SITES]
        if unknown or not self.sites:
            raise InductionError(f"--sites takes a comma-separated subset of {', '.join(SITES)}, got {self.sites}")
        if self.metric is not None and self.metric not in ("loss", "logit_diff", "prob"):
            raise InductionError(f"--metric must be loss, logit_diff or prob, got {self.metric!r}")
        if self.head is not None and len(parse_heads(self.head, "--head")) != 1:
            raise InductionError("--head takes one head, such as L18H6")
        if "qkv" in self.sites and self.head is None and "heads" not in self.sites:
            raise InductionError("patching q/k/v needs a head: pass --head L18H6 (or add heads to --sites)")


def _pair(model, config: PatchConfig):
    facts = model_facts(model)
    if config.bos and facts.bos_token_id is None:
        raise InductionError(f"{config.model} has no BOS token: pass --no-bos")
    bos = facts.bos_token_id if config.bos else None
    if config.pair == "repeated":
        if config.high > facts.vocab_size:
            raise InductionError(f"token range exceeds the vocabulary of {facts.vocab_size}: "
                                 f"pass --high {facts.vocab_size} or less")
        scan_tokens(model, config)  # checks the rows against the model's context and BOS
        pair = repeated_pair(config.batch, config.seq_len, seed=config.seed, low=config.low, high=config.high,
                             bos_token_id=bos, vocab_size=facts.vocab_size)
        if config.metric not in (None, "loss"):
            raise InductionError("the repeated pair is scored by its repeated-half loss: drop --metric")
        return pair
    if model.tokenizer is None:
        raise InductionError(f"{config.model} has no tokenizer: use --pair repeated")
    pair = text_pair(model.tokenizer, config.clean, config.corrupted, correct=config.correct, wrong=config.wrong,
                     metric=config.metric, bos_token_id=bos)
    if pair.metric.kind == "loss":
        pair.metric = RowMetric("loss")
    return pair


def _grid(result, **extra) -> dict:
    return {"clean": _r(result.clean), "corrupted": _r(result.corrupted), "values": _table(result.values),
            "recovery": _table(result.recovery), "rows": result.rows, "columns": result.columns, **extra}


def run_patch(config: PatchConfig, model=None, progress: bool = True) -> tuple[dict, dict[str, str]]:
    """Patching job: head-output, residual-stream and q/k/v grids, attribution patching.

    Returns:
        ``(results, files)``: machine-readable results and ``patching_*.json`` chart texts
        plus ``patching_results.json``.
    """
    config.validate()
    model = model_for(config, model)
    remote = remote_settings(config) or False
    facts = model_facts(model)
    if config.head is not None:
        check_heads(parse_heads(config.head, "--head"), facts.n_layers, facts.n_heads, "--head")
    _check_indices(config.layers, facts.n_layers, "--layers", "layer")
    pair = _pair(model, config)
    _check_indices(config.positions, pair.clean.shape[1], "--positions", "position")
    metric = pair.metric
    common = dict(max_tokens=config.max_tokens, remote=remote)
    results: dict = {
        "model": config.model,
        "model_facts": {**asdict(facts), "name": config.model},
        "settings": asdict(config),
        "pair": pair.description,
        "metric": metric.label,
        "n_tokens_per_row": int(pair.clean.shape[1]),
    }
    files: dict[str, str] = {}
    title_tail = f"{pair.description} ({config.model})"
    positions = pair.labels or [str(i) for i in range(pair.clean.shape[1])]
    best = None
    if "heads" in config.sites:
        started = time.perf_counter()
        heads = patch_heads(model, pair.clean, pair.corrupted, metric, layers=config.layers, progress=progress,
                            **common)
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        estimate = head_attribution(model, pair.corrupted, metric, "source", source=pair.clean,
                                    remote=remote)
        attribution_seconds = time.perf_counter() - started
        change = heads.values - heads.corrupted
        r = pearson(estimate, change)
        best = (rank_heads(heads.recovery, 1) or [(0, 0)])[0]  # no recovery at all (clean == corrupted): L0H0
        results["heads"] = _grid(heads, seconds=round(seconds, 2), best=list(best))
        results["attribution"] = {
            "estimate": _table(estimate), "recovery_estimate": _table(estimate / (heads.clean - heads.corrupted)),
            "pearson_with_exhaustive": _r(r), "seconds": round(attribution_seconds, 2),
        }
        files["patching_heads.json"] = heatmap_figure(
            heads.recovery.tolist(), x_labels=heads.columns, y_labels=heads.rows, value_range=(None, None),
            title=f"Recovery when one head's clean output is patched in, {title_tail}", colorbar_title="recovery",
        ).to_json()
        labels = [f"L{layer}H{h}" for layer in range(facts.n_layers) for h in range(facts.n_heads)]
        files["patching_attribution.json"] = attribution_scatter_figure(
            change.flatten().tolist(), estimate.flatten().tolist(), labels, correlation=r,
            title="Attribution patching vs exhaustive head patching", axis_title=f"change in {metric.label}",
        ).to_json()
    if "residual" in config.sites:
        started = time.perf_counter()
        residual = patch_residual(model, pair.clean, pair.corrupted, metric, layers=config.layers,
                                  positions=config.positions, progress=progress, **common)
        columns = [f"{c} {positions[int(c)]!r}" if pair.labels else c for c in residual.columns]
        results["residual"] = _grid(residual, seconds=round(time.perf_counter() - started, 2))
        files["patching_residual.json"] = heatmap_figure(
            residual.recovery.tolist(), x_labels=columns, y_labels=residual.rows, value_range=(None, None),
            title=f"Recovery when the clean residual stream after a layer is patched in at one position, "
            f"{title_tail}", colorbar_title="recovery", x_title="position",
        ).to_json()
    if "qkv" in config.sites:
        layer, head = parse_heads(config.head)[0] if config.head is not None else best
        started = time.perf_counter()
        qkv = patch_qkv(model, pair.clean, pair.corrupted, metric, layer, head, positions=config.positions,
                        progress=progress, **common)
        columns = [f"{c} {positions[int(c)]!r}" if pair.labels and c != "all" else c for c in qkv.columns]
        results["qkv"] = _grid(qkv, head=[layer, head], seconds=round(time.perf_counter() - started, 2))
        files["patching_qkv.json"] = heatmap_figure(
            qkv.recovery.tolist(), x_labels=columns, y_labels=["queries", "keys", "values"], value_range=(None, None),
            title=f"Recovery when L{layer}H{head}'s clean queries, keys or values are patched in, {title_tail}",
            colorbar_title="recovery", x_title="position", y_title="",
        ).to_json()
    files["patching_results.json"] = to_json(results)
    return results, files
