"""What every job builds on: the model and token settings (:class:`ScanConfig`), the checks before a
model loads (:func:`preflight`), the model (:func:`model_for`), the repeated rows (:func:`scan_tokens`) and
the journal an interrupted job resumes from (:func:`open_journal`).

Each job is a module of its own, ``<command>_job.py`` (``scan_job``, ``heads_job``, ``ablate_job``, ...):
typed settings in, a typed result (:class:`~induction_nnsight.app.results.JobResult`) and chart files out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ..errors import InductionError
from ..models.layout import model_facts, model_layout
from ..models.loading import DEFAULT_MODEL, load_model
from ..models.weightless import weightless_model
from ..ndif.journal import Journal, journal_path
from ..probes.checks import REPEATED_HALF, check_rows_fit, check_token_grid
from ..probes.tokens import DEFAULT_HIGH, DEFAULT_LOW, repeated_tokens
from .options import option, positive
from .run_context import RunContext, ndif_option

__all__ = [
    "UNJOURNALED",
    "ScanConfig",
    "check_causal_tokens",
    "check_indices",
    "model_for",
    "open_journal",
    "preflight",
    "scan_tokens",
]

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
