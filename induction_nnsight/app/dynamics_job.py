"""``induction-nnsight dynamics``: score a series of checkpoints (a training run's directories, or
Hub revisions) on one repeated-token probe and find the phase change."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch

from ..dynamics.checkpoints import check_hub, find_checkpoints, hub_checkpoints
from ..dynamics.phase import N_BOOTSTRAP, best_heads
from ..dynamics.scoring import DYNAMICS_KINDS, ProbeSettings, score_checkpoints
from ..dynamics.series import fresh_loss_bump, phase_spread, read_loss_log, seed_runs
from ..errors import InductionError
from ..models.loading import load_model
from ..models.weightless import load_weightless
from ..ndif.execution import Execution
from ..scores.icl import olsson_icl, read_text
from .checkpoint_extras import text_icl_scorer, together, with_k_edge
from .icl_job import IclConfig
from .jobs import ScanConfig
from .options import like, option, positive
from .outputs import default_out, rounded, table
from .results import JobResult, optional
from .run_context import RunContext, ndif_option

"""Olsson et al.'s ICL score: loss at token 500 minus loss at token 50, where the rows are that long."""


__all__ = ["DynamicsConfig", "DynamicsJobResult", "run_dynamics"]

_VOCAB_RANGE = "[1000, 10000) when the vocabulary holds it, else [1, vocab size)"


def _revisions(text: str) -> list[str]:
    """``--revisions``: comma-separated Hub revisions."""
    values = [part for part in text.replace(",", " ").split() if part]
    if not values:
        raise argparse.ArgumentTypeError("expected comma-separated revisions, e.g. step0,step1000")
    return values


@dataclass
class DynamicsConfig:
    """Settings of ``induction-nnsight dynamics``."""

    checkpoints: list[str] = option(
        default_factory=list,
        flag="checkpoints",
        help="checkpoint directories, or run directories holding checkpoint-STEP/ (sorted by step)",
        nargs="*",
        metavar="CHECKPOINT_OR_RUN_DIR",
        type_name="list[str]",
    )
    model: str | None = option(None, help="Hub id whose --revisions to score (e.g. EleutherAI/pythia-70m)")
    revisions: list[str] | None = option(None, help="comma-separated revisions, e.g. step0,step1000", parse=_revisions)
    batch: int = like(ScanConfig, "batch")
    seq_len: int | None = like(  # None: 50, or the longest block whose two copies fit the context
        ScanConfig, "seq_len", None, default_text="50, or the longest whose two copies fit the context"
    )
    seed: int = like(ScanConfig, "seed")
    low: int | None = like(ScanConfig, "low", None, default_text=_VOCAB_RANGE)
    high: int | None = like(ScanConfig, "high", None, default_text=_VOCAB_RANGE)
    bos: bool = like(ScanConfig, "bos")
    attn_implementation: str | None = like(ScanConfig, "attn_implementation")
    top: int = like(ScanConfig, "top", 3, help="heads highlighted in the chart", parse=int)
    circuit: bool = option(  # the best induction head's strongest k-path source at every checkpoint
        True, help="skip path patching the best induction head's keys at every checkpoint"
    )
    out: str = option(
        default_out("dynamics"), help="directory for results, charts and the journal of scored checkpoints"
    )
    progress: bool = option(True, flag="--quiet", help="no line per checkpoint")
    remote: bool = ndif_option("remote")
    ndif_host: str | None = ndif_option("ndif_host")
    timeout: float = ndif_option("timeout")
    resume: bool = like(
        ScanConfig, "resume", help="score every checkpoint afresh, ignoring those the journal in --out holds"
    )
    text: str | None = option(
        None,
        help="also score each checkpoint's in-context learning on this natural text (a UTF-8 file or a "
        "directory of .txt/.md/.rst files): its loss at --early and --late, in windows of --late + 1 tokens",
        metavar="FILE|DIR",
    )
    text_windows: int = option(8, help="windows of --text scored per checkpoint", parse=positive)
    early: int = like(IclConfig, "early")
    late: int = like(IclConfig, "late")

    def probe(self) -> ProbeSettings:
        return ProbeSettings(
            batch=self.batch,
            seq_len=self.seq_len,
            seed=self.seed,
            low=self.low,
            high=self.high,
            bos=self.bos,
            attn_implementation=self.attn_implementation,
        )

    def validate(self) -> None:
        """Check what can be checked before a checkpoint is loaded."""
        if self.revisions and self.checkpoints:
            raise InductionError("pass checkpoint directories or --model ID --revisions ..., not both")
        if not self.revisions and self.model:
            raise InductionError(
                "--model needs --revisions (e.g. --revisions step0,step1000); "
                "for local checkpoints pass their directories"
            )
        if not self.revisions and not self.checkpoints:
            raise InductionError(
                "no checkpoints given: pass checkpoint or run directories, or --model ID --revisions ..."
            )
        if self.top < 1:
            raise InductionError(f"--top must be at least 1, got {self.top}")
        if not self.timeout > 0:
            raise InductionError(f"--timeout must be a positive number of seconds, got {self.timeout}")
        if not 1 <= self.early < self.late:
            raise InductionError(f"--early {self.early} and --late {self.late}: pass 1 <= early < late")
        if self.text is not None:
            read_text(self.text)  # a missing or unreadable path is refused before a checkpoint loads
        self.probe().validate()

    def text_scorer(self, execution: Execution) -> tuple[str, Callable[[object, object, dict], dict]] | None:
        """``(name, f)`` for :func:`~induction_nnsight.dynamics.scoring.score_checkpoints`' ``also``: each
        checkpoint's ``text_icl`` on ``--text``, its traces run under ``execution`` (None without it)."""
        if self.text is None:
            return None
        windows, positions = (self.text_windows, self.late + 1), (self.early, self.late)
        return text_icl_scorer(read_text(self.text), windows, positions, self.bos, execution)


def _tensor(values) -> torch.Tensor:
    """Plain (possibly nested) numbers with None for undefined ones -> a float tensor with NaN."""
    if isinstance(values, list):
        return torch.stack([_tensor(v) for v in values]) if values else torch.empty(0)
    return torch.tensor(float("nan") if values is None else float(values))


def _entry(scored: dict, interval: tuple[float, float] | None, n_heads: int) -> dict:
    """One checkpoint of ``dynamics_results.json``, from :func:`score_checkpoints`' plain numbers."""
    best, index = best_heads(_tensor(scored["scores"]["induction"])[None])
    loss = _tensor(scored["loss_by_position"])
    revision = {"revision": scored["revision"]} if scored["revision"] else {}
    halves = {key: table(_tensor(scored[key])) for key in ("loss_first_half", "loss_repeated_half")}
    low, high = interval if interval is not None else (None, None)
    return {
        "step": scored["step"],
        "path": scored["path"],
        **revision,
        **halves,
        "repeated_minus_first_half": table(_tensor(scored["icl_score"])),
        "olsson_icl_score": None if olsson_icl(loss)[0] is None else rounded(olsson_icl(loss)[0]),
        "best_induction": {
            "layer": int(index[0]) // n_heads,
            "head": int(index[0]) % n_heads,
            "score": rounded(best[0]),
            "ci_low": None if low is None else rounded(low),
            "ci_high": None if high is None else rounded(high),
        },
        "loss_by_position": table(loss),
        "scores": {kind: table(_tensor(scored["scores"][kind])) for kind in DYNAMICS_KINDS},
        **({"strongest_k_edge": scored["strongest_k_edge"]} if "strongest_k_edge" in scored else {}),
        **({"text_icl": scored["text_icl"]} if "text_icl" in scored else {}),
    }


@dataclass(eq=False)
class DynamicsJobResult(JobResult):
    """What the dynamics job found (``dynamics_results.json``, in this order).

    Attributes:
        settings: The :class:`DynamicsConfig` as a dict (but ``progress`` and ``resume``), the probe's block
            length, the kinds scored and what the intervals and the ICL scores are.
        checkpoints: Per checkpoint in step order: its step, path, losses, best induction head with its
            interval, loss by position and score tables.
        phase_change: The phase change of the best induction score (None: the test found none).
        phase_test: The test's numbers and its one-line ``note``.
        fresh_loss_bump: The fresh-token training loss before and after the phase change (None without a loss
            log).
        seeds: The phase changes of several seeds and their spread, each seed's fitted rise (``amplitudes``),
            best induction score at its last checkpoint (``final_best``) and note (left out for one seed).
    """

    settings: dict
    checkpoints: list[dict]
    phase_change: dict | None
    phase_test: dict
    fresh_loss_bump: dict | None
    seeds: dict | None = optional()


def run_dynamics(
    config: DynamicsConfig, load: Callable[..., object] = load_model, context: RunContext | None = None
) -> tuple[DynamicsJobResult, dict[str, str]]:
    """Score every checkpoint (those finished in ``config.out``'s journal are read back unless ``--no-resume``)
    and find the phase change.

    Args:
        config: The settings.
        load: Loads one checkpoint (``load_model``'s signature; called with the context's ``device`` when set).
        context: How the job runs (device, plan, request budgets; None: ``RunContext()``).

    Returns:
        ``(result, files)``: the :class:`DynamicsJobResult`; ``dynamics_results.json`` and the charts
        ``dynamics_induction.json`` (each head's induction score against step), ``dynamics_loss.json`` (loss
        halves and ICL score, the phase change shaded) and ``dynamics_heatmap.json`` (step x head).
    """
    config.validate()
    context = context or RunContext()
    runs = seed_runs(config.checkpoints[0]) if len(config.checkpoints) == 1 and not config.revisions else []
    if config.revisions:
        checkpoints = hub_checkpoints(config.model, config.revisions)
        if not config.remote:
            check_hub(checkpoints)
    else:
        checkpoints = find_checkpoints([runs[0][1]] if runs else config.checkpoints)
    planned = context.planned  # --plan: each checkpoint's architecture, weightless; nothing written
    load = load_weightless if planned else partial(load, device=context.device) if context.device else load
    circuit_on = config.circuit and not config.remote and not planned  # path patching needs the weights here
    text_on = None if planned else config.text_scorer(context.execution(config, progress=False))
    run = context.execution(config, config.progress)
    scored = score_checkpoints(
        checkpoints,
        config.probe(),
        out=None if planned else config.out,
        load=load,
        also=together([("strongest_k_edge+ci", with_k_edge) if circuit_on else None, text_on]),
        execution=run,
        resume=config.resume,
    )
    n_heads = len(scored[0]["scores"]["induction"][0])
    seq_len = scored[0]["seq_len"]
    if any(s["seq_len"] != seq_len for s in scored):
        raise InductionError("the checkpoints have different contexts, so no one probe fits them all: pass --seq-len")
    intervals = scored.intervals()
    bounds = list(zip(intervals[0].tolist(), intervals[1].tolist())) if intervals is not None else [None] * len(scored)
    entries = [_entry(s, bound, n_heads) for s, bound in zip(scored, bounds)]
    steps = [e["step"] for e in entries]
    test = scored.phase_test()
    phase = test.pop("change")  # the one the loss and k-edge charts shade
    run_dir = runs[0][1] if runs else (Path(config.checkpoints[0]) if len(config.checkpoints) == 1 else None)
    settings = {k: v for k, v in asdict(config).items() if k not in ("progress", "resume")}
    results = DynamicsJobResult(
        settings={
            **settings,
            "seq_len": seq_len,
            "kinds": list(DYNAMICS_KINDS),
            "interval": f"95% percentile bootstrap over the {config.batch} probe rows ({N_BOOTSTRAP} replicates, "
            "paired across checkpoints; the best head chosen anew in each)",
            "repeated_minus_first_half": "mean loss on the repeated half minus on the first half of the probe",
            "olsson_icl_score": olsson_icl(_tensor(scored[0]["loss_by_position"]))[1],
        },
        checkpoints=entries,
        phase_change=_rounded_phase(phase),
        phase_test=test,
        fresh_loss_bump=fresh_loss_bump(read_loss_log(run_dir), phase) if run_dir is not None else None,
        seeds=_seed_spread(runs, ({**test, "change": phase}, scored), config, load, run) if len(runs) > 1 else None,
    )
    name = config.model or (config.checkpoints[0] if len(config.checkpoints) == 1 else "checkpoints")
    subtitle = (
        f"{config.batch} x 2 x {seq_len} repeated random tokens, seed {config.seed}"
        f"{'' if config.bos else ', no BOS'}; {len(steps)} checkpoints"
    )
    files = {
        "dynamics_results.json": results.to_json(),
        "dynamics_induction.json": scored.figure(
            "induction",
            highlight=scored.top_heads(config.top),
            subtitle=subtitle,
            title=f"Induction score of every head against step — {name}",
        ).to_json(),
        "dynamics_loss.json": scored.figure(
            "loss", title=f"Loss on both halves and their difference — {name}", subtitle=subtitle
        ).to_json(),
        **(
            {
                "dynamics_k_edge.json": scored.figure(
                    "k_edge",
                    subtitle=subtitle,
                    title=f"The best induction head's strongest k-path source against step — {name}",
                ).to_json()
            }
            if circuit_on
            else {}
        ),
        "dynamics_heatmap.json": scored.figure(
            "heatmap", subtitle=subtitle, title=f"Induction score, head x checkpoint — {name}"
        ).to_json(),
    }
    return results, files


def _rounded_phase(phase: dict | None) -> dict | None:
    if phase is None:
        return None
    numbers = ("rise", "score_before", "score_at", "signal_to_noise", "amplitude")
    return {k: rounded(v) if k in numbers and v is not None else v for k, v in phase.items()}


def _seed_spread(
    runs: list, first: tuple[dict, object], config: DynamicsConfig, load: Callable[..., object], run: Execution
) -> dict:
    """Each seed's phase change and the spread of their steps (``first``: the first seed's test and scored
    checkpoints, already run), with each seed's best induction score at its last checkpoint (``final_best``)."""
    phases, finals = [(runs[0][0], first[0])], [first[1]]
    for seed, path in runs[1:]:
        scored = score_checkpoints(
            find_checkpoints([path]), config.probe(), out=config.out, load=load, execution=run, resume=config.resume
        )
        phases.append((seed, scored.phase_test()))
        finals.append(scored)
    spread = phase_spread(phases)
    final_best = [rounded(float(scored.best()[0][-1])) for scored in finals]
    return {**spread, "final_best": final_best, "notes": [test["note"] for _, test in phases]}
