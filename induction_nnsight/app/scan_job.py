"""The scan job behind ``induction-nnsight scan``: the loss by position and every head's induction score
on repeated random tokens, in one pass; ``scan_results.json``, ``loss_by_position.json`` and
``induction_scores.json``."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..models.layout import model_facts
from ..ndif.settings import resolve_host
from ..ndif.transfers import describe_transfers
from ..scores.losses import half_losses
from ..scores.scan import scan
from .jobs import ScanConfig, model_for, scan_tokens
from .outputs import rounded, table
from .report import top_heads
from .results import JobResult, optional
from .run_context import RunContext

__all__ = ["ScanJobResult", "run_scan"]


@dataclass(eq=False)
class ScanJobResult(JobResult):
    """What a scan found (``scan_results.json``, in this order).

    Attributes:
        model: The model's name or path.
        model_facts: Its layout facts, with ``name``.
        settings: The :class:`~induction_nnsight.app.jobs.ScanConfig`, as a dict.
        n_tokens_per_row: Tokens of each row (BOS and both copies).
        loss_by_position: ``[pos - 1]`` mean loss (nats).
        mean_loss_first_half: Mean loss on the first copy (nats; None where undefined).
        mean_loss_repeated_half: Mean loss on the repeated copy (nats).
        induction_scores: ``[n_layers][n_heads]`` mean induction scores.
        top_heads: The ``--top`` heads, best first (``{"layer", "head", "score"}``).
        ndif: What crossed the network (run with ``--remote``; left out otherwise).
    """

    model: str
    model_facts: dict
    settings: dict
    n_tokens_per_row: int
    loss_by_position: list
    mean_loss_first_half: float | None
    mean_loss_repeated_half: float | None
    induction_scores: list
    top_heads: list[dict]
    ndif: dict | None = optional()


def run_scan(config: ScanConfig, model=None, context: RunContext | None = None) -> tuple[ScanJobResult, dict[str, str]]:
    """Run a scan and build its result and chart JSON texts.

    Args:
        config: The settings.
        model: An already loaded model (loaded from ``config.model`` when None).
        context: How the job runs (device, plan, request budgets, journal; None: ``RunContext()``).

    Returns:
        ``(result, files)``: the :class:`ScanJobResult` and
        ``{"loss_by_position.json", "induction_scores.json", "scan_results.json"} -> text``.
    """
    config.validate()
    context = context or RunContext()
    execution = context.execution(config)
    model = model_for(config, model, context)
    tokens = scan_tokens(model, config)
    found = scan(model, tokens, config.seq_len, execution=execution)
    first, repeated = half_losses(found.loss_by_position, config.seq_len, config.bos)
    facts = model_facts(model)
    remote = execution.remote
    result = ScanJobResult(
        model=config.model,
        model_facts={**asdict(facts), "name": config.model},
        settings=asdict(config),
        n_tokens_per_row=int(tokens.shape[1]),
        loss_by_position=table(found.loss_by_position),
        mean_loss_first_half=rounded(first),
        mean_loss_repeated_half=rounded(repeated),
        induction_scores=table(found.induction_scores),
        top_heads=top_heads(found.induction_scores, config.top),
        # what crossed the network (never the API key)
        ndif={"host": resolve_host(remote.host), **describe_transfers(remote.transfers)} if remote else None,
    )
    loss_fig = found.figure(
        "loss_by_position", title=f"Mean loss by position — {config.model}", subtitle=config.describe_tokens()
    )
    score_fig = found.figure(
        "induction_scores", title=f"Induction score per head — {config.model}", subtitle=config.describe_tokens()
    )
    files = {
        "loss_by_position.json": loss_fig.to_json(),
        "induction_scores.json": score_fig.to_json(),
        "scan_results.json": result.to_json(),
    }
    return result, files
