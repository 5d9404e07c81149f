"""Scoring checkpoints: one heads pass per checkpoint on one repeated-token probe, journaled.

Every checkpoint of a series is scored on the same probe (the same rows of the same token
ids), so the numbers of two checkpoints differ only by the weights. Each checkpoint is a
different model, and an nnsight session cannot span two models, so each checkpoint is one
request of its own (no session bundling, unlike the sweeps of
:func:`~induction_nnsight.ndif.sessions.run_chunks`).

The job's journal is a directory, ``OUT/dynamics_journal/``: a checkpoint's finished result is
written there (strict JSON, atomically: never a partial entry) under a key made of its path (and
revision), the probe settings, its weight files' sizes and modification times and where it ran,
so a changed checkpoint or setting is never reused. A second call (after a crash, or after
``train`` added checkpoints) reads the finished checkpoints back, says in one line how many it
resumed, and scores only the others; a damaged entry is scored again; ``resume=False``
(``--no-resume``) ignores the stored entries and scores every checkpoint afresh. The directory
is kept after the results are written: it is what makes the next call cheap.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..models.layout import model_facts
from ..models.loading import load_model
from ..ndif.execution import Execution, as_execution
from ..ndif.journal import write_atomic
from ..probes.checks import REPEATED_HALF, check_rows_fit, check_token_grid
from ..probes.tokens import DEFAULT_HIGH, DEFAULT_LOW, Probe, repeated_probe
from ..scores.heads import head_scores
from ..scores.losses import half_losses
from ..strict_json import json_line, parse_strict
from .checkpoints import Checkpoint
from .results import CheckpointScores

DYNAMICS_KINDS = ("induction", "previous_token", "prefix_matching", "duplicate_token")
CACHE_DIR = "dynamics_journal"
"""The directory in ``OUT`` holding each finished checkpoint's entry, ``<key>.json``."""
CACHE_VERSION = 2
"""Bumped when a stored entry gains keys (2: ``induction_rows``), so older entries are scored again."""
ENTRY_KEYS = ("seq_len", "loss_first_half", "loss_repeated_half", "icl_score", "loss_by_position", "scores")
"""Keys every stored entry has (one without them is damaged, and scored again)."""


@dataclass
class ProbeSettings:
    """The probe every checkpoint is scored on (``low``/``high`` None: ``[1000, 10000)`` when the
    vocabulary holds it, else ``[1, vocab_size)``; ``seq_len`` None: 50, or the longest block whose two
    copies fit the context; so a tiny model works with no options)."""

    batch: int = 10
    seq_len: int | None = None
    seed: int = 0
    low: int | None = None
    high: int | None = None
    bos: bool = True
    attn_implementation: str | None = None

    def validate(self) -> None:
        check_token_grid(self.batch, self.seq_len, self.low, self.high, min_seq_len=REPEATED_HALF)

    def token_range(self, vocab_size: int) -> tuple[int, int]:
        """``(low, high)`` for a model with ``vocab_size`` tokens."""
        wide = vocab_size >= DEFAULT_HIGH
        low = self.low if self.low is not None else (DEFAULT_LOW if wide else 1)
        high = self.high if self.high is not None else (DEFAULT_HIGH if wide else vocab_size)
        return low, high

    def block_length(self, n_ctx: int | None) -> int:
        """The repeated block's length for a model whose context is ``n_ctx`` tokens."""
        if self.seq_len is not None:
            return self.seq_len
        return 50 if n_ctx is None else max(2, min(50, (n_ctx - int(self.bos)) // 2))


def checkpoint_probe(model, settings: ProbeSettings, name: str) -> Probe:
    """The repeated-token probe for ``model``, checked against its vocabulary, context and BOS."""
    facts = model_facts(model)
    seq_len = settings.block_length(facts.n_ctx)
    check_rows_fit(model, name, seq_len, bos=settings.bos)
    low, high = settings.token_range(facts.vocab_size)
    return repeated_probe(
        settings.batch,
        seq_len,
        seed=settings.seed,
        low=low,
        high=high,
        bos_token_id=facts.bos_token_id if settings.bos else None,
        vocab_size=facts.vocab_size,
    )


def _plain(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def score_checkpoint(model, probe: Probe, settings: ProbeSettings, *, execution: Execution | None = None) -> dict:
    """One heads pass on one checkpoint: loss halves, ICL score, loss by position and the head scores,
    run as ``execution`` says (None: here, default sizes).

    Returns:
        ``{"seq_len", "loss_first_half", "loss_repeated_half", "icl_score", "loss_by_position", "scores",
        "induction_rows"}`` with ``loss_by_position`` ``[pos - 1]``, ``scores`` ``{kind: [n_layers][n_heads]}``
        and ``induction_rows`` ``[batch][n_layers][n_heads]`` (each probe row's induction scores, for the
        bootstrap of :func:`~induction_nnsight.dynamics.phase.bootstrap_best`), plain numbers (None where
        undefined). ``icl_score`` is the repeated-half loss minus the first-half loss on the random-token
        probe (negative when the context helps), not Olsson et al.'s token-500-minus-token-50 score.
    """
    run = as_execution(execution)
    scores = head_scores(
        model,
        probe,
        kinds=DYNAMICS_KINDS,
        loss=True,
        per_row=True,  # [batch, n_layers, n_heads]: small, and the rows give the bootstrap intervals
        execution=run,
    )
    first, repeated = half_losses(scores.loss_by_position, probe.period, settings.bos)
    return {
        "seq_len": probe.period,
        "loss_first_half": _plain(first),
        "loss_repeated_half": _plain(repeated),
        "icl_score": _plain(repeated - first),
        "loss_by_position": [_plain(v) for v in scores.loss_by_position.tolist()],
        "scores": {kind: [[_plain(v) for v in row] for row in scores.mean(kind).tolist()] for kind in DYNAMICS_KINDS},
        "induction_rows": [
            [[_plain(v) for v in heads] for heads in layers] for layers in scores.per_row["induction"].tolist()
        ],
    }


def cache_key(checkpoint: Checkpoint, settings: ProbeSettings, remote: bool, also: str = "") -> str:
    """Key of a checkpoint's cached result: its path or Hub id and revision, the probe settings, the
    sizes and modification times of its weight files, where it ran, and what else was computed."""
    path = Path(checkpoint.path)
    files = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")) if path.is_dir() else []
    stamp = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    where = str(path.resolve()) if path.is_dir() else checkpoint.path
    text = json.dumps(
        [where, checkpoint.revision, asdict(settings), stamp, bool(remote), CACHE_VERSION] + ([also] if also else []),
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _stored(folder: Path | None, key: str) -> dict | None:
    """The finished entry stored under ``key``, or None (none, or damaged: then it is scored again)."""
    path = folder / f"{key}.json" if folder is not None else None
    if path is None or not path.is_file():
        return None
    try:
        entry = parse_strict(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or not set(ENTRY_KEYS) <= set(entry):
        return None
    scores = entry["scores"]
    return entry if isinstance(scores, dict) and all(kind in scores for kind in DYNAMICS_KINDS) else None


def score_checkpoints(
    checkpoints: list[Checkpoint],
    settings: ProbeSettings,
    *,
    out: str | Path | None = None,
    load: Callable[..., object] = load_model,
    also: tuple[str, Callable[[object, Probe, dict], dict]] | None = None,
    execution: Execution | None = None,
    resume: bool = True,
) -> CheckpointScores:
    """Score every checkpoint (reading back those ``out``'s journal holds), in step order.

    Args:
        checkpoints: From :func:`~induction_nnsight.dynamics.checkpoints.find_checkpoints` or
            :func:`~induction_nnsight.dynamics.checkpoints.hub_checkpoints`.
        settings: The probe.
        out: The output directory; its ``dynamics_journal/`` holds each finished checkpoint's entry
            (none kept when None).
        load: ``load(path, attn_implementation=, progress=, remote=[, revision=])`` -> model.
        also: ``(name, f)``: ``f(model, probe, entry) -> dict`` runs while the checkpoint is loaded
            and its keys join the stored entry (``name`` joins the key).
        execution: How the traces run (:class:`~induction_nnsight.ndif.execution.Execution`:
            ``remote`` to score each checkpoint on NDIF, ``progress`` for one line per checkpoint
            on stderr); None for the defaults. One request per checkpoint: a session cannot span two
            models.
        resume: Read back the entries ``out`` holds (one line on stderr says how many); False
            scores every checkpoint afresh (``--no-resume``).

    Returns:
        A :class:`~induction_nnsight.dynamics.results.CheckpointScores`: a list with, per checkpoint,
        ``{"step", "path", "revision", "cached", **score_checkpoint(...)}`` (``cached``: resumed from the
        journal; it also shows and draws itself).
    """
    settings.validate()
    run = as_execution(execution)
    remote, progress = run.remote, run.progress
    folder = Path(out) / CACHE_DIR if out is not None else None
    keys = [cache_key(checkpoint, settings, bool(remote), also[0] if also else "") for checkpoint in checkpoints]
    stored = [_stored(folder, key) if resume else None for key in keys]
    resumed = sum(entry is not None for entry in stored)
    if resumed:
        print(
            f"induction-nnsight: dynamics: resumed {resumed} of {len(checkpoints)} checkpoints from {folder}",
            file=sys.stderr,
        )
    results = []
    for i, (checkpoint, key, entry) in enumerate(zip(checkpoints, keys, stored, strict=True), 1):
        began = time.perf_counter()
        cached = entry is not None
        if entry is None:
            extra = {"revision": checkpoint.revision} if checkpoint.revision else {}
            model = load(
                checkpoint.path,
                attn_implementation=settings.attn_implementation,
                progress=False,
                remote=bool(remote),
                **extra,
            )
            probe = checkpoint_probe(model, settings, checkpoint.label)
            entry = score_checkpoint(model, probe, settings, execution=run)
            if also:
                entry.update(also[1](model, probe, entry))
            if folder is not None:
                write_atomic(folder / f"{key}.json", json_line(entry))
        results.append(
            {
                "step": checkpoint.step,
                "path": checkpoint.path,
                "revision": checkpoint.revision,
                "cached": cached,
                **entry,
            }
        )
        if progress:
            best = max((v for row in entry["scores"]["induction"] for v in row if v is not None), default=float("nan"))
            how = "resumed" if cached else f"scored in {time.perf_counter() - began:.1f} s"
            print(
                f"[{i}/{len(checkpoints)}] step {checkpoint.step} ({checkpoint.label}): best induction "
                f"{best:.3f}, repeated - first half "
                f"{entry['icl_score'] if entry['icl_score'] is not None else float('nan'):.3f} nats ({how})",
                file=sys.stderr,
                flush=True,
            )
    return CheckpointScores(results)
