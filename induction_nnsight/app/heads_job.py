"""The heads job behind ``induction-nnsight heads`` and ``report``: every registered head score in one
pass, each kind's heads detected with intervals (Benjamini-Hochberg "clearly above"), and with
``--confirm`` the top heads scored again on fresh rows."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ..errors import InductionError
from ..figures.heads import top_heads_figure
from ..models.layout import model_facts
from ..probes.tokens import repeated_tokens_probe
from ..scores.detect import confirm_heads, detection_settings, detections
from ..scores.heads import head_scores
from ..scores.losses import half_losses
from ..scores.registry import get_score, score_names
from .jobs import ScanConfig, model_for, scan_tokens
from .options import option, positive
from .outputs import rounded
from .report import text_report
from .results import JobResult
from .run_context import RunContext

__all__ = ["CONFIRM_SEED", "HeadsConfig", "HeadsJobResult", "run_heads"]

CONFIRM_SEED = 1000
"""``heads --confirm`` scores the top heads again on the rows of seed ``--seed + CONFIRM_SEED``."""


@dataclass
class HeadsConfig(ScanConfig):
    """Settings of ``induction-nnsight heads`` and ``report``."""

    top: int = option(10, help="heads listed per kind", parse=positive, cli_default=5)
    kinds: tuple[str, ...] | None = option(
        None,
        help=lambda: f"which scores: {', '.join(score_names())}",
        nargs="+",
        metavar="KIND",
        finish=tuple,
        default_text="every registered one",
    )
    threshold: float | None = option(
        None,
        help="detection threshold, within each score's range",
        parse=float,
        default_text="each score's own, 0.4 for the built-in ones",
    )
    n_repeats: int = option(2, help="copies of the random block per row", flag="--repeats", parse=int)
    confirm: bool = option(
        False, help="score the top heads again on fresh rows (seed + 1000): intervals not conditional on their ranking"
    )

    def validate(self) -> None:
        super().validate()
        for kind in self.kinds if self.kinds is not None else ():
            if kind not in score_names():
                raise InductionError(f"unknown kind {kind!r}: pass --kinds from {', '.join(score_names())}")
        if self.threshold is not None:
            for kind in self.kinds if self.kinds is not None else score_names():
                get_score(kind).check_threshold(self.threshold)
        if self.n_repeats < 2:
            raise InductionError(f"--repeats must be at least 2, got {self.n_repeats}")


@dataclass(eq=False)
class HeadsJobResult(JobResult):
    """What the heads pass found (``heads_results.json``, in this order).

    Attributes:
        model: The model's name or path.
        model_facts: Its layout facts, with ``name``.
        settings: The :class:`HeadsConfig` as a dict, the kinds scored, the intervals' method and correction
            (:func:`~induction_nnsight.scores.detect.detection_settings`) and what the top heads' intervals are on.
        descriptions: ``{kind: description}``.
        mean_loss_first_half: Mean loss on the first copy (nats).
        mean_loss_repeated_half: Mean loss on the repeated copies (nats).
        kinds: ``{kind: detection}``: each :meth:`~induction_nnsight.scores.detect.HeadDetection.to_dict`
            with its ``top`` heads (and ``confirmed``, under ``--confirm``).
    """

    model: str
    model_facts: dict
    settings: dict
    descriptions: dict[str, str]
    mean_loss_first_half: float | None
    mean_loss_repeated_half: float | None
    kinds: dict[str, dict]


def run_heads(
    config: HeadsConfig, model=None, context: RunContext | None = None
) -> tuple[HeadsJobResult, dict[str, str], str]:
    """Score every kind in one pass; build the result, charts and the text report.

    Args:
        config: The settings.
        model: An already loaded model (loaded from ``config.model`` when None).
        context: How the job runs (None: ``RunContext()``).

    Returns:
        ``(result, files, report_text)``; ``files`` maps ``heads_results.json``,
        ``heads_top.json`` and ``heads_<kind>.json`` to their JSON text.
    """
    config.validate()
    context = context or RunContext()
    model = model_for(config, model, context)
    tokens = scan_tokens(model, config, n_repeats=config.n_repeats)
    facts = model_facts(model)
    probe = repeated_tokens_probe(tokens, config.seq_len, bos=config.bos)
    scores = head_scores(model, probe, kinds=config.kinds, execution=context.execution(config))
    settings = detection_settings(scores, {**asdict(config), "kinds": list(scores.kinds)})
    found = detections(scores, config.threshold, settings)
    first, repeated = half_losses(scores.loss_by_position, config.seq_len, config.bos)
    facts_dict = {**asdict(facts), "name": config.model}
    tops = {kind: d.top(config.top) for kind, d in found.items()}
    confirmed = _confirmed(model, config, context, found, tops) if config.confirm else {}
    settings["top_intervals"] = (
        f"the top heads' intervals are on {config.batch} fresh rows (seed {config.seed + CONFIRM_SEED}), "
        "not on the rows that ranked them (under each kind's 'confirmed')"
        if confirmed
        else "the top heads' intervals are on the rows that ranked them (conditional on that ranking; "
        "--confirm scores them again on fresh rows)"
    )
    result = HeadsJobResult(
        model=config.model,
        model_facts=facts_dict,
        settings=settings,
        descriptions={k: get_score(k).description for k in found},
        mean_loss_first_half=rounded(first),
        mean_loss_repeated_half=rounded(repeated),
        kinds={
            kind: {**d.to_dict(), "top": tops[kind], **({"confirmed": confirmed[kind]} if kind in confirmed else {})}
            for kind, d in found.items()
        },
    )
    subtitle = config.describe_tokens(config.n_repeats)
    files = {
        "heads_results.json": result.to_json(),
        "heads_top.json": top_heads_figure(
            tops,
            f"Top heads of each kind — {config.model}",
            subtitle,
            units={kind: get_score(kind).unit for kind in tops},
        ).to_json(),
    }
    for kind, d in found.items():
        files[f"heads_{kind}.json"] = d.figure(
            title=f"{kind.replace('_', ' ').capitalize()} score per head — {config.model}",
            subtitle=subtitle,
        ).to_json()
    report = text_report(facts_dict, confirmed or tops, (first, repeated))
    if confirmed:
        report += f"\n(scores and intervals of the top heads on fresh rows, seed {config.seed + CONFIRM_SEED})"
    return result, files, report


def _confirmed(model, config: HeadsConfig, context: RunContext, found: dict, tops: dict) -> dict[str, list[dict]]:
    """Each kind's top heads scored on fresh rows (:func:`~induction_nnsight.scores.detect.confirm_heads`)."""
    measured = [kind for kind, d in found.items() if d.q_above is not None]
    if not measured:
        return {}
    fresh_tokens = scan_tokens(model, replace(config, seed=config.seed + CONFIRM_SEED), n_repeats=config.n_repeats)
    probe = repeated_tokens_probe(fresh_tokens, config.seq_len, bos=config.bos)
    fresh = head_scores(model, probe, kinds=measured, execution=context.execution(config))
    return {
        kind: confirm_heads(fresh, kind, [(h["layer"], h["head"]) for h in tops[kind]], found[kind].threshold)
        for kind in measured
    }
