"""``induction-nnsight train``: train a small transformer on repeated random spans, with log-spaced
checkpoints (``OUT/checkpoint-STEP/``) to watch induction heads form, and (``--dense auto``, the
default) dense checkpoints placed where the coarse pass's best induction score rises; resumable."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from ..dynamics.refine import RULE, coarse_scores, dense_window
from ..errors import InductionError
from ..figures.dynamics import training_loss_figure
from ..strict_json import json_line
from ..training.config import TrainSettings, dense_auto
from ..training.loop import TrainRun, train, train_window
from .options import option
from .outputs import default_out, rounded, to_json


@dataclass
class TrainConfig(TrainSettings):
    """Settings of ``induction-nnsight train``: the run's :class:`TrainSettings`, where it goes, and
    whether to show a progress bar. Each setting's command-line option is declared here (the defaults are
    :class:`TrainSettings`'); ``arch`` has none (gpt2 on the command line)."""

    steps: int = option(TrainSettings.steps, help="optimizer steps", parse=int)
    batch: int = option(TrainSettings.batch, help="rows per step", parse=int)
    seq_len: int = option(
        TrainSettings.seq_len, help="tokens per row, BOS included; also the model's context", parse=int
    )
    vocab_size: int = option(TrainSettings.vocab_size, help="vocabulary, BOS = 0", parse=int)
    d_model: int = option(TrainSettings.d_model, help="residual width", parse=int)
    n_layers: int = option(TrainSettings.n_layers, help="layers", parse=int)
    n_heads: int = option(TrainSettings.n_heads, help="heads per layer", parse=int)
    mlp: bool = option(TrainSettings.mlp, help="give the layers MLPs", default_text="attention-only")
    lr: float = option(TrainSettings.lr, help="peak learning rate", parse=float)
    warmup: int = option(TrainSettings.warmup, help="warm-up steps", parse=int)
    weight_decay: float = option(TrainSettings.weight_decay, help="AdamW decay", parse=float)
    min_span: int = option(TrainSettings.min_span, help="shortest repeated span", parse=int)
    max_span: int = option(TrainSettings.max_span, help="longest repeated span", parse=int)
    n_checkpoints: int = option(
        TrainSettings.n_checkpoints, help="checkpoints, log-spaced, step 0 included", flag="--checkpoints", parse=int
    )
    dense: str = option(
        TrainSettings.dense,
        help="dense checkpoints: auto (20, placed through the rise of the best induction score that a heads pass "
        "on the log-spaced checkpoints finds; auto:N for N), START:STOP:EVERY, or none (only the log-spaced ones)",
        metavar="auto[:N]|START:STOP:EVERY|none",
    )
    log_every: int = option(TrainSettings.log_every, help="steps between loss-log lines", parse=int)
    seed: int = option(TrainSettings.seed, help="seed of the weights and the corpus", parse=int)
    seeds: int = option(1, help="train this many seeds (SEED, SEED + 1, ...), each into OUT/seed-S/", parse=int)
    repeats: bool = option(
        TrainSettings.repeats, help="a control corpus with no repeated spans (no induction heads form)"
    )
    tokenizer: bool = option(
        TrainSettings.tokenizer,
        help="save the checkpoints without the id tokenizer (they still load: ids are the words)",
    )
    out: str = option(default_out("train"), help="run directory; a second call resumes it")
    progress: bool = option(True, flag="--quiet", help="no progress bar")

    def validate(self) -> None:
        super().validate()
        if self.seeds < 1:
            raise InductionError(f"--seeds must be at least 1, got {self.seeds}")
        if not str(self.out).strip():
            raise InductionError("--out is empty: pass the run directory, e.g. --out runs/tiny")

    def settings(self) -> TrainSettings:
        """The settings that determine the weights (the run directory and the progress bar do not)."""
        return TrainSettings(**{f.name: getattr(self, f.name) for f in fields(TrainSettings)})


def seed_dirs(out: str | Path, seed: int, seeds: int) -> list[tuple[int, Path]]:
    """``(seed, run directory)`` of each seed: ``out`` itself for one seed, else ``out/seed-S/``."""
    if seeds == 1:
        return [(seed, Path(out))]
    return [(s, Path(out) / f"seed-{s}") for s in range(seed, seed + seeds)]


def run_train(config: TrainConfig) -> tuple[dict, dict[str, str]]:
    """Train (or resume) the run ``config`` describes: one run, or ``--seeds N`` runs under ``OUT/seed-S/``.

    Returns:
        ``(results, files)``: ``train_results.json`` (settings, checkpoints, ``dense_window`` (what
        :func:`refine` placed; None unless ``--dense auto``), last losses, seconds (both passes and the
        heads passes between them); with several seeds the first seed's, and ``"seeds"``: each seed's
        directory, seconds, last losses and dense window) and
        ``dynamics_training_loss.json`` (the first seed's loss log as a chart), for ``OUT``.
    """
    config.validate()
    runs, windows = [], []
    for seed, out in seed_dirs(config.out, config.seed, config.seeds):
        settings = replace(config.settings(), seed=seed)
        runs.append((seed, train(settings, out, progress=config.progress)))
        windows.append(refine(settings, runs[-1][1], progress=config.progress))
    run, window = runs[0][1], windows[0]
    last = run.log[-1] if run.log else {}
    results = {
        "settings": {**asdict(config.settings()), "seeds": config.seeds},
        "out": str(run.out),
        "resumed_from": run.resumed_from,
        "seconds": round(sum(r.seconds for _, r in runs), 1),
        "checkpoints": [{"step": step, "path": str(path)} for step, path in run.checkpoints.items()],
        "dense_window": window,
        "last_step": last.get("step"),
        "last_loss": _last_loss(run.log),
        **(
            {
                "seeds": [
                    {
                        "seed": seed,
                        "out": str(r.out),
                        "seconds": round(r.seconds, 1),
                        "last_loss": _last_loss(r.log),
                        "dense_window": None if w is None else {k: w[k] for k in ("start", "end")},
                    }
                    for (seed, r), w in zip(runs, windows)
                ]
            }
            if config.seeds > 1
            else {}
        ),
    }
    figure = training_loss_figure(
        run.log,
        list(run.checkpoints),
        title=f"Training loss against step — {run.out.name}",
        subtitle=f"{config.arch}, {config.n_layers} layers x {config.n_heads} heads, "
        f"d_model {config.d_model}; batch {config.batch} x {config.seq_len} tokens, "
        f"lr {config.lr}, seed {config.seed}",
    )
    return results, {"train_results.json": to_json(results), "dynamics_training_loss.json": figure.to_json()}


def _last_loss(log: list[dict]) -> dict:
    last = log[-1] if log else {}
    return {
        key: None if last[key] is None else rounded(last[key])
        for key in ("loss", "loss_fresh", "loss_copied")
        if key in last
    }


DENSE_WINDOW = "dense_window.json"
"""The record of ``--dense auto``'s placement in a run directory (read by ``dynamics`` for each seed)."""


def refine(settings: TrainSettings, run: TrainRun, *, progress: bool = True) -> dict | None:
    """``--dense auto``: score the coarse checkpoints, place the dense ones through the rise, train them.

    One heads pass per log-spaced checkpoint (:func:`~induction_nnsight.dynamics.refine.coarse_scores`)
    gives the best induction score; :func:`~induction_nnsight.dynamics.refine.dense_window` places the
    checkpoints; :func:`~induction_nnsight.training.loop.train_window` trains again from the latest
    checkpoint before them and saves them, with an uninterrupted run's weights. ``run.checkpoints``
    gains them, and ``OUT/dense_window.json`` records the placement.

    Returns:
        ``{"start", "end", "steps", "coarse", "rule"}`` (``coarse``: ``[[step, best induction score], ...]``
        of the coarse pass), or None when ``settings.dense`` is not ``auto[:N]``.
    """
    n = dense_auto(settings.dense)
    if n is None:
        return None
    began = time.perf_counter()
    steps, best = coarse_scores(list(run.checkpoints.values()))
    window = dense_window(steps, best, n)
    run.checkpoints.update(train_window(settings, run.out, window["steps"], progress=progress))
    run.checkpoints = dict(sorted(run.checkpoints.items()))
    run.seconds += time.perf_counter() - began  # the scoring and the second pass count as training time
    record = {**window, "coarse": [[step, round(score, 4)] for step, score in zip(steps, best)], "rule": RULE}
    (run.out / DENSE_WINDOW).write_text(json_line(record) + "\n")
    if progress:
        print(
            f"induction-nnsight: train {run.out.name}: {len(window['steps'])} dense checkpoints between steps "
            f"{window['start']} and {window['end']}, where the coarse pass's best induction score rises",
            file=sys.stderr,
            flush=True,
        )
    return record
