"""The training loop: resumable, deterministic by seed, with a progress bar and a loss log.

A run directory ``OUT`` holds ``train_settings.json``, ``loss_log.jsonl`` (one JSON object a
line: ``step``, ``loss``, ``loss_fresh`` and ``loss_copied`` (the loss on fresh tokens and on
tokens that copy an earlier span), ``lr``, ``seconds``) and ``checkpoint-STEP/`` directories:
``save_pretrained`` weights and config, the id tokenizer (unless ``tokenizer=False``),
``optimizer.pt`` and ``trainer_state.json``. A checkpoint is written into a temporary directory
and renamed into place, so one that exists is complete. A second call continues from the
last checkpoint: batches are a pure function of ``(seed, step)`` and the optimizer state is
restored, so the weights equal those of an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..errors import InductionError
from ..models.id_tokenizer import id_tokenizer
from ..strict_json import json_line, to_json
from .config import BOS_ID, TrainSettings, checkpoint_steps, new_model, trained_parameters
from .corpus import repeated_spans

LOSS_LOG = "loss_log.jsonl"
SETTINGS_FILE = "train_settings.json"
STATE_FILE = "trainer_state.json"
PREFIX = "checkpoint-"


@dataclass
class TrainRun:
    """What a call of :func:`train` leaves: the run directory, its checkpoints by step and its loss log."""

    out: Path
    checkpoints: dict[int, Path]
    log: list[dict]
    resumed_from: int | None
    seconds: float


def learning_rate(settings: TrainSettings, step: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to a tenth of ``lr`` at the last step."""
    if step <= settings.warmup:
        return settings.lr * step / max(settings.warmup, 1)
    done = (step - settings.warmup) / max(settings.steps - settings.warmup, 1)
    return settings.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(done, 1.0))))


def saved_checkpoints(out: Path) -> dict[int, Path]:
    """``step -> directory`` of the complete checkpoints in a run directory."""
    found = {}
    for path in Path(out).glob(PREFIX + "*"):
        step = path.name[len(PREFIX) :]
        if step.isdigit() and (path / STATE_FILE).is_file():
            found[int(step)] = path
    return dict(sorted(found.items()))


def _json_line(line: dict) -> str:
    """One strict-JSON line of the loss log: a diverged (NaN or infinite) loss is written as null."""
    return json_line(line) + "\n"


def _check_settings(out: Path, settings: TrainSettings) -> None:
    """Write the run's settings, or refuse to resume a run made with other settings."""
    path = out / SETTINGS_FILE
    wanted = asdict(settings)
    if path.is_file():
        found = json.loads(path.read_text())
        changed = sorted(k for k in wanted.keys() | found.keys() if found.get(k) != wanted.get(k))
        if changed:
            raise InductionError(
                f"{out} holds a run with other settings ({', '.join(changed)}): "
                "pass the same settings to resume it, or another --out"
            )
    else:
        path.write_text(to_json(wanted) + "\n")


def _save(out: Path, step: int, model, optimizer, settings: TrainSettings, seconds: float) -> Path:
    final = out / f"{PREFIX}{step}"
    tmp = out / f".{PREFIX}{step}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # its "Writing model shards" bar, at every checkpoint, is noise
    try:
        model.save_pretrained(tmp)
    finally:
        if shown:
            hf_logging.enable_progress_bar()
    if settings.tokenizer:
        id_tokenizer(settings.vocab_size, BOS_ID).save_pretrained(tmp)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    (tmp / STATE_FILE).write_text(json_line({"step": step, "seconds": seconds, "settings": asdict(settings)}) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def _read_log(out: Path, up_to: int) -> list[dict]:
    path = out / LOSS_LOG
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    return [line for line in lines if line["step"] <= up_to]


def _losses(model, tokens: torch.Tensor, source: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    """Mean next-token loss (differentiable), and its means on fresh and on copied targets."""
    logits = model(input_ids=tokens).logits[:, :-1].float()  # [batch, pos - 1, vocab]
    per_token = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tokens[:, 1:], reduction="none")
    copied = source[:, 1:] >= 0  # [batch, pos - 1]
    detached = per_token.detach()
    on_copied = float(detached[copied].mean()) if copied.any() else float("nan")  # none without repeats: null
    return per_token.mean(), float(detached[~copied].mean()), on_copied


def _optimizer(model, settings: TrainSettings) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        trained_parameters(model, settings), lr=settings.lr, betas=(0.9, 0.98), weight_decay=settings.weight_decay
    )


def _restore(checkpoint: Path, settings: TrainSettings) -> tuple[object, torch.optim.Optimizer, float]:
    """The model, the optimizer (its state restored) and the seconds of training saved in ``checkpoint``."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    optimizer = _optimizer(model, settings)
    optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
    return model, optimizer, json.loads((checkpoint / STATE_FILE).read_text())["seconds"]


def _step(model, optimizer: torch.optim.Optimizer, settings: TrainSettings, step: int) -> tuple:
    """One optimizer step on step ``step``'s batch: ``(loss tensor, fresh-token loss, copied-token loss, lr)``."""
    batch = repeated_spans(
        settings.batch,
        settings.seq_len,
        settings.vocab_size,
        seed=settings.seed,
        step=step,
        spans=(settings.min_span, settings.max_span) if settings.repeats else None,
        bos_token_id=BOS_ID,
    )
    lr = learning_rate(settings, step)
    for group in optimizer.param_groups:
        group["lr"] = lr
    loss, fresh, copied = _losses(model, batch.tokens, batch.source)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trained_parameters(model, settings), 1.0)
    optimizer.step()
    return loss, fresh, copied, lr


def train(settings: TrainSettings, out: str | Path, *, progress: bool = True) -> TrainRun:
    """Train (or continue training) the model ``settings`` describe, checkpointing into ``out``.

    Args:
        settings: The run's settings (checked against ``out``'s when resuming).
        out: The run directory (created when missing).
        progress: Show a tqdm progress bar on stderr.

    Returns:
        :class:`TrainRun`: every checkpoint of the run so far (``step -> path``), the loss log.

    Raises:
        InductionError: On bad settings, or settings that differ from those of the run in ``out``.
    """
    settings.validate()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is as fast, and immune to other processes on the cores
    try:
        return _train(settings, Path(out).expanduser(), progress)
    finally:
        torch.set_num_threads(threads)


def _train(settings: TrainSettings, out: Path, progress: bool) -> TrainRun:
    from tqdm.auto import tqdm

    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, settings)
    planned = checkpoint_steps(settings.steps, settings.n_checkpoints, settings.dense)
    saved = saved_checkpoints(out)
    start = max((s for s in saved if s in planned), default=None)
    if start is None:
        model, seconds_before = new_model(settings), 0.0
        optimizer = _optimizer(model, settings)
        saved[0] = _save(out, 0, model, optimizer, settings, 0.0)
        start_step = 0
    else:
        model, optimizer, seconds_before = _restore(saved[start], settings)
        start_step = start
    log = _read_log(out, start_step)
    model.train()
    began = time.perf_counter()
    bar = tqdm(total=settings.steps, initial=start_step, desc=f"train {out.name}", disable=not progress, unit="step")
    with open(out / LOSS_LOG, "w") as stream:
        stream.writelines(_json_line(line) for line in log)
        for step in range(start_step + 1, settings.steps + 1):
            loss, fresh, copied, lr = _step(model, optimizer, settings, step)
            seconds = seconds_before + time.perf_counter() - began
            if step % settings.log_every == 0 or step in planned:
                line = {
                    "step": step,
                    "loss": float(loss.detach()),
                    "loss_fresh": fresh,
                    "loss_copied": copied,
                    "lr": lr,
                    "seconds": round(seconds, 3),
                }
                log.append(line)
                stream.write(_json_line(line))
                stream.flush()
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}", copied=f"{copied:.3f}")
            if step in planned:
                saved[step] = _save(out, step, model, optimizer, settings, seconds)
            bar.update(1)
    bar.close()
    checkpoints = {s: p for s, p in saved_checkpoints(out).items() if s in planned}
    return TrainRun(out, checkpoints, log, start, seconds_before + time.perf_counter() - began)


def train_window(
    settings: TrainSettings, out: str | Path, steps: list[int], *, progress: bool = True
) -> dict[int, Path]:
    """Add checkpoints at ``steps`` to a run already trained past them, by training again from the
    latest checkpoint before the first missing one (the dense checkpoints of ``--dense auto``).

    The batches are a pure function of ``(seed, step)`` and the optimizer state is restored, so each
    new checkpoint holds the weights an uninterrupted run has at its step. The loss log is left as
    it is (the first pass wrote those steps' lines already, every ``log_every`` steps).

    Args:
        settings: The run's settings (checked against ``out``'s).
        out: The run directory.
        steps: The steps to checkpoint (those already saved are kept).
        progress: Show a tqdm progress bar on stderr.

    Returns:
        ``step -> checkpoint directory`` for each of ``steps``.

    Raises:
        InductionError: On other settings than the run's, or a step beyond ``settings.steps``.
    """
    from tqdm.auto import tqdm

    settings.validate()
    out = Path(out).expanduser()
    if not (out / SETTINGS_FILE).is_file():
        raise InductionError(f"{out} holds no training run: train it before adding checkpoints")
    _check_settings(out, settings)
    wanted = sorted({int(s) for s in steps})
    if wanted and not (wanted[0] > 0 and wanted[-1] <= settings.steps):
        raise InductionError(f"checkpoint steps {wanted[0]}..{wanted[-1]} lie outside the run's 1..{settings.steps}")
    saved = saved_checkpoints(out)
    missing = [s for s in wanted if s not in saved]
    if missing:
        start = max(s for s in saved if s < missing[0])
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            model, optimizer, seconds_before = _restore(saved[start], settings)
            model.train()
            began = time.perf_counter()
            bar = tqdm(total=missing[-1] - start, desc=f"dense {out.name}", disable=not progress, unit="step")
            for step in range(start + 1, missing[-1] + 1):
                _step(model, optimizer, settings, step)
                if step in missing:
                    saved[step] = _save(
                        out, step, model, optimizer, settings, seconds_before + time.perf_counter() - began
                    )
                bar.update(1)
            bar.close()
        finally:
            torch.set_num_threads(threads)
    return {step: saved[step] for step in wanted}
