"""``induction-nnsight dynamics``: score a series of checkpoints (a training run's directories, or
Hub revisions) on one repeated-token probe and find the phase change."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from ..causal.circuit import CircuitMeasure, circuit
from ..causal.metrics import default_icl_positions, icl_score
from ..dynamics.checkpoints import check_hub, find_checkpoints, hub_checkpoints
from ..dynamics.phase import best_heads
from ..dynamics.scoring import DYNAMICS_KINDS, ProbeSettings, score_checkpoints
from ..errors import InductionError
from ..models.layout import model_facts
from ..models.loading import load_model
from ..names import head_name
from ..ndif.execution import Execution
from ..scores.ranking import rank_heads
from .jobs import RunsTraces, ScanConfig
from .options import like, option
from .outputs import rounded, table, to_json

OLSSON_TOKENS = (50, 500)
"""Olsson et al.'s ICL score: loss at token 500 minus loss at token 50, where the rows are that long."""


_VOCAB_RANGE = "[1000, 10000) when the vocabulary holds it, else [1, vocab size)"


def _revisions(text: str) -> list[str]:
    """``--revisions``: comma-separated Hub revisions."""
    values = [part for part in text.replace(",", " ").split() if part]
    if not values:
        raise argparse.ArgumentTypeError("expected comma-separated revisions, e.g. step0,step1000")
    return values


@dataclass
class DynamicsConfig(RunsTraces):
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
    out: str = option("charts", help="directory for results, charts and the cache")
    progress: bool = option(True, flag="--quiet", help="no line per checkpoint")
    remote: bool = like(ScanConfig, "remote")
    ndif_host: str | None = like(ScanConfig, "ndif_host")
    timeout: float = like(ScanConfig, "timeout")

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
        self.probe().validate()


def icl_positions(n_losses: int, seq_len: int, bos: bool) -> tuple[int, int]:
    """``(early, late)`` loss indices of the late-minus-early ICL score: Olsson's tokens 50 and 500
    where the rows are long enough, else the middle token of the first copy and the same token repeated."""
    early, late = OLSSON_TOKENS
    if n_losses >= late:
        return early - 1, late - 1
    return default_icl_positions(seq_len, bos)


def _tensor(values) -> torch.Tensor:
    """Plain (possibly nested) numbers with None for undefined ones -> a float tensor with NaN."""
    if isinstance(values, list):
        return torch.stack([_tensor(v) for v in values]) if values else torch.empty(0)
    return torch.tensor(float("nan") if values is None else float(values))


def _entry(scored: dict, positions: tuple[int, int], n_heads: int) -> dict:
    """One checkpoint of ``dynamics_results.json``, from :func:`score_checkpoints`' plain numbers."""
    best, index = best_heads(_tensor(scored["scores"]["induction"])[None])
    loss = _tensor(scored["loss_by_position"])
    revision = {"revision": scored["revision"]} if scored["revision"] else {}
    halves = {key: table(_tensor(scored[key])) for key in ("loss_first_half", "loss_repeated_half", "icl_score")}
    return {
        "step": scored["step"],
        "path": scored["path"],
        **revision,
        **halves,
        "icl_late_minus_early": rounded(icl_score(loss, *positions)),
        "best_induction": {
            "layer": int(index[0]) // n_heads,
            "head": int(index[0]) % n_heads,
            "score": rounded(best[0]),
        },
        "loss_by_position": table(loss),
        "scores": {kind: table(_tensor(scored["scores"][kind])) for kind in DYNAMICS_KINDS},
        **({"strongest_k_edge": scored["strongest_k_edge"]} if "strongest_k_edge" in scored else {}),
    }


def strongest_k_edge(model, probe, target: tuple[int, int]) -> dict | None:
    """The earlier head whose removal from ``target``'s keys lowers its induction score most (path patching).

    Returns:
        ``{"source", "target", "effect", "loss_effect"}`` (as in ``circuit_results.json``), or None for
        a target in layer 0 (nothing earlier feeds it).
    """
    if target[0] == 0:
        return None
    found = circuit(
        model,
        probe.tokens,
        probe.period,
        measure=CircuitMeasure(targets=[target], paths=("k",), composition=False),
        bos=probe.first_start == 1,
        execution=Execution(progress=False),
    )
    facts = model_facts(model)
    effects = found.table("k", facts.n_layers, facts.n_heads)[0].view(facts.n_layers, facts.n_heads)
    ranked = rank_heads(effects, 1, descending=False)  # the most negative effect first
    if not ranked:
        return None
    edge = next(e for e in found.edges if e.source == ranked[0])
    return {
        "source": head_name(edge.source),
        "target": head_name(target),
        "effect": rounded(edge.effect),
        "loss_effect": rounded(edge.loss_effect),
    }


def _with_k_edge(model, probe, entry: dict) -> dict:
    """``{"strongest_k_edge": ...}`` of the best induction head of a scored checkpoint (while it is loaded)."""
    n_heads = len(entry["scores"]["induction"][0])
    index = int(best_heads(_tensor(entry["scores"]["induction"])[None])[1][0])  # the head _entry reports
    return {"strongest_k_edge": strongest_k_edge(model, probe, (index // n_heads, index % n_heads))}


def run_dynamics(config: DynamicsConfig, load: Callable[..., object] = load_model) -> tuple[dict, dict[str, str]]:
    """Score every checkpoint (those cached in ``config.out`` are not scored again) and find the phase change.

    Returns:
        ``(results, files)``: ``dynamics_results.json`` and the charts ``dynamics_induction.json`` (each
        head's induction score against step), ``dynamics_loss.json`` (loss halves and ICL score, the phase
        change shaded) and ``dynamics_heatmap.json`` (step x head).
    """
    config.validate()
    if config.revisions:
        checkpoints = hub_checkpoints(config.model, config.revisions)
        if not config.remote:
            check_hub(checkpoints)
    else:
        checkpoints = find_checkpoints(config.checkpoints)
    circuit_on = config.circuit and not config.remote  # path patching needs the weights here
    scored = score_checkpoints(
        checkpoints,
        config.probe(),
        out=config.out,
        load=load,
        also=("strongest_k_edge", _with_k_edge) if circuit_on else None,
        execution=config.execution(config.progress),
    )
    n_heads = len(scored[0]["scores"]["induction"][0])
    seq_len = scored[0]["seq_len"]
    if any(s["seq_len"] != seq_len for s in scored):
        raise InductionError("the checkpoints have different contexts, so no one probe fits them all: pass --seq-len")
    positions = icl_positions(len(scored[0]["loss_by_position"]), seq_len, config.bos)
    entries = [_entry(s, positions, n_heads) for s in scored]
    steps = [e["step"] for e in entries]
    phase = scored.phase()  # the one the loss and k-edge charts shade
    settings = {k: v for k, v in asdict(config).items() if k not in ("progress",)}
    results = {
        "settings": {**settings, "seq_len": seq_len, "icl_positions": list(positions), "kinds": list(DYNAMICS_KINDS)},
        "checkpoints": entries,
        "phase_change": None
        if phase is None
        else {
            **phase,
            "rise": rounded(phase["rise"]),
            "score_before": rounded(phase["score_before"]),
            "score_at": rounded(phase["score_at"]),
        },
    }
    name = config.model or (config.checkpoints[0] if len(config.checkpoints) == 1 else "checkpoints")
    subtitle = (
        f"{config.batch} x 2 x {seq_len} repeated random tokens, seed {config.seed}"
        f"{'' if config.bos else ', no BOS'}; {len(steps)} checkpoints"
    )
    files = {
        "dynamics_results.json": to_json(results),
        "dynamics_induction.json": scored.figure(
            "induction",
            highlight=scored.top_heads(config.top),
            subtitle=subtitle,
            title=f"Induction score of every head against step — {name}",
        ).to_json(),
        "dynamics_loss.json": scored.figure(
            "loss", title=f"Loss on both halves and ICL score — {name}", subtitle=subtitle
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
