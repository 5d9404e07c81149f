"""``induction-nnsight icl``: loss by token index and Olsson's in-context-learning score on natural text;
``icl_results.json`` and ``icl_loss_by_token.json``."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import InductionError
from ..figures.dual_route import icl_loss_figure
from ..models.layout import model_facts
from ..scores.icl import OLSSON_TOKENS, default_text, read_text, text_icl
from .jobs import ScanConfig, model_for
from .options import like, option, positive
from .outputs import rounded, table
from .report import with_interval
from .results import JobResult
from .run_context import RunContext, ndif_option

__all__ = ["IclConfig", "IclJobResult", "icl_summary", "run_icl"]


@dataclass
class IclConfig:
    """Settings of ``induction-nnsight icl``."""

    model: str = like(ScanConfig, "model")
    text: str | None = option(
        None,
        help="a UTF-8 text file, or a directory of .txt/.md/.rst files",
        metavar="FILE|DIR",
        default_text="the Python language reference's help topics (pydoc_data.topics)",
    )
    n_windows: int = option(
        32, help="windows of text scored, drawn across the whole text", flag="--windows", parse=positive
    )
    seed: int = option(0, help="seed of the windows' places in the text", parse=int)
    length: int = option(512, help="tokens per window, BOS included", parse=positive)
    early: int = option(OLSSON_TOKENS[0], help="early token index of the ICL score", parse=positive)
    late: int = option(OLSSON_TOKENS[1], help="late token index of the ICL score", parse=positive)
    bos: bool = like(ScanConfig, "bos")
    attn_implementation: str | None = like(ScanConfig, "attn_implementation")
    remote: bool = ndif_option("remote")
    ndif_host: str | None = ndif_option("ndif_host")
    timeout: float = ndif_option("timeout")

    def validate(self) -> None:
        """Check what can be checked before a model is loaded."""
        if not 1 <= self.early < self.late < self.length:
            raise InductionError(
                f"--early {self.early}, --late {self.late}, --length {self.length}: pass 1 <= early < late < length"
            )
        if not self.timeout > 0:
            raise InductionError(f"--timeout must be a positive number of seconds, got {self.timeout}")
        if self.text is not None:
            read_text(self.text)  # a missing or unreadable path is refused before a model loads


@dataclass(eq=False)
class IclJobResult(JobResult):
    """What the ICL job found (``icl_results.json``, in this order).

    Attributes:
        model: The model's name or path.
        model_facts: Its layout facts, with ``name``.
        settings: The :class:`IclConfig` as a dict.
        source: Where the text came from.
        n_windows: Windows scored.
        n_text_tokens: Tokens of the whole text.
        first_token_index: The token index of ``loss_by_token_index[0]`` (1: the first predicted token).
        loss_by_token_index: ``[length - 1]`` mean loss (nats).
        positions: ``[early, late]`` token indices of the score.
        loss_at_early: Mean loss at the early index (nats).
        loss_at_late: Mean loss at the late index (nats).
        olsson_icl_score: ``{"mean", "ci_low", "ci_high"}``: the late minus the early loss (nats).
    """

    model: str
    model_facts: dict
    settings: dict
    source: str
    n_windows: int
    n_text_tokens: int
    first_token_index: int
    loss_by_token_index: list
    positions: list[int]
    loss_at_early: float | None
    loss_at_late: float | None
    olsson_icl_score: dict


def run_icl(
    config: IclConfig, model=None, progress: bool = True, context: RunContext | None = None
) -> tuple[IclJobResult, dict[str, str]]:
    """Score windows of natural text.

    Args:
        config: The settings.
        model: An already loaded model (loaded from ``config.model`` when None).
        progress: Show progress bars over the job's traces.
        context: How the job runs (device, plan, request budgets, journal; None: ``RunContext()``).

    Returns:
        ``(result, files)``: the :class:`IclJobResult`; ``icl_results.json`` (``loss_by_token_index``, ``positions``,
        ``olsson_icl_score`` with its interval, the text's ``source``) and ``icl_loss_by_token.json``.
    """
    config.validate()
    text, source = read_text(config.text) if config.text is not None else default_text()
    context = context or RunContext()
    model = model_for(config, model, context)
    facts = model_facts(model)
    found = text_icl(
        model,
        text,
        (config.n_windows, config.length),
        (config.early, config.late),
        bos=config.bos,
        seed=config.seed,
        execution=context.execution(config, progress),
    )
    losses, score = found.losses, found.score  # [n_windows, length - 1]
    mean = losses.mean(0)
    results = IclJobResult(
        model=config.model,
        model_facts={**asdict(facts), "name": config.model},
        settings=asdict(config),
        source=source,
        n_windows=int(losses.shape[0]),
        n_text_tokens=found.n_tokens,
        first_token_index=1,
        loss_by_token_index=table(mean),
        positions=[config.early, config.late],
        loss_at_early=rounded(mean[config.early - 1]),
        loss_at_late=rounded(mean[config.late - 1]),
        olsson_icl_score={k: rounded(v) for k, v in score.items()},
    )
    figure = icl_loss_figure(
        results.loss_by_token_index,
        (config.early, config.late),
        title=f"Loss by token index on natural text — {config.model}",
        subtitle=f"{config.n_windows} windows of {config.length} tokens of {source}",
    )
    return results, {"icl_results.json": results.to_json(), "icl_loss_by_token.json": figure.to_json()}


def icl_summary(result: IclJobResult) -> str:
    """The line ``icl`` prints: the loss at both positions and Olsson's score with its interval."""
    score = result.olsson_icl_score
    early, late = result.positions
    return (
        f"{result.n_windows} windows of {result.source}: loss {result.loss_at_early:.3f} nats at token "
        f"{early}, {result.loss_at_late:.3f} at token {late}; Olsson ICL score "
        + with_interval(score["mean"], score["ci_low"], score["ci_high"], sign=True)
    )
