"""Jobs: typed settings in, results and chart files out. The CLI and scripts call these."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ..errors import InductionError
from ..figures.heads import top_heads_figure
from ..models.layout import model_facts, model_layout
from ..models.loading import DEFAULT_MODEL, load_model
from ..models.weightless import weightless_model
from ..ndif.journal import Journal, journal_path
from ..ndif.settings import resolve_host
from ..ndif.transfers import describe_transfers
from ..probes.checks import REPEATED_HALF, check_rows_fit, check_token_grid
from ..probes.tokens import DEFAULT_HIGH, DEFAULT_LOW, repeated_tokens, repeated_tokens_probe
from ..scores.detect import confirm_heads, detections
from ..scores.heads import head_scores
from ..scores.losses import half_losses
from ..scores.registry import get_score, score_names
from ..scores.scan import scan
from .options import option, positive
from .outputs import rounded, table, to_json
from .report import text_report, top_heads
from .run_context import RunContext, ndif_option

UNJOURNALED = ("remote", "ndif_host", "timeout", "resume", "progress", "out")
"""Settings that do not change a journaled chunk's result (where it ran, how long to wait)."""


def open_journal(config, out_dir, command: str) -> Journal:
    """Open ``<out_dir>/<command>_journal.json`` for ``config``'s job: an earlier run's unless ``--no-resume``;
    its settings are ``config``'s but for :data:`UNJOURNALED`.

    Returns:
        The journal, for the job's :class:`~induction_nnsight.app.run_context.RunContext`.

    Raises:
        InductionError: The journal was written with other settings (named in the message).
    """
    settings = {k: v for k, v in asdict(config).items() if k not in UNJOURNALED}
    return Journal.open(
        journal_path(out_dir, command), {"command": command, **settings}, resume=getattr(config, "resume", True)
    )


@dataclass
class ScanConfig:
    """Settings of ``induction-nnsight scan`` (each field's option: :func:`~.options.option`)."""

    model: str = option(
        DEFAULT_MODEL,
        help="Hub id (openai-community/gpt2), local model directory or .gguf file, or the offline default",
    )
    batch: int = option(10, help="rows of random tokens", parse=positive)
    seq_len: int = option(50, help="length of the repeated block", parse=positive)
    seed: int = option(0, help="seed of the token generator", parse=int)
    low: int = option(DEFAULT_LOW, help="smallest token id drawn", parse=int)
    high: int = option(DEFAULT_HIGH, help="token ids drawn below this", parse=int)
    bos: bool = option(True, help="do not prepend the BOS token")
    top: int = option(10, help="heads in the printed table", parse=positive)
    attn_implementation: str | None = option(None, help="eager, sdpa, ... (the model's default when omitted)")
    remote: bool = ndif_option("remote")
    ndif_host: str | None = ndif_option("ndif_host")
    timeout: float = ndif_option("timeout")
    resume: bool = option(
        True,
        help="ignore the journal an interrupted run left in the output directory and start afresh",
    )

    def validate_tokens(self) -> None:
        """Check the token and NDIF settings, before a model is loaded."""
        if not self.timeout > 0:
            raise InductionError(f"--timeout must be a positive number of seconds, got {self.timeout}")
        check_token_grid(self.batch, self.seq_len, self.low, self.high)

    def validate(self) -> None:
        """Check what can be checked before a model is loaded."""
        self.validate_tokens()
        if self.top < 1:
            raise InductionError(f"--top must be at least 1, got {self.top}")

    def validate_for(self, model) -> None:
        """Check the settings against the model's architecture (its config: a weightless model will do),
        before a forward pass: the rows fit its context and the token range its vocabulary."""
        scan_tokens(model, replace(self, batch=1), n_repeats=getattr(self, "n_repeats", 2))  # one row drawn

    def describe_tokens(self, n_repeats: int = 2) -> str:
        """Subtitle (rows x copies x block): ``10 x 2 x 50 repeated random tokens in [1000, 10000), seed 0``."""
        return (
            f"{self.batch} x {n_repeats} x {self.seq_len} repeated random tokens in [{self.low}, {self.high}), "
            f"seed {self.seed}{'' if self.bos else ', no BOS'}"
        )


def check_causal_tokens(config: ScanConfig) -> None:
    """:meth:`ScanConfig.validate_tokens`, and a repeated block of at least 2 tokens (a repeated half to score)."""
    config.validate_tokens()
    check_token_grid(config.batch, config.seq_len, min_seq_len=REPEATED_HALF)


def check_indices(values: list[int] | None, size: int, option: str, what: str) -> None:
    """Refuse ``values`` outside ``0..size-1``, naming ``option``."""
    bad = [v for v in values or [] if not 0 <= v < size]
    if bad:
        raise InductionError(f"{what} {bad[0]} is outside 0..{size - 1}: pass {option} within that range")


def scan_tokens(model, config: ScanConfig, n_repeats: int = 2):
    """Repeated tokens for ``config``, checked against the model's vocabulary and context.

    Returns:
        ``LongTensor[batch, bos + n_repeats * seq_len]``.
    """
    check_rows_fit(model, config.model, config.seq_len, bos=config.bos, n_repeats=n_repeats)
    facts = model_facts(model)
    return repeated_tokens(
        config.batch,
        config.seq_len,
        seed=config.seed,
        low=config.low,
        high=config.high,
        bos_token_id=facts.bos_token_id if config.bos else None,
        vocab_size=facts.vocab_size,
        n_repeats=n_repeats,
    )


def model_for(config, model=None, context: RunContext | None = None):
    """``model`` if given, else the model ``config`` names (``model``, ``attn_implementation``, ``remote``)
    on the ``context``'s device; its weightless architecture under ``--plan``."""
    if model is not None:
        return model
    context = context or RunContext()
    if context.planned:
        return weightless_model(config.model, config.attn_implementation)
    return load_model(
        config.model,
        attn_implementation=config.attn_implementation,
        remote=config.remote,
        device=context.device,
    )


def preflight(config) -> None:
    """Check every setting before the weights load: ``config.validate_for`` on the model's weightless
    architecture (its config only; no weights are read). Skipped where no config is to be had here (a Hub
    id offline, a ``.gguf`` file): the load then says why in one line.

    Raises:
        InductionError: A setting the model cannot take (``--heads L99H0``, ``--seq-len`` past its context).
    """
    check = getattr(config, "validate_for", None)
    if check is None or getattr(config, "model", None) is None:
        return
    try:
        architecture = weightless_model(config.model, config.attn_implementation)
        model_layout(architecture)  # a layout found by what its modules compute needs weights: the load checks it
    except Exception:  # no config here, an attention kernel the family lacks, ...: the load says why in one line
        return
    check(architecture)


def run_scan(config: ScanConfig, model=None, context: RunContext | None = None) -> tuple[dict, dict[str, str]]:
    """Run a scan and build its result dict and chart JSON texts.

    Args:
        config: The settings.
        model: An already loaded model (loaded from ``config.model`` when None).
        context: How the job runs (device, plan, request budgets, journal; None: ``RunContext()``).

    Returns:
        ``(results, files)``: the machine-readable results and
        ``{"loss_by_position.json", "induction_scores.json", "scan_results.json"} -> text``.
    """
    config.validate()
    context = context or RunContext()
    execution = context.execution(config)
    model = model_for(config, model, context)
    tokens = scan_tokens(model, config)
    result = scan(model, tokens, config.seq_len, execution=execution)
    first, repeated = half_losses(result.loss_by_position, config.seq_len, config.bos)
    facts = model_facts(model)
    results = {
        "model": config.model,
        "model_facts": {**asdict(facts), "name": config.model},
        "settings": asdict(config),
        "n_tokens_per_row": int(tokens.shape[1]),
        "loss_by_position": table(result.loss_by_position),
        "mean_loss_first_half": rounded(first),
        "mean_loss_repeated_half": rounded(repeated),
        "induction_scores": table(result.induction_scores),
        "top_heads": top_heads(result.induction_scores, config.top),
    }
    if remote := execution.remote:  # what crossed the network (never the API key)
        results["ndif"] = {"host": resolve_host(remote.host), **describe_transfers(remote.transfers)}
    loss_fig = result.figure(
        "loss_by_position", title=f"Mean loss by position — {config.model}", subtitle=config.describe_tokens()
    )
    score_fig = result.figure(
        "induction_scores", title=f"Induction score per head — {config.model}", subtitle=config.describe_tokens()
    )
    files = {
        "loss_by_position.json": loss_fig.to_json(),
        "induction_scores.json": score_fig.to_json(),
        "scan_results.json": to_json(results),
    }
    return results, files


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


def run_heads(config: HeadsConfig, model=None, context: RunContext | None = None) -> tuple[dict, dict[str, str], str]:
    """Score every kind in one pass; build results, charts and the text report.

    Args:
        config: The settings.
        model: An already loaded model (loaded from ``config.model`` when None).
        context: How the job runs (None: ``RunContext()``).

    Returns:
        ``(results, files, report_text)``; ``files`` maps ``heads_results.json``,
        ``heads_top.json`` and ``heads_<kind>.json`` to their JSON text.
    """
    config.validate()
    context = context or RunContext()
    model = model_for(config, model, context)
    tokens = scan_tokens(model, config, n_repeats=config.n_repeats)
    facts = model_facts(model)
    probe = repeated_tokens_probe(tokens, config.seq_len, bos=config.bos)
    scores = head_scores(model, probe, kinds=config.kinds, execution=context.execution(config))
    settings = {**asdict(config), "kinds": list(scores.kinds)}
    found = detections(scores, config.threshold, settings)
    settings |= {
        key: found[kind].settings[key]
        for kind in found
        for key in ("interval", "correction")
        if key in found[kind].settings
    }
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
    results = {
        "model": config.model,
        "model_facts": facts_dict,
        "settings": settings,
        "descriptions": {k: get_score(k).description for k in found},
        "mean_loss_first_half": rounded(first),
        "mean_loss_repeated_half": rounded(repeated),
        "kinds": {
            kind: {**d.to_dict(), "top": tops[kind], **({"confirmed": confirmed[kind]} if kind in confirmed else {})}
            for kind, d in found.items()
        },
    }
    subtitle = config.describe_tokens(config.n_repeats)
    files = {
        "heads_results.json": to_json(results),
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
    return results, files, report


CONFIRM_SEED = 1000
"""``heads --confirm`` scores the top heads again on the rows of seed ``--seed + CONFIRM_SEED``."""


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
