"""``induction-nnsight explain``: one model's induction mechanism end to end, as one typed result.

The layout is model -> stages (here) -> one typed result,
:class:`~induction_nnsight.app.explain_result.Explanation` -> sentences
(:mod:`~induction_nnsight.app.explain_text`) -> HTML (:mod:`~induction_nnsight.figures.explain_html`).
Each stage is an existing job run with small settings on the one loaded model (nothing is
re-implemented here):

1. ``heads``: :func:`~induction_nnsight.app.heads_job.run_heads` (induction and previous-token scores,
   Benjamini-Hochberg "clearly above").
2. ``ablate``: :func:`~induction_nnsight.app.ablate_job.run_ablate` with ``--search estimate`` (the
   loss by position, the top-k against random-k curve, the verified per-head sweep).
3. ``circuit``: :func:`~induction_nnsight.app.circuit_job.run_circuit` with ``--search estimate``
   into the top induction heads.
4. ``attention``: :func:`~induction_nnsight.app.attention_job.run_attention` on a repeated prompt,
   the top induction head and its strongest key source, with the interactive view.
5. ``icl``: :func:`~induction_nnsight.app.icl_job.run_icl` (Olsson's score on natural text).
6. ``dual-route``: :func:`~induction_nnsight.app.dual_route_job.run_dual_route`, where the model
   and its tokenizer allow it (:func:`dual_route_skip`).

The heads pass, the ablations and the circuit read the same rows (``--batch`` x 2 x ``--seq-len``
repeated random tokens, ``--seed``). Under ``--plan`` the stages run on the weightless model into
one plan and the result is not built.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..causal.cost import passes
from ..causal.dual_route.entities import entity_names, tokenized_entities
from ..errors import InductionError
from ..figures.heads import loss_by_position_figure
from ..models.layout import model_facts
from ..scores.icl import OLSSON_TOKENS
from ..stats import ALPHA, CORRECTION, INTERVAL_METHOD, LEVEL
from .ablate_job import AblateConfig, run_ablate
from .attention_job import AttentionConfig, run_attention
from .circuit_job import CircuitConfig, run_circuit
from .dual_route_job import DualRouteConfig, run_dual_route
from .explain_journal import ExplainJournal
from .explain_result import (
    KINDS,
    Explanation,
    ablation_section,
    attention_section,
    circuit_section,
    dual_route_section,
    heads_section,
    icl_section,
    loss_section,
    report_html,
)
from .explain_text import Q_FLOOR, sentences
from .heads_job import HeadsConfig, run_heads
from .icl_job import IclConfig, run_icl
from .jobs import UNJOURNALED, ScanConfig, model_for
from .options import config_options, like, option, positive
from .results import plain
from .run_context import RunContext, ndif_option

__all__ = [
    "DEFAULT_PROMPT",
    "DUAL_ROUTE",
    "MIN_ENTITIES",
    "MIN_LAYERS",
    "STAGES",
    "NOT_SETTINGS",
    "ExplainConfig",
    "dual_route_skip",
    "explain_settings",
    "rerun_command",
    "run_explain",
]

DEFAULT_PROMPT = "The quick brown fox jumps over the lazy dog while the old cat sleeps."
"""The text the attention view repeats."""
DUAL_ROUTE = ("auto", "on", "off")
"""``--dual-route``: auto runs it where :func:`dual_route_skip` finds no reason not to."""
MIN_LAYERS = 4
"""Fewest layers for the dual-route stage under ``auto``: a concept head needs a layer to gather a
multi-token entity and another to look back at it, a 2-layer model has no room for both."""
MIN_ENTITIES = 16
"""Fewest entity names the tokenizer must split into 2-5 known tokens (none unknown) for ``auto``."""
STAGES = ("heads", "ablate", "circuit", "attention", "icl", "dual-route")
"""The stages in the order they run."""


@dataclass
class ExplainConfig:
    """Settings of ``induction-nnsight explain``: the stages' shared rows and each stage's size."""

    model: str = like(ScanConfig, "model")
    batch: int = like(ScanConfig, "batch", 8, help="rows of random tokens of the heads pass, ablations and circuit")
    seq_len: int = like(ScanConfig, "seq_len", 30)
    seed: int = like(ScanConfig, "seed")
    low: int = like(ScanConfig, "low")
    high: int = like(ScanConfig, "high")
    bos: bool = like(ScanConfig, "bos")
    top_k: int = option(3, help="top induction heads ablated together against as many random heads", parse=positive)
    draws: int = option(5, help="random head sets drawn against the top heads", parse=positive)
    verify: int = option(10, help="heads ablated exactly after the estimate ranks them", parse=positive)
    targets: int = option(
        2, help="induction heads whose inputs the circuit traces", flag="--circuit-top", parse=positive
    )
    prompt: str = option(DEFAULT_PROMPT, help="the text repeated for the attention view", default_text="a sentence")
    icl_windows: int = option(16, help="windows of natural text of the ICL score", parse=positive)
    icl_length: int = option(512, help="tokens per window, BOS included", parse=positive)
    icl_early: int = option(OLSSON_TOKENS[0], help="early token index of the ICL score", parse=positive)
    icl_late: int = option(OLSSON_TOKENS[1], help="late token index of the ICL score", parse=positive)
    dual_route: str = option(
        "auto",
        help=f"token vs concept induction: on, off, or auto (on for models of at least {MIN_LAYERS} layers whose "
        f"tokenizer splits at least {MIN_ENTITIES} entity names into known tokens)",
        choices=DUAL_ROUTE,
    )
    prompts: int = option(16, help="dual-route prompts of each kind for the attention scores", parse=positive)
    copying_prompts: int = option(4, help="dual-route prompts of each kind for the copying scores", parse=positive)
    attn_implementation: str | None = like(ScanConfig, "attn_implementation")
    remote: bool = ndif_option("remote")
    ndif_host: str | None = ndif_option("ndif_host")
    timeout: float = ndif_option("timeout")
    resume: bool = like(
        ScanConfig,
        "resume",
        help="ignore the journal an interrupted run left in the output directory (explain_journal/) and start afresh",
    )

    def _ndif(self) -> dict:
        keys = ("model", "attn_implementation", "remote", "ndif_host", "timeout")
        return {k: getattr(self, k) for k in keys}

    def _rows(self) -> dict:
        return {"batch": self.batch, "seq_len": self.seq_len, "seed": self.seed, "low": self.low, "high": self.high}

    def heads_config(self) -> HeadsConfig:
        """The heads pass: induction and previous-token scores on the shared rows."""
        return HeadsConfig(**self._ndif(), **self._rows(), bos=self.bos, kinds=KINDS, top=max(self.top_k, 5))

    def ablate_config(self) -> AblateConfig:
        """The ablations: top-k against random-k, the per-head sweep by estimate then verify."""
        return AblateConfig(
            **self._ndif(),
            **self._rows(),
            bos=self.bos,
            top_k=self.top_k,
            draws=self.draws,
            search="estimate",
            verify=self.verify,
        )

    def circuit_config(self, targets: str | None = None) -> CircuitConfig:
        """The circuit into the top ``--circuit-top`` induction heads (or ``targets``), by estimate then verify."""
        return CircuitConfig(
            **self._ndif(), **self._rows(), bos=self.bos, top=self.targets, targets=targets, search="estimate"
        )

    def attention_config(self, heads: str = "L0H0") -> AttentionConfig:
        """The attention view of ``heads`` on the prompt repeated twice."""
        return AttentionConfig(**self._ndif(), prompt=self.prompt, repeat=2, bos=self.bos, heads=heads, html=True)

    def icl_config(self) -> IclConfig:
        """Olsson's ICL score on the default natural text."""
        return IclConfig(
            **self._ndif(),
            n_windows=self.icl_windows,
            seed=self.seed,
            length=self.icl_length,
            early=self.icl_early,
            late=self.icl_late,
            bos=self.bos,
        )

    def dual_route_config(self) -> DualRouteConfig:
        """The dual-route job, small: ``--prompts`` and ``--copying-prompts`` per kind, top ``--top-k``."""
        return DualRouteConfig(
            **self._ndif(),
            n_attention=self.prompts,
            n_copying=self.copying_prompts,
            seed=self.seed,
            low=self.low,
            high=self.high,
            top=self.top_k,
        )

    def validate(self) -> None:
        """Check every stage's settings before a model is loaded."""
        if self.dual_route not in DUAL_ROUTE:
            raise InductionError(f"--dual-route takes {', '.join(DUAL_ROUTE)}, got {self.dual_route!r}")
        if not self.prompt.strip():
            raise InductionError("the prompt is empty: pass --prompt TEXT")
        if not 1 <= self.icl_early < self.icl_late < self.icl_length:
            raise InductionError(
                f"--icl-early {self.icl_early}, --icl-late {self.icl_late}, --icl-length {self.icl_length}: "
                "pass 1 <= early < late < length"
            )
        self.heads_config().validate()
        self.ablate_config().validate()
        self.circuit_config().validate()
        self.icl_config().validate()
        self.dual_route_config().validate()

    def validate_for(self, model) -> None:
        """Check the settings against the model's architecture (its weightless form will do)."""
        self.heads_config().validate_for(model)
        self.ablate_config().validate_for(model)
        self.circuit_config().validate_for(model)
        facts = model_facts(model)
        if facts.n_ctx is not None and self.icl_length > facts.n_ctx:
            raise InductionError(
                f"--icl-length {self.icl_length} is past the model's context of {facts.n_ctx}: pass --icl-length "
                f"{facts.n_ctx} or less (and --icl-late below it)"
            )
        if facts.n_layers < 2:
            raise InductionError(f"{self.model} has {facts.n_layers} layer: a circuit needs at least 2 layers")
        if self.dual_route == "on" and (reason := dual_route_skip(model)):
            raise InductionError(f"--dual-route on, but {reason}: pass --dual-route auto or off")


def dual_route_skip(model) -> str | None:
    """Why the dual-route stage cannot say anything on ``model`` (None: it can run).

    Returns:
        A clause (``"the model has 2 layers, fewer than 4"``) or None.
    """
    facts = model_facts(model)
    if facts.n_layers < MIN_LAYERS:
        return f"the model has {facts.n_layers} layers, fewer than the {MIN_LAYERS} concept induction needs"
    tokenizer = model.tokenizer
    unknown = getattr(tokenizer, "unk_token_id", None)
    names = entity_names()
    kept = [e for e in tokenized_entities(tokenizer, names, vocab_size=facts.vocab_size) if unknown not in e.ids]
    if len(kept) < MIN_ENTITIES:
        return (
            f"its tokenizer splits {len(kept)} of {len(names)} entity names into 2-5 known tokens, fewer than "
            f"the {MIN_ENTITIES} needed"
        )
    return None


def _progress(stage: str, text: str) -> None:
    number = STAGES.index(stage) + 1
    print(f"explain [{number}/{len(STAGES)}] {stage}: {text}", file=sys.stderr, flush=True)


def _cost(cost: dict, seconds: float) -> dict:
    return {
        "seconds": round(seconds, 2),
        "forward_passes": round(float(cost.get("forward_passes", 0.0)), 2),
        "backward_passes": round(float(cost.get("backward_passes", 0.0)), 2),
        "tokens": int(cost.get("tokens", 0)),
    }


class _Stages:
    """Runs each stage with a line on stderr before and after, and keeps its time and passes; with a
    :class:`~induction_nnsight.app.explain_journal.ExplainJournal`, reads a finished stage back instead and
    runs an unfinished one with its own chunk journal."""

    def __init__(self, context: RunContext, journal: ExplainJournal | None = None):
        self.context = context
        self.journal = journal
        self.costs: dict[str, dict] = {}

    def run(self, stage: str, what: str, job: Callable[[RunContext], tuple]) -> tuple[dict, dict[str, str]]:
        """``job(context)`` -> ``(results, files, cost)``, or the stage's record when an earlier run finished it.

        Returns:
            ``(results, files)``: plain data (as the stage's record holds it, where there is a journal).
        """
        if self.journal is not None and (record := self.journal.finished(stage)) is not None:
            self.costs[stage] = record["cost"]
            _progress(stage, f"resumed from {self.journal.folder} (finished by an earlier run)")
            return record["results"], record["files"]
        _progress(stage, what)
        context = self.context
        if self.journal is not None:
            context = context.replace(journal=self.journal.chunks(stage))
        requests = len(context.plan.requests) if context.planned else 0
        started = time.perf_counter()
        results, files, cost = job(context)
        seconds = time.perf_counter() - started
        self.costs[stage] = _cost(cost, seconds)
        if context.planned:
            plan = context.plan
            sent = plan.requests[requests:]
            seconds = sum(r.flops for r in sent) / plan.flop_rate
            _progress(stage, f"planned {len(sent)} request(s), {seconds:.1f} s of server time")
        else:
            c = self.costs[stage]
            _progress(stage, f"done in {seconds:.1f} s ({c['forward_passes']:g} forward row passes)")
        if self.journal is not None:
            record = self.journal.record(stage, {"results": plain(results), "files": files, "cost": self.costs[stage]})
            return record["results"], record["files"]
        return results, files

    def skip(self, stage: str, reason: str) -> None:
        _progress(stage, f"skipped: {reason}")


def _strongest_k_source(circuit: dict, target: str) -> str | None:
    edges = [e for e in circuit["edges"] if e["target"] == target and e["path"] == "k" and e["verified"]]
    return min(edges, key=lambda e: e["effect"])["source"] if edges else None


def run_explain(
    config: ExplainConfig, model=None, context: RunContext | None = None, out: str | Path | None = None
) -> tuple[Explanation | None, dict[str, str]]:
    """Run every stage on one model and gather what they found.

    Args:
        config: The settings.
        model: An already loaded model (loaded from ``config.model`` when None).
        context: How the stages run (device, plan, request budgets; None: ``RunContext()``).
        out: The output directory whose ``explain_journal/`` records each finished stage and each stage's
            chunks (:mod:`~induction_nnsight.app.explain_journal`), so that a rerun after an interruption
            resumes (unless ``config.resume`` is False); None keeps no journal.

    Returns:
        ``(explanation, files)``: the :class:`Explanation` (with its sentences) and
        ``{"explain.html", "explain_results.json"} -> text``; ``(None, {})`` under ``--plan``.
    """
    config.validate()
    context = context or RunContext()
    model = model_for(config, model, context)
    config.validate_for(model)
    facts = {**asdict(model_facts(model)), "name": config.model}
    reason = "--dual-route off" if config.dual_route == "off" else None
    if reason is None and config.dual_route == "auto":
        reason = dual_route_skip(model)  # decided before any stage runs
    journal = None
    if out is not None and not context.planned:
        settings = {k: v for k, v in explain_settings(config).items() if k not in UNJOURNALED}  # not where it ran
        journal = ExplainJournal.open(out, settings, resume=config.resume)
    stages = _Stages(context, journal)
    started = time.perf_counter()

    def heads_job(context: RunContext):
        results, files, _ = run_heads(config.heads_config(), model, context)
        return results, files, passes(config.batch, int(config.bos) + 2 * config.seq_len, forward=1).as_dict()

    heads, heads_files = stages.run("heads", "induction and previous-token scores of every head", heads_job)
    ablate, ablate_files = stages.run(
        "ablate",
        f"top {config.top_k} heads against random heads, per-head sweep by estimate then verify",
        lambda context: _with_cost(*run_ablate(config.ablate_config(), model, context=context)),
    )
    circuit, circuit_files = stages.run(
        "circuit",
        f"what feeds the top {config.targets} induction heads, by estimate then verify",
        lambda context: _with_cost(*run_circuit(config.circuit_config(), model, context=context)),
    )
    top = circuit["targets"][0]["head"]
    source = _strongest_k_source(circuit, top)
    shown = ",".join([top] + ([source] if source and source != top else []))
    attention_cfg = config.attention_config(shown)

    def attention_job(context: RunContext):
        results, files, _ = run_attention(attention_cfg, model, context)
        return results, files, passes(1, len(results["tokens"]), forward=1).as_dict()

    attention, attention_files = stages.run("attention", f"{shown} on the prompt repeated", attention_job)
    attention_scores = {}
    for name in shown.split(","):
        attention_scores[name] = _read_json(attention_files[f"attention_{name}_results.json"])["induction_exact_score"]

    def icl_job(context: RunContext):
        results, files = run_icl(config.icl_config(), model, context=context)
        return results, files, passes(config.icl_windows, config.icl_length, forward=1).as_dict()

    icl = icl_files = icl_skipped = None
    try:
        icl, icl_files = stages.run("icl", f"Olsson's ICL score on {config.icl_windows} windows of text", icl_job)
    except InductionError as error:  # a text too short for the windows, a model without a tokenizer ...
        icl_skipped = str(error)
        stages.skip("icl", icl_skipped)
    dual = dual_files = None
    if reason is None:
        dual, dual_files = stages.run(
            "dual-route",
            "token vs concept induction heads",
            lambda context: _with_cost(*run_dual_route(config.dual_route_config(), model, context=context)),
        )
    else:
        stages.skip("dual-route", reason)
    if context.planned:
        return None, {}
    total = time.perf_counter() - started
    explanation = Explanation(
        model=config.model,
        model_facts=facts,
        settings={
            **explain_settings(config),
            "interval": INTERVAL_METHOD,
            "interval_percent": round(LEVEL * 100),
            "correction": CORRECTION,
            "false_discovery_rate": ALPHA,
            "q_floor": Q_FLOOR,
            "stages": list(STAGES),
        },
        heads=heads_section(heads),
        loss=loss_section(heads, ablate),
        ablation=ablation_section(ablate),
        circuit=circuit_section(circuit),
        attention=attention_section(shown.split(","), attention_scores, len(attention["tokens"]), attention_cfg.repeat),
        icl=icl_section(icl, icl_skipped),
        dual_route=dual_route_section(dual, reason),
        cost={"stages": stages.costs, "total": _total(stages.costs, total)},
    )
    explanation.figures = {
        "induction scores": heads_files["heads_induction.json"],
        "previous-token scores": heads_files["heads_previous_token.json"],
        "loss by position": loss_by_position_figure(
            [float("nan") if v is None else v for v in explanation.loss["by_position"]],
            config.seq_len,
            config.bos,
            title=f"Mean loss by position — {config.model}",
            subtitle=config.heads_config().describe_tokens(),
        ).to_json(),
        "ablation curve": ablate_files["ablation_curve.json"],
        "per-head ablation": ablate_files["ablation_heads.json"],
        "circuit graph": circuit_files["circuit_graph.json"],
    }
    if icl_files is not None:
        explanation.figures["ICL loss by token"] = icl_files["icl_loss_by_token.json"]
    if dual_files is not None:
        explanation.figures["dual-route copying"] = dual_files["dual_route_copying_scatter.json"]
    explanation.attention_html = attention_files["attention_view.html"]
    explanation.sentences = sentences(explanation)
    files = {
        "explain_results.json": explanation.to_json(),
        "explain.html": report_html(explanation, rerun_command(explanation.settings)),
    }
    return explanation, files


def explain_settings(config: ExplainConfig) -> dict:
    """``config``'s settings as the results and the journal record them: every field but ``resume`` (how the
    run starts, not what it finds)."""
    return {k: v for k, v in asdict(config).items() if k not in NOT_SETTINGS}


NOT_SETTINGS = ("resume",)
"""Fields of :class:`ExplainConfig` that are not settings of the report (``--no-resume``)."""


def rerun_command(settings: dict) -> str:
    """The command line that reruns ``explain`` with these settings (every option spelled out)."""
    words = ["induction-nnsight", "explain"]
    for opt in config_options(ExplainConfig):
        if opt.dest in NOT_SETTINGS:
            continue
        value = settings[opt.dest]
        if opt.switch:
            if value != opt.default:
                words.append(opt.name)
        elif value is not None:
            words += [opt.name, shlex.quote(str(value))]
    return " ".join(words)


def _with_cost(results: dict, files: dict[str, str]) -> tuple[dict, dict[str, str], dict]:
    """A job's ``(results, files)`` and the passes its results record (``cost``)."""
    return results, files, results.get("cost") or {}


def _total(costs: dict[str, dict], seconds: float) -> dict:
    return {
        "seconds": round(seconds, 2),
        "forward_passes": round(sum(c["forward_passes"] for c in costs.values()), 2),
        "backward_passes": round(sum(c["backward_passes"] for c in costs.values()), 2),
        "tokens": sum(c["tokens"] for c in costs.values()),
    }


def _read_json(text: str) -> dict:
    from ..strict_json import parse_strict

    return parse_strict(text)
