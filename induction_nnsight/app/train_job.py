"""``induction-nnsight train``: train a small transformer on repeated random spans, with log-spaced
checkpoints (``OUT/checkpoint-STEP/``) to watch induction heads form; resumable."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass, fields

from ..errors import InductionError
from ..training.config import TrainSettings
from ..training.loop import train
from .dynamics_charts import training_loss_figure
from .outputs import prepare_out_dir, rounded, to_json, write_files


@dataclass
class TrainConfig(TrainSettings):
    """Settings of ``induction-nnsight train``: the run's :class:`TrainSettings`, where it goes, and
    whether to show a progress bar."""

    out: str = "runs/tiny"
    progress: bool = True

    def validate(self) -> None:
        super().validate()
        if not str(self.out).strip():
            raise InductionError("--out is empty: pass the run directory, e.g. --out runs/tiny")

    def settings(self) -> TrainSettings:
        """The settings that determine the weights (the run directory and the progress bar do not)."""
        return TrainSettings(**{f.name: getattr(self, f.name) for f in fields(TrainSettings)})


def run_train(config: TrainConfig) -> tuple[dict, dict[str, str]]:
    """Train (or resume) the run ``config`` describes.

    Returns:
        ``(results, files)``: ``train_results.json`` (settings, checkpoints, last losses, seconds) and
        ``dynamics_training_loss.json`` (the loss log as a chart), for the run directory.
    """
    config.validate()
    run = train(config.settings(), config.out, progress=config.progress)
    last = run.log[-1] if run.log else {}
    results = {
        "settings": asdict(config.settings()),
        "out": str(run.out),
        "resumed_from": run.resumed_from,
        "seconds": round(run.seconds, 1),
        "checkpoints": [{"step": step, "path": str(path)} for step, path in run.checkpoints.items()],
        "last_step": last.get("step"),
        "last_loss": {key: rounded(last[key]) for key in ("loss", "loss_fresh", "loss_copied") if key in last},
    }
    figure = training_loss_figure(run.log, list(run.checkpoints),
                                  title=f"Training loss against step ({run.out.name}, seed {config.seed})")
    return results, {"train_results.json": to_json(results), "dynamics_training_loss.json": figure.to_json()}


def add_parser(commands) -> argparse.ArgumentParser:
    """The ``train`` subcommand (one option per :class:`TrainSettings` field)."""
    sub = commands.add_parser("train", help="train a small transformer from scratch on repeated random spans, "
                              "with log-spaced checkpoints (resumable)")
    d = TrainSettings()
    sub.add_argument("--out", default="runs/tiny", help="run directory (default runs/tiny); a second call resumes it")
    sub.add_argument("--steps", type=int, default=d.steps, help=f"optimizer steps (default {d.steps})")
    sub.add_argument("--batch", type=int, default=d.batch, help=f"rows per step (default {d.batch})")
    sub.add_argument("--seq-len", type=int, default=d.seq_len,
                     help=f"tokens per row, BOS included; also the model's context (default {d.seq_len})")
    sub.add_argument("--vocab-size", type=int, default=d.vocab_size, help=f"vocabulary, BOS = 0 (default {d.vocab_size})")
    sub.add_argument("--d-model", type=int, default=d.d_model, help=f"residual width (default {d.d_model})")
    sub.add_argument("--n-layers", type=int, default=d.n_layers, help=f"layers (default {d.n_layers})")
    sub.add_argument("--n-heads", type=int, default=d.n_heads, help=f"heads per layer (default {d.n_heads})")
    sub.add_argument("--mlp", action="store_true", help="give the layers MLPs (default: attention-only)")
    sub.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr:g})")
    sub.add_argument("--warmup", type=int, default=d.warmup, help=f"warm-up steps (default {d.warmup})")
    sub.add_argument("--weight-decay", type=float, default=d.weight_decay, help=f"AdamW decay (default {d.weight_decay:g})")
    sub.add_argument("--min-span", type=int, default=d.min_span, help=f"shortest repeated span (default {d.min_span})")
    sub.add_argument("--max-span", type=int, default=d.max_span, help=f"longest repeated span (default {d.max_span})")
    sub.add_argument("--checkpoints", dest="n_checkpoints", type=int, default=d.n_checkpoints,
                     help=f"checkpoints, log-spaced, step 0 included (default {d.n_checkpoints})")
    sub.add_argument("--log-every", type=int, default=d.log_every, help=f"steps between loss-log lines (default {d.log_every})")
    sub.add_argument("--seed", type=int, default=d.seed, help=f"seed of the weights and the corpus (default {d.seed})")
    sub.add_argument("--no-tokenizer", dest="tokenizer", action="store_false",
                     help="save the checkpoints without the id tokenizer (they still load: ids are the words)")
    sub.add_argument("--quiet", action="store_true", help="no progress bar")
    return sub


def command(args: argparse.Namespace) -> int:
    """Run ``train`` from parsed arguments (bad input raises InductionError, which the CLI turns into exit 2)."""
    names = {f.name for f in fields(TrainSettings)}
    config = TrainConfig(**{k: v for k, v in vars(args).items() if k in names}, out=args.out, progress=not args.quiet)
    config.validate()
    out = prepare_out_dir(config.out)
    results, files = run_train(config)
    for path in write_files(out, files):
        print(f"wrote {path}", file=sys.stderr)
    loss = results["last_loss"]
    print(f"{len(results['checkpoints'])} checkpoints in {out} (step {results['checkpoints'][0]['step']} to "
          f"{results['checkpoints'][-1]['step']}); last loss {loss.get('loss', float('nan')):.3f} nats "
          f"(fresh tokens {loss.get('loss_fresh', float('nan')):.3f}, copied {loss.get('loss_copied', float('nan')):.3f}); "
          f"{results['seconds']:.0f} s")
    return 0
